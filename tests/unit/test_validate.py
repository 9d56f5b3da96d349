"""HeaderProber: format and size from header bytes, and refusals a person can act on.

Images are made in memory with Pillow at odd sizes; structures Pillow cannot write (AVIF grids,
64-bit box sizes, TIFF SHORT/LONG tags, HEIC brands) are built by hand from the specs.
"""

from __future__ import annotations

import io
import random
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, features

import pixdrop.imaging
from pixdrop.errors import UnprocessableImage
from pixdrop.imaging import HeaderProber
from pixdrop.imaging.validate import CONTENT_TYPES, DEFAULT_HEAD_SIZE
from pixdrop.models import ImageInfo
from pixdrop.ports import ImageProber

DATA = Path(__file__).parent.parent / "data"
W, H = 37, 23
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REASONS = {
    "empty",
    "unknown-format",
    "unsupported-format",
    "format-not-allowed",
    "truncated-header",
    "header-too-large",
    "corrupt-header",
    "zero-dimensions",
}


def has_avif() -> bool:
    # Pillow < 11.2 does not know the feature and warns; the suite turns warnings into errors.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return bool(features.check("avif"))


def picture(mode: str = "RGB", size: tuple[int, int] = (W, H), shade: int = 0) -> Image.Image:
    """A picture with some structure, so encoders do not take degenerate shortcuts."""
    image = Image.linear_gradient("L").resize(size).convert(mode)
    return image.point(lambda v: (v + shade) % 256) if mode in ("L", "RGB") else image


def encode(fmt: str, image: Image.Image | None = None, **params: object) -> bytes:
    out = io.BytesIO()
    (image or picture()).save(out, fmt, **params)
    return out.getvalue()


def animated(fmt: str, **params: object) -> bytes:
    frames = [picture(shade=s) for s in (0, 80, 160)]
    return encode(fmt, frames[0], save_all=True, append_images=frames[1:], duration=80, **params)


def big_metadata_jpeg() -> bytes:
    """A JPEG whose EXIF and ICC segments put the frame header ~360 KB into the file."""
    exif = b"Exif\x00\x00II*\x00\x08\x00\x00\x00" + b"\x00" * 60_000
    icc = bytes(range(256)) * 1200  # never holds 0xFF 0xC0, so SOF is found by the index below
    return encode("JPEG", exif=exif, icc_profile=icc)


def probe(data: bytes, **kwargs: Any) -> ImageInfo:
    return HeaderProber(**kwargs).probe(data)


def refusal(data: bytes, **kwargs: Any) -> UnprocessableImage:
    with pytest.raises(UnprocessableImage) as caught:
        probe(data, **kwargs)
    assert caught.value.extra["reason"] in REASONS
    return caught.value


# --- hand-built structures ----------------------------------------------------------------------


def png_header(
    width: int = W, height: int = H, depth: int = 8, colour: int = 2, length: int = 13
) -> bytes:
    fields = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    crc = zlib.crc32(b"IHDR" + fields)
    return PNG_SIGNATURE + struct.pack(">I4s", length, b"IHDR") + fields + struct.pack(">I", crc)


def tiff(order: bytes, entries: list[tuple[int, int, int]], ifd: int = 8) -> bytes:
    """A TIFF header and one IFD of (tag, type, value) entries, each with count 1."""
    e = "<" if order == b"II" else ">"
    out = order + struct.pack(e + "HI", 42, ifd) + b"\x00" * (ifd - 8)
    out += struct.pack(e + "H", len(entries))
    for tag, kind, value in entries:
        field = struct.pack(e + "HH", value, 0) if kind == 3 else struct.pack(e + "I", value)
        out += struct.pack(e + "HHI", tag, kind, 1) + field
    return out + struct.pack(e + "I", 0)


def box(kind: bytes, payload: bytes = b"") -> bytes:
    return struct.pack(">I4s", 8 + len(payload), kind) + payload


def full_box(kind: bytes, payload: bytes, version: int = 0, flags: int = 0) -> bytes:
    return box(kind, struct.pack(">I", version << 24 | flags) + payload)


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    return box(b"ftyp", major + b"\x00\x00\x00\x00" + b"".join(compatible))


def ispe(width: int, height: int) -> bytes:
    return full_box(b"ispe", struct.pack(">II", width, height))


def heif(
    properties: bytes, ipma: bytes | None, primary: int | None = 1, brands: bytes = b"avif"
) -> bytes:
    """ftyp + meta (hdlr, pitm, iprp[ipco, ipma]) + an mdat running to the end (size 0)."""
    iprp = box(b"ipco", properties) + (ipma or b"")
    meta = full_box(b"hdlr", b"\x00" * 4 + b"pict" + b"\x00" * 13)
    if primary is not None:
        meta += full_box(b"pitm", struct.pack(">H", primary))
    meta = full_box(b"meta", meta + box(b"iprp", iprp))
    return ftyp(brands, b"mif1", brands) + meta + struct.pack(">I4s", 0, b"mdat") + b"\x00" * 16


def ipma(*entries: tuple[int, list[int]], wide: bool = False) -> bytes:
    """ipma with (item, [1-based property indices]) entries; *wide* = 16-bit indices."""
    body = struct.pack(">I", len(entries))
    for item, indices in entries:
        body += struct.pack(">HB", item, len(indices))
        for index in indices:
            body += struct.pack(">H", 0x8000 | index) if wide else bytes([0x80 | index])
    return full_box(b"ipma", body, flags=1 if wide else 0)


# --- formats and sizes --------------------------------------------------------------------------

GOOD: dict[str, tuple[str, Callable[[], bytes]]] = {
    "jpeg-baseline": ("jpeg", lambda: encode("JPEG", quality=90)),
    "jpeg-progressive": ("jpeg", lambda: encode("JPEG", progressive=True)),
    "jpeg-cmyk": ("jpeg", lambda: encode("JPEG", picture("CMYK"))),
    "jpeg-grey": ("jpeg", lambda: encode("JPEG", picture("L"))),
    "jpeg-big-exif-icc": ("jpeg", big_metadata_jpeg),
    "png-rgb": ("png", lambda: encode("PNG")),
    "png-16-bit": ("png", lambda: encode("PNG", picture("I;16"))),
    "png-palette": ("png", lambda: encode("PNG", picture("P"))),
    "png-rgba-interlaced": ("png", lambda: encode("PNG", picture("RGBA"), interlace=1)),
    "gif": ("gif", lambda: encode("GIF")),
    "gif-animated": ("gif", lambda: animated("GIF", loop=0)),
    "webp-lossy": ("webp", lambda: encode("WEBP", quality=80)),
    "webp-lossless": ("webp", lambda: encode("WEBP", lossless=True)),
    "webp-lossy-alpha": ("webp", lambda: encode("WEBP", picture("RGBA"))),
    "webp-animated": ("webp", lambda: animated("WEBP")),
    "tiff-little-endian": ("tiff", lambda: encode("TIFF")),
    "tiff-big-endian": ("tiff", lambda: encode("TIFF", picture("I;16B"))),
    "tiff-lzw": ("tiff", lambda: encode("TIFF", compression="tiff_lzw")),
}


@pytest.mark.parametrize("name", GOOD)
def test_sniffs_format_and_size(name: str) -> None:
    fmt, make = GOOD[name]
    data = make()
    with Image.open(io.BytesIO(data)) as check:  # the fixture is what we think it is
        assert check.size == (W, H)
    assert probe(data) == ImageInfo(fmt, CONTENT_TYPES[fmt], W, H)
    assert probe(data[:DEFAULT_HEAD_SIZE]) == probe(data)


def test_each_variant_takes_the_path_it_is_meant_to() -> None:
    """Guard the fixtures: each WebP kind, JPEG SOF type and TIFF byte order really occurs."""
    assert encode("WEBP", quality=80)[12:16] == b"VP8 "
    assert encode("WEBP", lossless=True)[12:16] == b"VP8L"
    assert animated("WEBP")[12:16] == b"VP8X"
    assert b"\xff\xc2" in encode("JPEG", progressive=True)
    assert encode("PNG", picture("I;16"))[24] == 16  # IHDR bit depth
    assert encode("PNG", picture("P"))[25] == 3  # IHDR colour type: palette
    assert encode("TIFF")[:4] == b"II*\x00"
    assert encode("TIFF", picture("I;16B"))[:4] == b"MM\x00*"
    assert big_metadata_jpeg().index(b"\xff\xc0") > 300_000


@pytest.mark.skipif(not has_avif(), reason="this Pillow build has no AVIF encoder")
@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_avif_from_pillow(mode: str) -> None:
    data = encode("AVIF", picture(mode), quality=60)
    assert probe(data) == ImageInfo("avif", "image/avif", W, H)


@pytest.mark.parametrize(
    ("name", "size"), [("chelsea.png", (451, 300)), ("rocket.jpg", (640, 427))]
)
def test_real_photos(name: str, size: tuple[int, int]) -> None:
    path = DATA / name
    with Image.open(path) as image:
        assert image.size == size
    head = path.read_bytes()[:DEFAULT_HEAD_SIZE]
    info = probe(head)
    assert (info.width, info.height) == size
    assert info.format == {".png": "png", ".jpg": "jpeg"}[path.suffix]


@pytest.mark.parametrize("order", [b"II", b"MM"])
@pytest.mark.parametrize("kind", [3, 4])  # SHORT, LONG
def test_tiff_short_and_long_tags(order: bytes, kind: int) -> None:
    data = tiff(order, [(254, 4, 0), (256, kind, 1234), (257, kind, 567), (258, 3, 8)])
    assert probe(data) == ImageInfo("tiff", "image/tiff", 1234, 567)


def test_avif_takes_the_primary_items_size_not_a_tiles() -> None:
    grid = heif(ispe(64, 64) + ispe(512, 256), ipma((2, [1]), (1, [2])))
    assert probe(grid) == ImageInfo("avif", "image/avif", 512, 256)
    wide = heif(ispe(64, 64) + ispe(512, 256), ipma((2, [1]), (1, [2]), wide=True))
    assert probe(wide).width == 512


def test_avif_without_pitm_uses_the_first_ispe() -> None:
    assert probe(heif(ispe(300, 200) + ispe(10, 10), None, primary=None)).width == 300


def test_avif_brand_among_compatible_brands_and_64_bit_boxes() -> None:
    data = heif(ispe(99, 77), ipma((1, [1])))
    free = struct.pack(">I4sQ", 1, b"free", 24) + b"\x00" * 8  # size 1: 64-bit size follows
    ftyp_box = ftyp(b"mif1", b"miaf", b"avif")
    data = ftyp_box + free + data[len(ftyp(b"avif", b"mif1", b"avif")) :]
    assert probe(data) == ImageInfo("avif", "image/avif", 99, 77)


# --- refusals -------------------------------------------------------------------------------------


def test_empty() -> None:
    error = refusal(b"")
    assert error.extra == {"reason": "empty"}
    assert error.detail == "The file is empty (0 bytes); send the image's bytes."
    assert error.status == 422


@pytest.mark.parametrize(
    ("data", "looks_like", "phrase"),
    [
        (b"<!DOCTYPE html>\n<html><body>hi</body></html>", "html", "HTML"),
        (b"\xef\xbb\xbf  <!-- x --><html lang=en>", "html", "HTML"),
        (b'<?xml version="1.0"?><rss version="2.0"></rss>', "xml", "XML"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "pdf", "PDF"),
        (b"PK\x03\x04\x14\x00\x00\x00\x08\x00", "zip", "ZIP"),
        (b"Just some notes.\nNothing to see here.\n", "text", "plain text"),
        (b'{"not": "an image"}', "text", "plain text"),
        (ftyp(b"isom", b"isom", b"mp41") + box(b"moov"), "iso-media", "MP4"),
    ],
)
def test_names_common_non_images(data: bytes, looks_like: str, phrase: str) -> None:
    error = refusal(data)
    assert error.extra == {"reason": "unknown-format", "looks_like": looks_like}
    assert error.detail.startswith("The bytes are not a JPEG, PNG, GIF, WebP, AVIF or TIFF image")
    assert phrase in error.detail


def test_unknown_format_message() -> None:
    assert refusal(b"<!doctype html><title>x</title>").detail == (
        "The bytes are not a JPEG, PNG, GIF, WebP, AVIF or TIFF image (they look like HTML)."
    )


def test_html_named_jpg_is_still_html(tmp_path: Path) -> None:
    path = tmp_path / "holiday.jpg"  # only the bytes matter; the name never reaches the prober
    path.write_bytes(b"<html><head><title>Not Found</title></head></html>")
    assert refusal(path.read_bytes()).extra["looks_like"] == "html"


def test_svg_is_refused_because_of_scripts() -> None:
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)'
    error = refusal(svg + b"</script></svg>")
    assert error.extra == {"reason": "unknown-format", "looks_like": "svg"}
    assert "SVG, which is not accepted because it can carry scripts" in error.detail


def test_unrecognised_binary() -> None:
    error = refusal(bytes(range(7, 200)))
    assert error.extra == {"reason": "unknown-format"}


def test_heic_is_not_supported() -> None:
    error = refusal(heif(ispe(10, 10), None, brands=b"heic"))
    assert error.extra == {"reason": "unsupported-format", "format": "heic"}
    assert "HEIC" in error.detail
    assert "JPEG" in error.detail


def test_format_not_allowed() -> None:
    error = refusal(encode("GIF"), allowed_formats=["png", "jpeg"])
    assert error.extra == {
        "reason": "format-not-allowed",
        "format": "gif",
        "allowed": ["jpeg", "png"],
    }
    assert error.detail == "GIF images are not accepted here; send a JPEG or PNG image."
    assert probe(encode("PNG"), allowed_formats={"png"}).format == "png"


def test_unknown_format_message_lists_only_allowed_formats() -> None:
    assert refusal(b"hello", allowed_formats=["avif"]).detail.startswith(
        "The bytes are not an AVIF image"
    )


@pytest.mark.parametrize("allowed", [[], ["jpg"], ["jpeg", "bmp"], "jpeg"])
def test_allowed_formats_are_checked(allowed: list[str] | str) -> None:
    with pytest.raises(ValueError, match="allowed_formats"):
        HeaderProber(allowed_formats=allowed)


def test_truncated_jpeg_before_sof() -> None:
    data = encode("JPEG")
    error = refusal(data[: data.index(b"\xff\xc0") + 3])
    assert error.extra == {"reason": "truncated-header", "format": "jpeg"}
    assert "truncated" in error.detail


def test_jpeg_sof_beyond_head_size_says_so() -> None:
    prober = HeaderProber(head_size=64 * 1024)
    with pytest.raises(UnprocessableImage) as caught:
        prober.probe(big_metadata_jpeg()[: prober.head_size])
    assert caught.value.extra == {"reason": "header-too-large", "format": "jpeg", "limit": 65536}


def test_truncated_png_header() -> None:
    assert refusal(encode("PNG")[:20]).extra == {"reason": "truncated-header", "format": "png"}


@pytest.mark.parametrize(
    "data",
    [
        png_header(length=14),  # IHDR must be 13 bytes
        png_header(depth=3),  # no colour type allows depth 3
        png_header(colour=5),  # no such colour type
        png_header(width=2**31),  # beyond PNG's integer limit
        png_header()[:19] + b"\x99" + png_header()[20:],  # width changed, CRC kept
        PNG_SIGNATURE + struct.pack(">I4s", 5, b"tEXt") + b"a\x00bcd" + png_header()[8:],
        PNG_SIGNATURE + struct.pack(">I4s", 0, b"CgBI") + png_header()[8:],  # IHDR not first
    ],
)
def test_png_with_bad_ihdr(data: bytes) -> None:
    assert refusal(data).extra == {"reason": "corrupt-header", "format": "png"}


@pytest.mark.parametrize(
    "data",
    [
        png_header(width=0),
        png_header(height=0),
        b"GIF89a" + struct.pack("<HH", 0, 23) + b"\x00" * 10,
        tiff(b"II", [(256, 3, 0), (257, 3, 9)]),
        b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x00\x25",  # JPEG with height 0 (DNL)
    ],
)
def test_zero_dimensions(data: bytes) -> None:
    error = refusal(data)
    assert error.extra["reason"] == "zero-dimensions"
    assert 0 in (error.extra["width"], error.extra["height"])


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"\xff\xd8\xff\xe0\x00\x00JFIF", "jpeg"),  # segment length 0 would never move on
        (b"\xff\xd8\xff\xe0\x00\x01JFIF", "jpeg"),
        (b"\xff\xd8\xff\xda\x00\x08" + b"\x00" * 8, "jpeg"),  # scan before frame header
        (b"\xff\xd8\xff\xc0\x00\x02\x08\x00\x10\x00\x10", "jpeg"),  # SOF length too small
        (b"RIFF\x00\x00\x00\x00WEBPVP8 \x0a\x00\x00\x00" + b"\x00" * 10, "webp"),  # no start code
        (b"RIFF\x00\x00\x00\x00WEBPVP8L\x05\x00\x00\x00" + b"\x00" * 5, "webp"),  # no 0x2F
        (b"RIFF\x00\x00\x00\x00WEBPALPH\x0a\x00\x00\x00" + b"\x00" * 10, "webp"),
        (b"RIFF\x00\x00\x00\x00WEBPVP8X\x02\x00\x00\x00" + b"\x00" * 10, "webp"),
        (tiff(b"II", [(256, 3, 5)]), "tiff"),  # no ImageLength
        (tiff(b"MM", [(256, 2, 5), (257, 3, 5)]), "tiff"),  # ASCII is not a size
        (b"II*\x00\x04\x00\x00\x00" + b"\x00" * 16, "tiff"),  # IFD overlaps the header
        (ftyp(b"avif") + struct.pack(">I4s", 4, b"meta") + b"\x00" * 32, "avif"),  # size < 8
        (ftyp(b"avif") + struct.pack(">I4sQ", 1, b"free", 3) + b"\x00" * 32, "avif"),
        (heif(ispe(5, 5)[:-4], None), "avif"),  # ispe too short
        (heif(box(b"pixi"), ipma((1, [1]))), "avif"),  # no ispe at all
    ],
)
def test_corrupt_headers(data: bytes, fmt: str) -> None:
    error = refusal(data)
    assert error.extra == {"reason": "corrupt-header", "format": fmt}
    assert error.detail.startswith(f"The {error.detail.split()[1]} header is corrupt: ")


@pytest.mark.parametrize(
    ("data", "fmt"),
    [
        (b"\xff\xd8\xff", "jpeg"),
        (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01", "jpeg"),
        (b"\xff\xd8" + b"\xff" * 200_000, "jpeg"),  # fill bytes all the way down
        (b"GIF87a\x25", "gif"),
        (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp"),
        (tiff(b"II", [], ifd=8)[:8], "tiff"),
        (b"MM\x00*\x00\x00\x10\x00", "tiff"),  # IFD far beyond the bytes at hand
        (ftyp(b"avif", b"mif1"), "avif"),  # meta not reached
    ],
)
def test_truncated_headers(data: bytes, fmt: str) -> None:
    assert refusal(data).extra == {"reason": "truncated-header", "format": fmt}


# --- robustness ---------------------------------------------------------------------------------


def fuzz_seeds() -> list[bytes]:
    seeds = [make() for _, make in GOOD.values() if make is not big_metadata_jpeg]
    seeds += [
        tiff(b"MM", [(256, 4, 70000), (257, 3, 5)]),
        heif(ispe(64, 64) + ispe(512, 256), ipma((2, [1]), (1, [2]))),
        heif(ispe(64, 64) + ispe(512, 256), ipma((2, [1]), (1, [2]), wide=True)),
    ]
    return [seed[:4096] for seed in seeds]


def mutate(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(buf) or 1)
        op = rng.randrange(6)
        if op == 0:  # truncate
            del buf[at:]
        elif op == 1:  # flip a byte
            buf[at : at + 1] = bytes([rng.randrange(256)])
        elif op == 2:  # a hostile 16/32/64-bit length
            value = rng.choice([0, 1, 2, 7, 8, 0xFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63])
            width = rng.choice([2, 4, 8])
            buf[at : at + width] = (value % 2 ** (8 * width)).to_bytes(width, "big")
        elif op == 3:  # delete a run
            del buf[at : at + rng.randint(1, 16)]
        elif op == 4:  # insert noise
            buf[at:at] = rng.randbytes(rng.randint(1, 16))
        else:  # duplicate a run elsewhere
            buf[at:at] = buf[rng.randrange(len(buf) or 1) :][: rng.randint(1, 64)]
    return bytes(buf)


def test_fuzzed_headers_only_ever_raise_unprocessable_image() -> None:
    rng = random.Random(20240917)
    seeds = fuzz_seeds()
    prober = HeaderProber()
    started = time.perf_counter()
    outcomes: dict[str, int] = {}
    for _ in range(3000):
        data = mutate(rng, rng.choice(seeds))
        try:
            info: ImageInfo | None = prober.probe(data)
        except UnprocessableImage as error:
            info, outcome = None, error.extra["reason"]
        else:
            outcome = "ok"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        assert outcome in {*REASONS, "ok"}, data
        if info is not None:
            assert info.width > 0, data
            assert info.height > 0, data
            assert info.content_type == CONTENT_TYPES[info.format]
    assert time.perf_counter() - started < 20
    # The mutations reach both sides: some survive, and the parsers' refusals are exercised.
    assert {"ok", "truncated-header", "corrupt-header", "unknown-format"} <= outcomes.keys()


def test_hostile_lengths_do_not_spin() -> None:
    """Lengths of 0, or pointing backwards or far ahead, end promptly in a refusal."""
    samples = [
        b"\xff\xd8" + b"\xff\xe1\x00\x00" * 50_000,
        b"\xff\xd8\xff\x00" * 200_000,
        ftyp(b"avif") + b"\x00\x00\x00\x00meta" + b"\x00\x00\x00\x00" * 100,
        ftyp(b"avif") + full_box(b"meta", struct.pack(">I4s", 0, b"iprp")),
        heif(ispe(8, 8), full_box(b"ipma", struct.pack(">I", 0xFFFFFFFF) + b"\x00\x01\x05")),
        tiff(b"II", [(300, 3, 0)] * 10)[:10] + b"\xff\xff" + b"\x00" * 30,
    ]
    started = time.perf_counter()
    for data in samples:
        refusal(data)
    assert time.perf_counter() - started < 5


# --- the public surface ------------------------------------------------------------------------


def test_public_surface() -> None:
    assert pixdrop.imaging.__all__ == ["HeaderProber"]
    prober: ImageProber = HeaderProber()
    assert prober.head_size == DEFAULT_HEAD_SIZE >= 1 << 20
    assert list(CONTENT_TYPES) == ["jpeg", "png", "gif", "webp", "avif", "tiff"]
    assert set(CONTENT_TYPES.values()) == {
        "image/jpeg",
        "image/png",
        "image/gif",
        "image/webp",
        "image/avif",
        "image/tiff",
    }
