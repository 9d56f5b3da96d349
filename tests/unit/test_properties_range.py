"""Property tests for conditional and range requests (``protocols/http_range.py``) beside
``test_range_property.py``: the unit is case-insensitive and may carry spaces, several ranges
are served whole (RFC 9110 §14.2 lets a server ignore them), one range means what a reference
reading of RFC 9110 §14.1.2 says, and ``If-None-Match`` matches exactly the lists that
name the ETag (weakly) or are ``*``."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pixdrop.errors import RangeNotSatisfiable
from pixdrop.protocols.http_range import etag_matches, parse_range

SIZES = st.integers(min_value=1, max_value=10_000)
POSITIONS = st.integers(min_value=0, max_value=20_000)
UNITS = st.sampled_from(["bytes", "BYTES", "Bytes", " bytes", "bytes "])
OWS = st.sampled_from(["", " ", "\t", "  "])


def reference(first: int | None, last: int | None, size: int) -> tuple[int, int] | str | None:
    """RFC 9110 §14.1.2 for one range: the bytes ``[start, end)``, None (ignored: invalid) or
    ``"416"`` (unsatisfiable)."""
    if first is None:
        assert last is not None
        return "416" if last == 0 or size == 0 else (max(0, size - last), size)
    if last is not None and last < first:
        return None
    if first >= size:
        return "416"
    return first, size if last is None else min(last + 1, size)


def served(header: str, size: int) -> tuple[int, int] | str | None:
    try:
        return parse_range(header, size)
    except RangeNotSatisfiable:
        return "416"


@given(
    UNITS,
    OWS,
    st.one_of(
        st.tuples(POSITIONS, st.none() | POSITIONS),
        st.tuples(st.none(), POSITIONS),
        # The edges: a last position just before, at or just after the first.
        POSITIONS.flatmap(lambda a: st.tuples(st.just(a), st.sampled_from([a - 1, a, a + 1]))),
    ),
    OWS,
    SIZES,
)
def test_one_range_means_what_the_reference_says(
    unit: str, before: str, positions: tuple[int | None, int | None], after: str, size: int
) -> None:
    first, last = positions
    spec = f"{'' if first is None else first}-{'' if last is None else last}"
    header = f"{unit}={before}{spec}{after}"
    assert served(header, size) == reference(first, last, size), header


@given(st.lists(st.tuples(POSITIONS, POSITIONS), min_size=2, max_size=4), SIZES)
def test_several_ranges_are_served_whole(pairs: list[tuple[int, int]], size: int) -> None:
    header = "bytes=" + ",".join(f"{a}-{b}" for a, b in pairs)
    assert parse_range(header, size) is None


@given(st.sampled_from(["items", "none", "bits", ""]), POSITIONS, SIZES)
def test_other_units_are_served_whole(unit: str, first: int, size: int) -> None:
    assert parse_range(f"{unit}={first}-", size) is None


OPAQUE = st.text(alphabet="abcdef0123456789", min_size=1, max_size=16).map(lambda s: f'"{s}"')


@given(OPAQUE, st.lists(OPAQUE, max_size=4), st.booleans(), st.booleans(), OWS)
def test_if_none_match_matches_lists_naming_the_etag(
    etag: str, others: list[str], weak_header: bool, weak_etag: bool, space: str
) -> None:
    served_etag = ("W/" if weak_etag else "") + etag
    named = [("W/" if weak_header else "") + etag, *others]
    assert etag_matches(f",{space}".join(named), served_etag)
    assert etag_matches(f",{space}".join(reversed(named)), served_etag)
    assert etag_matches("*", served_etag)
    without = [o for o in others if o != etag]
    if without:
        assert not etag_matches(", ".join(without), served_etag)
