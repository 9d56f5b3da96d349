"""Property tests for the Range parser: any header gives a range inside the image, None
(serve the whole, RFC 9110 §14.2) or ``RangeNotSatisfiable``; never another exception."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from pixdrop.errors import RangeNotSatisfiable
from pixdrop.protocols.http_range import parse_range

sizes = st.integers(min_value=0, max_value=2**40)
#: Positions as clients write them, and as they should not: other digits, signs, hex, dots.
positions = st.one_of(
    st.integers(min_value=0, max_value=2**64).map(str),
    st.text(alphabet="0123456789", max_size=5000),
    # Digits other than ASCII's: superscripts, Arabic-Indic, Devanagari (str.isdigit takes them).
    st.text(alphabet="0123456789\u00b9\u00b2\u0663\u06f3\u0966x._+- \t", max_size=12),
)
range_headers = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", positions, positions),
    st.builds(lambda s: "bytes=" + s, st.text(max_size=40)),
    st.text(max_size=60),
)


def _check(header: str, size: int) -> tuple[int, int] | None:
    try:
        wanted = parse_range(header, size)
    except RangeNotSatisfiable as exc:
        unsatisfiable = exc
    else:
        unsatisfiable = None
    if unsatisfiable is not None:
        assert unsatisfiable.headers["Content-Range"] == f"bytes */{size}"
        return None
    if wanted is not None:
        start, end = wanted
        assert 0 <= start < end <= size, (header, size, wanted)
    return wanted


@given(range_headers, sizes)
@example("bytes=a-5", 100)
@example("bytes=0x10-20", 100)
@example("bytes=1.5-20", 100)
@example("bytes=¹-5", 100)
@example("bytes=0-¹", 100)
@example("bytes=-٣", 100)
@example("bytes=0-" + "9" * 5000, 100)
@example("bytes=-1", 0)
def test_any_header_gives_a_range_inside_the_image_or_none(header: str, size: int) -> None:
    _check(header, size)


@given(
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=0, max_value=2**40),
    st.integers(min_value=1, max_value=2**40),
)
def test_well_formed_ranges_mean_what_rfc_9110_says(first: int, last: int, size: int) -> None:
    header = f"bytes={first}-{last}"
    if last < first:
        assert parse_range(header, size) is None  # invalid: ignored
    elif first >= size:
        assert _check(header, size) is None  # unsatisfiable
    else:
        assert parse_range(header, size) == (first, min(last + 1, size))


@given(st.integers(min_value=1, max_value=2**40), st.integers(min_value=1, max_value=2**40))
def test_suffix_ranges_are_the_last_bytes(length: int, size: int) -> None:
    assert parse_range(f"bytes=-{length}", size) == (max(0, size - length), size)


@given(st.text(alphabet="0123456789", min_size=1, max_size=3).filter(lambda s: s != "0"))
def test_non_ascii_digits_are_not_numbers(digits: str) -> None:
    arabic = digits.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    assert parse_range(f"bytes={arabic}-", 10**6) is None
    assert parse_range(f"bytes=0-{arabic}", 10**6) is None
