"""Range-set maths, checked against a brute-force model of covered bytes."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from pixdrop import ranges

spans = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 60)).map(lambda t: (min(t), max(t))),
    max_size=12,
)


def covered(rs: list[tuple[int, int]], size: int) -> set[int]:
    return {b for s, e in rs for b in range(s, e) if b < size}


@given(spans)
def test_normalize_is_sorted_disjoint_and_same_bytes(rs: list[tuple[int, int]]) -> None:
    merged = ranges.normalize(rs)
    assert covered(merged, 100) == covered(rs, 100)
    for (_, end), (start, _) in itertools.pairwise(merged):
        assert end < start  # touching ranges are merged too


@given(spans, st.integers(1, 70))
def test_missing_is_the_complement(rs: list[tuple[int, int]], size: int) -> None:
    gaps = ranges.missing(rs, size)
    assert covered(gaps, size) == set(range(size)) - covered(rs, size)
    assert all(0 <= s < e <= size for s, e in gaps)
    assert ranges.covers(rs, size) == (not gaps)


@given(spans, st.integers(1, 70), st.integers(1, 9))
def test_chunk_lists_partition_the_grid(rs: list[tuple[int, int]], size: int, cs: int) -> None:
    got = ranges.chunks_received(rs, size, cs)
    lacking = ranges.chunks_missing(rs, size, cs)
    count = -(-size // cs)
    assert sorted(got + lacking) == list(range(count))
    have = covered(rs, size)
    for i in got:
        assert set(range(i * cs, min((i + 1) * cs, size))) <= have
    for i in lacking:
        assert not set(range(i * cs, min((i + 1) * cs, size))) <= have


def test_contiguous_prefix() -> None:
    assert ranges.contiguous_prefix([]) == 0
    assert ranges.contiguous_prefix([(5, 10)]) == 0
    assert ranges.contiguous_prefix([(0, 4), (4, 9), (12, 20)]) == 9


def test_short_last_chunk() -> None:
    assert ranges.chunks_received([(0, 10), (20, 25)], 25, 10) == [0, 2]
    assert ranges.chunks_missing([(0, 10), (20, 25)], 25, 10) == [1]
