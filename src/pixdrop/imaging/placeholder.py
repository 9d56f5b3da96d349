"""ThumbHash placeholders: a blurred ~25-byte preview a page can show before the image loads.

The encoding follows the ThumbHash format (Evan Wallace, 2023): the image, composited over its
average colour, is split into a luminance channel L, two chroma channels P and Q and, if it has
transparency, alpha A. Each channel is reduced to a few low-frequency DCT coefficients: a DC
term, and AC terms normalised by their largest magnitude and quantised to 4 bits. A 5-byte
header carries the DC terms, the scales, the luminance grid size and the aspect ratio.

Input is RGBA of at most 100 x 100 pixels; callers shrink the image first (32 px is plenty for
the 7 x 7 coefficients kept at most).

**The definition and the fast path.** The bytes are defined by :func:`_exact`: floats per
pixel, composited and mixed into L, P, Q, then separable cosine sums in a fixed float order.
:func:`thumbhash` takes a faster way to the same bytes (:func:`_fast_fields`): the DCT is
linear, so each term is a cosine-weighted sum of the byte values of R, G, B (with alpha: of A
and of the premultiplied A x R, A x G, A x B), and L, P, Q follow from those sums. The
vertical pass multiplies whole rows at once: a row is one Python int with a 64-bit lane per
value (SIMD within a register), weighted by integer cosines (scaled by up to 2^29), rows y
and height-1-y added or subtracted first, as the cosines are symmetric. The horizontal pass
is float dot products over those lanes. About 3x faster in CPython for a 32 x 21 preview
(``python -m bench.thumbhash``).

Its terms differ from :func:`_exact`'s in the last bits, which matters only where a value
sits at a rounding boundary (a ``.5``). So the fast path carries a proven bound on how far
its terms and the definition's can each be from the exact ones (:func:`_error`), and rounds a
channel only if every value is further than that from a boundary; a channel where one is not
comes from the definition instead (:func:`_exact_fields`, that channel only). That is rare
for photos, and the rule where a term is exactly 0 and the definition normalises its rounding
noise, which no other order reproduces: a pure gradient or mirror-symmetric picture, the
frequencies a side of fewer pixels than terms cannot carry (32 x 2; 32 x 4 with alpha). A
single colour, all terms 0, goes to the definition at once. Grey pixels (R = G = B) make P
and Q exactly 0 in the definition too: those are known without it.
"""

from __future__ import annotations

import base64
import math
from array import array
from collections.abc import Sequence
from functools import cache
from itertools import repeat
from operator import add, mul, sub
from typing import Final

__all__ = ["encode", "thumbhash"]


#: Byte value -> fraction of 255, looked up instead of divided per pixel.
_UNIT: Final = [v / 255 for v in range(256)]
_OPAQUE: Final = b"\xff"

#: A channel's quantised header fields and AC values: (DC, scale, 4-bit AC terms).
Fields = tuple[int, int, list[int]]
#: Per channel (L, P, Q, A): the header's rounding of DC (offset, factor) and of the scale.
#: L's and A's DC round as 0.0 + 63 x DC (15 x DC), the same float as 63 x DC (a -0.0
#: turns into 0.0, which rounds the same).
_QUANTISATION: Final = (
    (0.0, 63.0, 31.0),
    (31.5, 31.5, 63.0),
    (31.5, 31.5, 63.0),
    (0.0, 15.0, 15.0),
)


def thumbhash(width: int, height: int, rgba: bytes) -> bytes:
    """The ThumbHash of a *width* x *height* RGBA image (at most 100 x 100)."""
    if not (0 < width <= 100 and 0 < height <= 100) or len(rgba) != 4 * width * height:
        raise ValueError(f"need RGBA of at most 100x100 pixels, got {width}x{height}")
    rgba = bytes(rgba)  # no copy of bytes; a bytearray or memoryview works as before
    has_alpha = rgba[3::4] != _OPAQUE * (width * height)
    if rgba == rgba[:4] * (width * height):  # one colour: every AC term exactly 0
        return _exact(width, height, rgba, has_alpha)
    fast = _fast_fields(width, height, rgba, has_alpha)
    missing = [channel for channel, fields in enumerate(fast) if fields is None]
    exact = dict(zip(missing, _exact_fields(width, height, rgba, has_alpha, missing), strict=True))
    return _pack(
        width, height, has_alpha, [exact[c] if f is None else f for c, f in enumerate(fast)]
    )


def encode(width: int, height: int, rgba: bytes) -> str:
    """The ThumbHash as standard base64, the form clients pass to ThumbHash decoders."""
    return base64.b64encode(thumbhash(width, height, rgba)).decode("ascii")


def _round(value: float) -> int:
    # Half away from... up, as the format's reference does (Python's round() goes to even).
    return math.floor(value + 0.5)


@cache
def _cosines(size: int, terms: int) -> list[list[float]]:
    """The DCT's cosines along one side, per frequency (a preview has few distinct sizes)."""
    return [[math.cos(math.pi / size * f * (i + 0.5)) for i in range(size)] for f in range(terms)]


def _luma_grid(width: int, height: int, has_alpha: bool) -> tuple[int, int]:
    """lx, ly: the luminance terms along each side (before the minimum of 3)."""
    l_limit = 5 if has_alpha else 7  # fewer luminance terms when alpha needs the room
    longest = max(width, height)
    return max(1, _round(l_limit * width / longest)), max(1, _round(l_limit * height / longest))


def _pack(width: int, height: int, has_alpha: bool, channels: Sequence[Fields]) -> bytes:
    """The hash's bytes from the fields of L, P, Q (and A)."""
    (l_dc, l_scale, _), (p_dc, p_scale, _), (q_dc, q_scale, _) = channels[:3]
    lx, ly = _luma_grid(width, height, has_alpha)
    landscape = width > height
    header24 = l_dc | p_dc << 6 | q_dc << 12 | l_scale << 18 | int(has_alpha) << 23
    header16 = (ly if landscape else lx) | p_scale << 3 | q_scale << 9 | int(landscape) << 15
    out = bytearray(header24.to_bytes(3, "little") + header16.to_bytes(2, "little"))
    if has_alpha:
        a_dc, a_scale, _ = channels[3]
        out.append(a_dc | a_scale << 4)
    nibbles = [n for _, _, ac in channels for n in ac]
    for index in range(0, len(nibbles), 2):
        high = nibbles[index + 1] if index + 1 < len(nibbles) else 0
        out.append(nibbles[index] | high << 4)
    return bytes(out)


# The definition: floats per pixel, in the order that fixes every bit of the result.


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


def _composited(rgba: bytes, has_alpha: bool) -> list[list[float]]:
    """Red, green, blue per pixel as fractions, composited over the average colour."""
    bands = [list(map(_UNIT.__getitem__, rgba[k::4])) for k in range(3)]
    if not has_alpha:  # opaque (most photos): nothing to composite
        return bands
    alphas = list(map(_UNIT.__getitem__, rgba[3::4]))
    total_alpha = sum(alphas)
    avg = [0.0, 0.0, 0.0]
    if total_alpha:
        for band in range(3):
            avg[band] = sum(map(mul, alphas, bands[band])) / total_alpha
    # Composite over the average colour: c = avg * (1 - a) + a * c.
    return [
        [m + a * (c - m) for a, c in zip(alphas, bands[k], strict=True)] for k, m in enumerate(avg)
    ]


def _exact_fields(
    width: int, height: int, rgba: bytes, has_alpha: bool, channels: Sequence[int]
) -> list[Fields]:
    """The definition's fields of *channels* (0 L, 1 P, 2 Q, 3 A)."""
    if any(channel < 3 for channel in channels):
        red, green, blue = _composited(rgba, has_alpha)
    lx, ly = _luma_grid(width, height, has_alpha)
    out = []
    for channel in channels:
        nx = ny = 3
        if channel == 0:
            values = [(r + g + b) / 3 for r, g, b in zip(red, green, blue, strict=True)]
            nx, ny = max(3, lx), max(3, ly)
        elif channel == 1:
            values = [(r + g) / 2 - b for r, g, b in zip(red, green, blue, strict=True)]
        elif channel == 2:
            values = [r - g for r, g in zip(red, green, strict=True)]
        else:
            values = list(map(_UNIT.__getitem__, rgba[3::4]))
            nx = ny = 5
        dc, ac, scale = _channel(values, width, height, nx, ny)
        offset, dc_factor, scale_factor = _QUANTISATION[channel]
        out.append(
            (
                _round(offset + dc_factor * dc),
                _round(scale_factor * scale),
                [_round(15 * f) for f in ac],
            )
        )
    return out


def _exact(width: int, height: int, rgba: bytes, has_alpha: bool) -> bytes:
    """The ThumbHash by the definition alone (of validated input)."""
    channels = range(4 if has_alpha else 3)
    return _pack(width, height, has_alpha, _exact_fields(width, height, rgba, has_alpha, channels))


# The fast path: integer sums of bytes, used where they round as the definition does.

#: Room for the rounding of the quantisation arithmetic itself (ulps of numbers below 64).
_SLACK: Final = 1e-9


class _TooClose(Exception):
    """A value is too near a rounding boundary for the fast path to be sure of it."""


def _settled(value: float, margin: float) -> int:
    """``_round(value)``, if every value within *margin* of it rounds the same way."""
    shifted = value + 0.5
    whole = math.floor(shifted)
    if shifted - whole <= margin or whole + 1 - shifted <= margin:
        raise _TooClose
    return whole


#: 1.5 x 2^52 as a double, and its bits: for an integer v with |v| < 2^51, the bits
#: ``_MAGIC_BITS + v`` are the double 1.5 x 2^52 + v, so an int's 64-bit lanes holding such
#: bits read as doubles through a memoryview, with no conversion per lane.
_MAGIC: Final = 1.5 * 2.0**52
_MAGIC_BITS: Final = 0x4338_0000_0000_0000
#: Added to every lane before a whole int is shifted by lanes: keeps each lane non-negative,
#: so a shift moves lanes exactly (a negative lane would borrow from the one above).
_LIFT: Final = 1 << 55


@cache
def _triangle(nx: int, ny: int) -> tuple[int, ...]:
    """How many horizontal frequencies the format keeps for each vertical one (cy < ny)."""
    return tuple(-(-nx * (ny - cy) // ny) for cy in range(ny))


@cache
def _positions(counts: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """(cx, cy) of each term of a triangle, in the format's order."""
    return tuple((cx, cy) for cy, n in enumerate(counts) for cx in range(n))


@cache
def _bits(height: int, peak: int) -> int:
    """Bits of the integer cosines (at most 29: one digit of a Python int) for lanes of
    values up to *peak*: a sum of two or three lanes' vertical sums, at most 3 x height x
    peak x 2^bits, must stay below 2^51 to read as a double (:data:`_MAGIC`)."""
    bits = 29
    while (3 * height * peak) << bits >= 1 << 51:
        bits -= 1
    return bits


def _error(bits: int, composited: bool) -> float:
    """Bound on how far a DCT term (of a channel with values in [-1, 1]) can be from its exact
    value in the fast path plus in :func:`_exact`.

    The fast path's weights (integer cosine / 2^bits times float cosine) are within
    2^-(bits+1) + 3e-14 of the true products (math.cos is off by under 1e-14 for these
    arguments), and its lane sums are exact: its term is within that times the largest value
    it weights. That is 1, except for a composited channel, whose term is its mean (exact
    weight) plus the weighted a (c - mean), up to 2 for P and Q. The rest is float error: in
    :func:`_exact` at most (4n + w + h + 30) x 2^-53 for n pixels (the average colour sums
    all of them) plus 2e-14 from its cosines, under 5e-12 at 100 x 100; in the fast path,
    which rounds only in the horizontal dot products and the scaling, about 1e-14. 2e-11
    covers all of that. Python 3.12's compensated float sum() only makes it smaller.
    """
    return (2 if composited else 1) * 2.0 ** -(bits + 1) + 2e-11


@cache
def _column_weights(size: int, terms: int, bits: int) -> tuple[list[int], ...]:
    """Per vertical frequency: its cosines times 2^bits, rounded, for the top half of the rows.

    Row size-1-y has the same cosine as row y, negated for odd frequencies, so the bottom
    half is folded onto the top (sum or difference) before weighting. An odd height's middle
    row is last, with its exact cosine (0 for odd frequencies, so it is left out).
    """
    one = 1 << bits
    half = size // 2
    out = []
    for f in range(terms):
        weights = [round(math.cos(math.pi / size * f * (i + 0.5)) * one) for i in range(half)]
        if size % 2 and f % 2 == 0:
            weights.append(-one if f % 4 else one)
        out.append(weights)
    return tuple(out)


@cache
def _in_lanes(value: int, lanes: int) -> int:
    """An int with *value* (0 <= value < 2^64) in each of *lanes* 64-bit lanes."""
    return int.from_bytes(value.to_bytes(8, "little") * lanes, "little")


def _vertical(lanes: bytearray, row_lanes: int, height: int, ny: int, bits: int) -> list[int]:
    """For each cy < ny: the sum over rows y of cosine(cy, y) x row y, lane by lane.

    *lanes* holds the image as unsigned 64-bit lanes, row by row, *row_lanes* to a row. A row
    is one Python int, so one multiplication by an integer cosine weights all of its lanes
    (SIMD within a register). The result's lanes are signed (each sum is exact and below 2^51
    in magnitude, so no lane spills into the next): lane k holds value_k x 2^(64 k).
    """
    stride = 8 * row_lanes
    view = memoryview(lanes)
    rows = [int.from_bytes(view[at : at + stride], "little") for at in range(0, len(lanes), stride)]
    half = height // 2
    top, bottom = rows[:half], rows[: height - half - 1 : -1]  # bottom: rows height-1 ... down
    folded = list(map(add, top, bottom))
    if height % 2:
        folded.append(rows[half])
    opposed = list(map(sub, top, bottom))
    return [
        sum(map(mul, weights, opposed if cy % 2 else folded))
        for cy, weights in enumerate(_column_weights(height, ny, bits))
    ]


def _floats(value: int, size: int, first: int, step: int) -> list[float]:
    """Lanes first, first + step, ... of *value* (lanes of _MAGIC_BITS + v) as the floats v."""
    view = memoryview(value.to_bytes(size, "little")).cast("d")[first::step]
    return list(map(sub, view, repeat(_MAGIC)))


def _normalised(ac: list[float], error: float) -> tuple[float, list[int]]:
    """The scale and the 4-bit values of AC terms, as :func:`_exact` rounds them.

    :func:`_exact` computes ``0.5 + 0.5 / scale * f``; with both *f* and *scale* within
    *error* of the exact values, the quotient is within ``2 * error / (scale - error)``.
    """
    scale = max(map(abs, ac))
    if scale <= 2 * error:  # (near) zero: the definition normalises rounding noise
        raise _TooClose
    margin = 15 * error / (scale - error) + _SLACK
    factor = 7.5 / scale
    shifted = [8.0 + factor * f for f in ac]  # 15 * (0.5 + 0.5 * f / scale) + 0.5
    whole = list(map(math.floor, shifted))
    fractions = list(map(sub, shifted, whole))
    if min(fractions) <= margin or max(fractions) >= 1 - margin:
        raise _TooClose
    return scale, whole


def _settled_fields(terms: list[float], channel: int, error: float) -> Fields:
    """A channel's fields from its terms (DC first), as the definition rounds them."""
    offset, dc_factor, scale_factor = _QUANTISATION[channel]
    scale, nibbles = _normalised(terms[1:], error)
    return (
        _settled(offset + dc_factor * terms[0], dc_factor * error + _SLACK),
        _settled(scale_factor * scale, scale_factor * error + _SLACK),
        nibbles,
    )


def _fast_fields(width: int, height: int, rgba: bytes, has_alpha: bool) -> list[Fields | None]:
    """The fields of L, P, Q (and A) from integer sums; None for a channel it cannot be sure of."""
    lx, ly = _luma_grid(width, height, has_alpha)
    l_counts = _triangle(max(3, lx), max(3, ly))
    # Grey pixels (R = G = B): P and Q are exactly 0.0 in the definition too, every term, so
    # DC rounds to 32, the scale is 0 and the AC terms, not normalised, round to 0.
    grey = rgba[0::4] == rgba[1::4] == rgba[2::4]
    if has_alpha:
        bits = _bits(height, 255 * 255)
        terms = _alpha_terms(width, height, rgba, l_counts, grey, bits)
    else:
        bits = _bits(height, 255)
        terms = _opaque_terms(width, height, rgba, l_counts, grey, bits)
    error = _error(bits, has_alpha)
    out: list[Fields | None] = []
    for channel, channel_terms in enumerate(terms):
        if grey and channel in (1, 2):
            out.append((32, 0, [0] * 5))
            continue
        try:
            out.append(_settled_fields(channel_terms, channel, error))
        except _TooClose:
            out.append(None)
    return out


def _dots(cos_x: list[list[float]], values: Sequence[float], count: int) -> list[float]:
    """The dot products of *values* with the first *count* horizontal cosines."""
    return [sum(map(mul, cos_x[cx], values)) for cx in range(count)]


def _opaque_terms(
    width: int, height: int, rgba: bytes, l_counts: tuple[int, ...], grey: bool, bits: int
) -> list[list[float]]:
    """DCT terms of L, P, Q of an opaque image, in the format's order (DC first).

    Per pixel L = (R + G + B) / 765, P = (R + G - 2B) / 510, Q = (R - G) / 255: the integer
    numerators are summed, then scaled once.
    """
    count = width * height
    lanes = bytearray(24 * count)  # R, G, B of each pixel in 64-bit lanes
    lanes[0::24], lanes[8::24], lanes[16::24] = rgba[0::4], rgba[1::4], rgba[2::4]
    cos_x = _cosines(width, l_counts[0])  # l_counts[0] >= 3: P and Q's terms too
    row_lanes, size = 3 * width, 24 * width
    lift = _in_lanes(_LIFT, row_lanes)
    l_bias = _in_lanes(_MAGIC_BITS - 3 * _LIFT, row_lanes)  # lanes of R + G + B hold 3 lifts
    bias = _in_lanes(_MAGIC_BITS, row_lanes)  # R + G - 2B and R - G: the lifts cancel
    l_f: list[float] = []
    p_f: list[float] = []
    q_f: list[float] = []
    for cy, total in enumerate(_vertical(lanes, row_lanes, height, len(l_counts), bits)):
        red = total + lift
        green, blue = red >> 64, red >> 128  # lane 3x of each: the pixel's G, B sums
        lum = _floats(red + green + blue + l_bias, size, 0, 3)
        l_f += _dots(cos_x, lum, l_counts[cy])
        if cy < 3 and not grey:
            p = _floats(red + green - (blue << 1) + bias, size, 0, 3)
            q = _floats(red - green + bias, size, 0, 3)
            p_f += _dots(cos_x, p, 3 - cy)
            q_f += _dots(cos_x, q, 3 - cy)
    scale = count << bits
    return [
        [f / (765 * scale) for f in l_f],
        [f / (510 * scale) for f in p_f],
        [f / (255 * scale) for f in q_f],
    ]


def _alpha_terms(
    width: int, height: int, rgba: bytes, l_counts: tuple[int, ...], grey: bool, bits: int
) -> list[list[float]]:
    """DCT terms of L, P, Q and A of an image with alpha, in the format's order (DC first).

    With a = A / 255 and the average colour m = sum(A x C) / (255 sum(A)), a composited
    channel is m + a (c - m), so its term is m (delta - T(A) / 255) + T(A x C) / 255^2, where
    T sums byte values (premultiplied for A x C) weighted by the cosines and delta is 1 for
    the DC term, 0 otherwise.
    """
    count = width * height
    alpha = rgba[3::4]
    # Premultiply: each pixel as four 16-bit lanes R, G, B, 1, times A, in one int product.
    wide = bytearray(8 * count)
    wide[0::8], wide[2::8], wide[4::8] = rgba[0::4], rgba[1::4], rgba[2::4]
    wide[6::8] = b"\x01" * count
    products = array("Q", list(map(mul, memoryview(wide).cast("Q"), alpha))).tobytes()
    lanes = bytearray(32 * count)  # A x R, A x G, A x B, A of each pixel in 64-bit lanes
    lanes[0::8], lanes[1::8] = products[0::2], products[1::2]
    cos_x = _cosines(width, 5)
    row_lanes, size = 4 * width, 32 * width
    lift = _in_lanes(_LIFT, row_lanes)
    a_bias = _in_lanes(_MAGIC_BITS - _LIFT, row_lanes)
    l_bias = _in_lanes(_MAGIC_BITS - 3 * _LIFT, row_lanes)
    bias = _in_lanes(_MAGIC_BITS, row_lanes)
    l_dots: list[float] = []
    p_dots: list[float] = []
    q_dots: list[float] = []
    a_dots: list[list[float]] = []
    for cy, total in enumerate(_vertical(lanes, row_lanes, height, 5, bits)):
        red = total + lift
        a = _floats(red + a_bias, size, 3, 4)
        a_dots.append(_dots(cos_x, a, 5 - cy))
        green, blue = red >> 64, red >> 128
        if cy < len(l_counts):
            lum = _floats(red + green + blue + l_bias, size, 0, 4)
            l_dots += _dots(cos_x, lum, l_counts[cy])
        if cy < 3 and not grey:
            p = _floats(red + green - (blue << 1) + bias, size, 0, 4)
            q = _floats(red - green + bias, size, 0, 4)
            p_dots += _dots(cos_x, p, 3 - cy)
            q_dots += _dots(cos_x, q, 3 - cy)
    scale = count << bits
    a_terms = [[f / (255 * scale) for f in row] for row in a_dots]
    a_f = [f for row in a_terms for f in row]
    total_a = 255 * sum(alpha) << bits
    l_f = _composite_terms(l_dots, l_counts, a_terms, 3 * total_a, 3 * 255 * 255 * scale)
    if grey:
        return [l_f, [], [], a_f]
    p_f = _composite_terms(p_dots, (3, 2, 1), a_terms, 2 * total_a, 2 * 255 * 255 * scale)
    q_f = _composite_terms(q_dots, (3, 2, 1), a_terms, total_a, 255 * 255 * scale)
    return [l_f, p_f, q_f, a_f]


def _composite_terms(
    dots: list[float],
    counts: tuple[int, ...],
    a_terms: list[list[float]],
    weight: int,
    divisor: int,
) -> list[float]:
    """Terms of a channel composited over its mean: mean (delta - A's term) + dot / divisor.

    The DC dot is a plain sum (cosine 1) of the channel's premultiplied numerator, so the
    mean is that over *weight* (the sum of A x 255 x the numerator's divisor x 2^bits).
    """
    mean = dots[0] / weight if weight else 0.0
    out = []
    for dot, (cx, cy) in zip(dots, _positions(counts), strict=True):
        delta = 1.0 if cx == cy == 0 else 0.0
        out.append(mean * (delta - a_terms[cy][cx]) + dot / divisor)
    return out
