"""HTTP conditional and range requests (RFC 9110 §13 and §14), as pure functions."""

from __future__ import annotations

import re

from pixdrop.errors import RangeNotSatisfiable


def etag_matches(if_none_match: str, etag: str) -> bool:
    """True if an ``If-None-Match`` value matches *etag* (weak comparison, RFC 9110 §13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(
        candidate.strip().removeprefix("W/") == opaque for candidate in if_none_match.split(",")
    )


#: ``bytes=first-last`` (RFC 9110 §14.1.2): ASCII digits only (``str.isdigit`` also takes
#: ``¹`` or ``٣``, which ``int`` then refuses or reads), no sign, no ``0x``, no ``_``.
_RANGE = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)
#: Past this many significant digits a position is beyond any size (``int`` itself refuses
#: strings of more than 4300 digits).
_MAX_DIGITS = 18


def _position(digits: str) -> int:
    """*digits* as a number, any beyond ``10**18`` read as ``10**18`` (past every size)."""
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _MAX_DIGITS else 10**_MAX_DIGITS


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The single byte range ``[start, end)`` asked for, or None to serve the whole.

    Returns None for a header pixdrop does not honour (another unit, several ranges, a
    syntax error), which RFC 9110 §14.2 lets a server ignore. Raises ``RangeNotSatisfiable``
    when the one range asked for lies wholly outside the representation.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    match = _RANGE.fullmatch(spec.strip(" \t"))
    if match is None or not (match.group(1) or match.group(2)):
        return None
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        length = _position(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size
    start = _position(first)
    if last and _position(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    end = min(_position(last) + 1, size) if last else size
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    error = RangeNotSatisfiable(
        f"The requested range lies outside the image, which is {size} bytes long.", size=size
    )
    error.headers["Content-Range"] = f"bytes */{size}"
    return error
