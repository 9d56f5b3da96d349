"""The placeholder's fast path gives the bytes of the definition, on every kind of input.

``reference_thumbhash`` below is ``imaging/placeholder.py`` as it was before the fast path
(commit b47f443), copied unchanged but for its name: the definition, which the module keeps
as ``_exact`` / ``_exact_fields``, here out of the module's reach. The new ``thumbhash`` must
give the same bytes on: hypothesis' images of 1..100 x 1..100 (opaque and with alpha, and raw
bytes of small ones), a few thousand seeded previews of the sizes the decoder worker makes
(1..32 a side), and the previews of real photos built as the worker builds them
(``vips.decode_and_preview``). Each channel the fast path answers (it leaves a channel to the
definition when a value is too near a rounding boundary) is checked against the definition's
fields on its own, so the hand-over cannot hide a wrong fast answer; and the fast path must
answer for nearly every photo-like preview, or the speed would be gone.
"""

from __future__ import annotations

import base64
import math
import random
from collections.abc import Iterator, Sequence
from functools import cache
from operator import mul
from pathlib import Path
from typing import Final

import pyvips
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from pixdrop.imaging import jobs, placeholder, vips
from tests.imaging.corpus import tiff_exif, with_app1

DATA = Path(__file__).parents[1] / "data"
SAMPLES = Path(__file__).parents[2] / "samples"

# --- the reference: placeholder.py at b47f443, unchanged but for thumbhash's name --------

#: Byte value -> fraction of 255, looked up instead of divided per pixel.
_UNIT: Final = [v / 255 for v in range(256)]
_OPAQUE: Final = b"\xff"


def _round(value: float) -> int:
    # Half away from... up, as the format's reference does (Python's round() goes to even).
    return math.floor(value + 0.5)


@cache
def _cosines(size: int, terms: int) -> list[list[float]]:
    """The DCT's cosines along one side, per frequency (a preview has few distinct sizes)."""
    return [[math.cos(math.pi / size * f * (i + 0.5)) for i in range(size)] for f in range(terms)]


def _channel(
    values: Sequence[float], width: int, height: int, nx: int, ny: int
) -> tuple[float, list[float], float]:
    """(DC, normalised AC terms, scale) of the DCT of one channel, in the format's order.

    The 2-D sum is separable: for each row and horizontal frequency, sum across the row once,
    then weight the row sums by the vertical cosine.
    """
    cos_x, cos_y = _cosines(width, nx), _cosines(height, ny)
    rows = [values[y * width : (y + 1) * width] for y in range(height)]
    # sum(map(mul, ...)): the dot products run in C, several times faster than a generator.
    row_sums = [[sum(map(mul, row, cos_x[cx])) for row in rows] for cx in range(nx)]
    dc, ac, scale = 0.0, [], 0.0
    for cy in range(ny):
        cx = 0
        while cx * ny < nx * (ny - cy):  # a triangle of frequencies, not the full rectangle
            f = sum(map(mul, row_sums[cx], cos_y[cy])) / (width * height)
            if cx or cy:
                ac.append(f)
                scale = max(scale, abs(f))
            else:
                dc = f
            cx += 1
    if scale:
        ac = [0.5 + 0.5 / scale * f for f in ac]
    return dc, ac, scale


def reference_thumbhash(width: int, height: int, rgba: bytes) -> bytes:
    """The ThumbHash of a *width* x *height* RGBA image (at most 100 x 100)."""
    if not (0 < width <= 100 and 0 < height <= 100) or len(rgba) != 4 * width * height:
        raise ValueError(f"need RGBA of at most 100x100 pixels, got {width}x{height}")
    count = width * height
    bands = [list(map(_UNIT.__getitem__, rgba[k::4])) for k in range(3)]
    has_alpha = rgba[3::4] != _OPAQUE * count
    if has_alpha:
        alphas = list(map(_UNIT.__getitem__, rgba[3::4]))
        total_alpha = sum(alphas)
        avg = [0.0, 0.0, 0.0]
        if total_alpha:
            for band in range(3):
                avg[band] = sum(map(mul, alphas, bands[band])) / total_alpha
        # Composite over the average colour: c = avg * (1 - a) + a * c.
        red, green, blue = (
            [m + a * (c - m) for a, c in zip(alphas, bands[k], strict=True)]
            for k, m in enumerate(avg)
        )
    else:  # opaque (most photos): nothing to composite
        red, green, blue = bands
    l_limit = 5 if has_alpha else 7  # fewer luminance terms when alpha needs the room
    longest = max(width, height)
    lx = max(1, _round(l_limit * width / longest))
    ly = max(1, _round(l_limit * height / longest))
    lum = [(r + g + b) / 3 for r, g, b in zip(red, green, blue, strict=True)]
    p = [(r + g) / 2 - b for r, g, b in zip(red, green, blue, strict=True)]
    q = [r - g for r, g in zip(red, green, strict=True)]
    l_dc, l_ac, l_scale = _channel(lum, width, height, max(3, lx), max(3, ly))
    p_dc, p_ac, p_scale = _channel(p, width, height, 3, 3)
    q_dc, q_ac, q_scale = _channel(q, width, height, 3, 3)
    landscape = width > height
    header24 = (
        _round(63 * l_dc)
        | _round(31.5 + 31.5 * p_dc) << 6
        | _round(31.5 + 31.5 * q_dc) << 12
        | _round(31 * l_scale) << 18
        | int(has_alpha) << 23
    )
    header16 = (ly if landscape else lx) | _round(63 * p_scale) << 3
    header16 |= _round(63 * q_scale) << 9 | int(landscape) << 15
    out = bytearray(header24.to_bytes(3, "little") + header16.to_bytes(2, "little"))
    terms = [l_ac, p_ac, q_ac]
    if has_alpha:
        a_dc, a_ac, a_scale = _channel(alphas, width, height, 5, 5)
        out.append(_round(15 * a_dc) | _round(15 * a_scale) << 4)
        terms.append(a_ac)
    nibbles = [_round(15 * f) for ac in terms for f in ac]
    for index in range(0, len(nibbles), 2):
        high = nibbles[index + 1] if index + 1 < len(nibbles) else 0
        out.append(nibbles[index] | high << 4)
    return bytes(out)


# --- inputs ------------------------------------------------------------------------------

#: Pictures: photo-like (noise, smooth), graphics-like (flat, palette, mirrored: exact zero
#: terms, where the definition's bytes rest on rounding noise), and grey (P = Q = 0).
KINDS: Final = ("noise", "smooth", "flat", "palette", "grey", "mirrored")
#: Alpha: none, every value, smooth, cut-out (0 or 255), one value throughout, all clear.
ALPHAS: Final = ("opaque", "noise", "smooth", "binary", "uniform", "clear")


def _smooth(width: int, height: int, rng: random.Random, grain: float) -> list[int]:
    """A few low-frequency waves and some grain, clamped to bytes (a photo's preview)."""
    waves = [
        (rng.uniform(-90, 90), rng.uniform(0, 3), rng.uniform(0, 3), rng.uniform(0, 6.3))
        for _ in range(3)
    ]
    base = rng.uniform(60, 200)
    out = []
    for y in range(height):
        for x in range(width):
            value = base + rng.gauss(0, grain)
            for amplitude, fx, fy, phase in waves:
                value += amplitude * math.cos(fx * x / width * 3.1 + fy * y / height * 3.1 + phase)
            out.append(min(255, max(0, round(value))))
    return out


def picture(width: int, height: int, seed: int, kind: str, alpha: str) -> bytes:
    """Seeded RGBA of *kind* with *alpha* (see KINDS and ALPHAS)."""
    rng = random.Random(seed)
    count = width * height
    if kind == "noise":
        bands = [list(rng.randbytes(count)) for _ in range(3)]
    elif kind == "flat":
        bands = [[rng.randrange(256)] * count for _ in range(3)]
    elif kind == "palette":
        colours = [rng.randbytes(3) for _ in range(rng.randint(2, 4))]
        block = rng.randint(1, 8)
        picks = [
            colours[(x // block + y // block) % len(colours)]
            for y in range(height)
            for x in range(width)
        ]
        bands = [[c[k] for c in picks] for k in range(3)]
    elif kind == "grey":
        bands = [_smooth(width, height, rng, 3.0)] * 3
    elif kind == "mirrored":
        half = [_smooth((width + 1) // 2, height, rng, 3.0) for _ in range(3)]
        bands = []
        for band in half:
            rows = [
                band[y * ((width + 1) // 2) : (y + 1) * ((width + 1) // 2)] for y in range(height)
            ]
            bands.append([v for row in rows for v in row + row[: width // 2][::-1]])
    else:
        bands = [_smooth(width, height, rng, 4.0) for _ in range(3)]
    if alpha == "opaque":
        alphas = [255] * count
    elif alpha == "noise":
        alphas = list(rng.randbytes(count))
    elif alpha == "smooth":
        alphas = _smooth(width, height, rng, 2.0)
    elif alpha == "binary":
        alphas = [rng.choice((0, 255, 255)) for _ in range(count)]
    elif alpha == "uniform":
        alphas = [rng.randint(1, 254)] * count
    else:
        alphas = [0] * count
    rgba = bytearray(4 * count)
    for k, band in enumerate([*bands, alphas]):
        rgba[k::4] = bytes(band)
    return bytes(rgba)


def fast_channels(width: int, height: int, rgba: bytes) -> list[placeholder.Fields | None]:
    """The fast path's fields per channel, None where it leaves a channel to the definition."""
    has_alpha = rgba[3::4] != b"\xff" * (width * height)
    return placeholder._fast_fields(width, height, rgba, has_alpha)


def check(width: int, height: int, rgba: bytes) -> bool:
    """Assert the module's bytes are the reference's, and so are the definition's fields
    packed, and that every channel the fast path answers has the definition's fields.
    True if the fast path answered every channel."""
    want = reference_thumbhash(width, height, rgba)
    assert placeholder.thumbhash(width, height, rgba) == want, (width, height, rgba.hex())
    has_alpha = rgba[3::4] != b"\xff" * (width * height)
    channels = range(4 if has_alpha else 3)
    exact = placeholder._exact_fields(width, height, rgba, has_alpha, channels)
    assert placeholder._pack(width, height, has_alpha, exact) == want
    fast = fast_channels(width, height, rgba)
    for got, wanted in zip(fast, exact, strict=True):
        assert got in (None, wanted), (width, height, rgba.hex())
    return None not in fast


# --- (a) hypothesis: any size the function takes ----------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.integers(1, 100),
    st.integers(1, 100),
    st.integers(0, 2**32 - 1),
    st.sampled_from(KINDS),
    st.sampled_from(ALPHAS),
)
@example(100, 100, 1, "smooth", "opaque")
@example(100, 100, 2, "noise", "noise")
@example(1, 1, 3, "noise", "opaque")
@example(1, 100, 4, "smooth", "smooth")
def test_pictures_of_any_size(width: int, height: int, seed: int, kind: str, alpha: str) -> None:
    check(width, height, picture(width, height, seed, kind, alpha))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_raw_bytes_of_small_images(data: st.DataObject) -> None:
    """Hypothesis' own bytes (runs of zeros, repeats, extremes) on images of a few pixels."""
    width, height = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8))
    rgba = bytearray(data.draw(st.binary(min_size=4 * width * height, max_size=4 * width * height)))
    if data.draw(st.booleans()):
        rgba[3::4] = b"\xff" * (width * height)
    check(width, height, bytes(rgba))


# --- (b) seeded previews of the worker's sizes -------------------------------------------


def previews(n: int) -> Iterator[tuple[int, int, bytes, str, str]]:
    """*n* seeded previews of 1..32 a side, most with one side 32 as the worker makes them."""
    rng = random.Random(20261207)
    for seed in range(n):
        width, height = rng.randint(1, 32), rng.randint(1, 32)
        if rng.random() < 0.6:
            width, height = (32, height) if rng.random() < 0.5 else (width, 32)
        kind = rng.choice(KINDS)
        alpha = rng.choice(ALPHAS) if rng.random() < 0.5 else "opaque"
        yield width, height, picture(width, height, seed, kind, alpha), kind, alpha


def test_seeded_previews_of_the_worker_sizes() -> None:
    answered: dict[bool, list[bool]] = {False: [], True: []}
    kinds: set[tuple[str, str]] = set()
    for width, height, rgba, kind, alpha in previews(2400):
        fast = check(width, height, rgba)
        kinds.add((kind, alpha))
        photo_like = kind in ("noise", "smooth", "grey") and alpha in ("opaque", "noise", "smooth")
        if photo_like and min(width, height) >= 8 and max(width, height) == 32:
            answered[alpha != "opaque"].append(fast)
    assert len(kinds) == len(KINDS) * len(ALPHAS)  # all-clear and single-colour included
    # Photo-like previews take the fast path (else the speed is gone): measured 100 % opaque.
    for has_alpha, results in answered.items():
        assert len(results) > 50, has_alpha
        assert sum(results) >= 0.98 * len(results), (has_alpha, sum(results), len(results))


def test_single_colour_and_symmetric_images_go_to_the_definition() -> None:
    """Their AC terms are exactly 0: _exact's bytes come from rounding noise there."""
    for width, height, kind in ((32, 21, "flat"), (21, 32, "flat"), (32, 20, "mirrored")):
        rgba = picture(width, height, 7, kind, "opaque")
        assert fast_channels(width, height, rgba)[0] is None  # L
        check(width, height, rgba)
    ramp = bytes(v for x in range(32) for v in (90, 140, 200, 8 * x)) * 20  # alpha: x only
    assert fast_channels(32, 20, ramp)[3] is None
    check(32, 20, ramp)


def test_extreme_contrast_at_the_largest_size() -> None:
    """Stripes and checks of 0 and 255 at 100 rows: the largest sums the lanes can hold."""
    for width, height in ((100, 100), (7, 100), (100, 3)):
        count = width * height
        for pattern in range(4):
            values = [
                255 * ((y // (1 + pattern) + (x if pattern == 3 else 0)) % 2)
                for y in range(height)
                for x in range(width)
            ]
            for alpha in ([255] * count, [255 - v for v in values], [254] + [255] * (count - 1)):
                rgba = bytearray(4 * count)
                rgba[0::4], rgba[1::4], rgba[2::4] = bytes(values), bytes(count), bytes(values)
                rgba[3::4] = bytes(alpha)
                check(width, height, bytes(rgba))


def test_bytes_like_input() -> None:
    rgba = picture(32, 21, 9, "smooth", "smooth")
    want = reference_thumbhash(32, 21, rgba)
    assert placeholder.thumbhash(32, 21, bytearray(rgba)) == want
    assert placeholder.thumbhash(32, 21, memoryview(rgba)) == want  # type: ignore[arg-type]


def test_exact_is_the_reference() -> None:
    for width, height, rgba, _, _ in previews(40):
        has_alpha = rgba[3::4] != b"\xff" * (width * height)
        want = reference_thumbhash(width, height, rgba)
        assert placeholder._exact(width, height, rgba, has_alpha) == want


def test_encode_is_base64_of_the_reference() -> None:
    rgba = picture(32, 21, 5, "smooth", "opaque")
    assert (
        placeholder.encode(32, 21, rgba)
        == base64.b64encode(reference_thumbhash(32, 21, rgba)).decode()
    )


# --- (c) previews of real photos, built as the worker builds them -------------------------


def photo_sources() -> list[tuple[str, bytes]]:
    found = {}
    for folder in (DATA, SAMPLES):
        for path in sorted(folder.glob("*.jp*g")) + sorted(folder.glob("*.png")):
            found.setdefault(path.read_bytes(), "jpeg" if path.suffix != ".png" else "png")
    return [(fmt, data) for data, fmt in found.items()]


def photo_previews() -> Iterator[vips.Preview]:
    """The photos themselves, then seeded crops of them saved as JPEG (with EXIF rotations:
    the sampled path), PNG, PNG with an alpha mask and WebP (the general path)."""
    sources = photo_sources()
    for fmt, data in sources:
        yield vips.decode_and_preview(data, fmt, vips.header(data, fmt), jobs.PREVIEW_SIZE)
    rng = random.Random(42)
    images = [pyvips.Image.new_from_buffer(data, "") for _, data in sources]
    for index in range(160):
        image = images[index % len(images)]
        width = rng.randint(48, image.width)
        height = rng.randint(48, image.height)
        crop = image.crop(
            rng.randint(0, image.width - width),
            rng.randint(0, image.height - height),
            width,
            height,
        )
        crop = crop.extract_band(0, n=3) if crop.bands > 3 else crop
        fmt = ("jpeg", "png", "alpha", "webp")[index % 4]
        if fmt == "jpeg":
            data = bytes(crop.jpegsave_buffer(Q=rng.randint(50, 95)))
            data = with_app1(data, b"Exif\x00\x00" + tiff_exif(rng.randint(1, 8), False))
        elif fmt == "alpha":
            mask = crop[1].linear(2.0, -80.0).maxpair(0).minpair(255).cast("uchar")
            data = bytes(crop.bandjoin(mask).pngsave_buffer())
            fmt = "png"
        elif fmt == "png":
            data = bytes(crop.pngsave_buffer())
        else:
            data = bytes(crop.webpsave_buffer(Q=80))
        yield vips.decode_and_preview(data, fmt, vips.header(data, fmt), jobs.PREVIEW_SIZE)


def test_previews_of_real_photos() -> None:
    answered: dict[bool, list[bool]] = {False: [], True: []}
    for preview in photo_previews():
        has_alpha = preview.rgba[3::4] != b"\xff" * (preview.width * preview.height)
        answered[has_alpha].append(check(preview.width, preview.height, preview.rgba))
    assert len(answered[False]) >= 120
    assert len(answered[True]) >= 40
    # Measured: every opaque one on the fast path; with alpha, all but 32 x 3 and 32 x 4
    # (alpha keeps 5 vertical terms: a height under 5 cannot carry them, they are exactly 0).
    assert sum(answered[False]) >= 0.98 * len(answered[False])
    assert sum(answered[True]) >= 0.85 * len(answered[True])
