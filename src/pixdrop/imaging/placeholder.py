"""ThumbHash placeholders: a blurred ~25-byte preview a page can show before the image loads.

The encoding follows the ThumbHash format (Evan Wallace, 2023): the image, composited over its
average colour, is split into a luminance channel L, two chroma channels P and Q and, if it has
transparency, alpha A. Each channel is reduced to a few low-frequency DCT coefficients: a DC
term, and AC terms normalised by their largest magnitude and quantised to 4 bits. A 5-byte
header carries the DC terms, the scales, the luminance grid size and the aspect ratio.

Input is RGBA of at most 100 x 100 pixels; callers shrink the image first (32 px is plenty for
the 7 x 7 coefficients kept at most).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from functools import cache
from operator import mul
from typing import Final

__all__ = ["encode", "thumbhash"]


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


def thumbhash(width: int, height: int, rgba: bytes) -> bytes:
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


def encode(width: int, height: int, rgba: bytes) -> str:
    """The ThumbHash as standard base64, the form clients pass to ThumbHash decoders."""
    return base64.b64encode(thumbhash(width, height, rgba)).decode("ascii")
