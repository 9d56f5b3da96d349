"""Pure range-set maths over half-open byte ranges ``[start, end)``.

Every upload protocol names sub-ranges of ``[0, size)``; these functions answer what is there,
what is missing and whether the whole is covered. No I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Iterable

Range = tuple[int, int]


def normalize(ranges: Iterable[Range]) -> list[Range]:
    """Sort and merge overlapping or touching ranges; drop empty ones."""
    merged: list[Range] = []
    for start, end in sorted(r for r in ranges if r[1] > r[0]):
        if merged and start <= merged[-1][1]:
            last_start, last_end = merged[-1]
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def missing(ranges: Iterable[Range], size: int) -> list[Range]:
    """The gaps in ``[0, size)`` not covered by *ranges*."""
    gaps: list[Range] = []
    cursor = 0
    for start, end in normalize(ranges):
        if start > cursor:
            gaps.append((cursor, min(start, size)))
        cursor = max(cursor, end)
        if cursor >= size:
            break
    if cursor < size:
        gaps.append((cursor, size))
    return [g for g in gaps if g[1] > g[0]]


def covers(ranges: Iterable[Range], size: int) -> bool:
    """True when *ranges* cover all of ``[0, size)``."""
    return not missing(ranges, size)


def contiguous_prefix(ranges: Iterable[Range]) -> int:
    """Length of the covered run that starts at offset 0 (a tus-style offset)."""
    merged = normalize(ranges)
    return merged[0][1] if merged and merged[0][0] == 0 else 0


def chunks_received(ranges: Iterable[Range], size: int, chunk_size: int) -> list[int]:
    """Indices of the chunks of a ``chunk_size`` grid over ``[0, size)`` that are fully covered."""
    merged = normalize(ranges)
    count = max(1, -(-size // chunk_size))
    done: list[int] = []
    pos = 0
    for index in range(count):
        start, end = index * chunk_size, min((index + 1) * chunk_size, size)
        while pos < len(merged) and merged[pos][1] < end:
            pos += 1
        if pos < len(merged) and merged[pos][0] <= start and merged[pos][1] >= end:
            done.append(index)
    return done


def chunks_missing(ranges: Iterable[Range], size: int, chunk_size: int) -> list[int]:
    """Indices of the chunks not yet fully covered: the complement of :func:`chunks_received`."""
    have = set(chunks_received(ranges, size, chunk_size))
    count = max(1, -(-size // chunk_size))
    return [i for i in range(count) if i not in have]
