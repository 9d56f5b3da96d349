"""HTTP conditional and range requests (RFC 9110 §13 and §14), as pure functions."""

from __future__ import annotations

from pixdrop.errors import RangeNotSatisfiable


def etag_matches(if_none_match: str, etag: str) -> bool:
    """True if an ``If-None-Match`` value matches *etag* (weak comparison, RFC 9110 §13.1.2)."""
    if if_none_match.strip() == "*":
        return True
    opaque = etag.removeprefix("W/")
    return any(
        candidate.strip().removeprefix("W/") == opaque for candidate in if_none_match.split(",")
    )


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The single byte range ``[start, end)`` asked for, or None to serve the whole.

    Returns None for a header pixdrop does not honour (another unit, several ranges, a
    syntax error), which RFC 9110 §14.2 lets a server ignore. Raises ``RangeNotSatisfiable``
    when the one range asked for lies wholly outside the representation.
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0:
            raise _unsatisfiable(size)
        return max(0, size - length), size
    start = int(first)
    if last and not last.isdigit():
        return None
    end = min(int(last) + 1, size) if last else size
    if last and int(last) < start:
        return None
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> RangeNotSatisfiable:
    error = RangeNotSatisfiable(
        f"The requested range lies outside the image, which is {size} bytes long.", size=size
    )
    error.headers["Content-Range"] = f"bytes */{size}"
    return error
