"""Property tests for RFC 9651 structured fields (``protocols/sfv.py``): what the formatters
write, the parsers read back unchanged; any text is parsed or refused with
``StructuredFieldError``, never another exception; integers agree with a reference reading
of the grammar (``-?[0-9]{1,15}``)."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pixdrop.protocols.sfv import (
    StructuredFieldError,
    format_sf_boolean,
    format_sf_dictionary,
    format_sf_integer,
    parse_sf_boolean,
    parse_sf_dictionary,
    parse_sf_integer,
    parse_sf_item,
)

SF_INTEGER = st.integers(min_value=-999_999_999_999_999, max_value=999_999_999_999_999)
KEYS = st.from_regex(r"\A[a-z*][a-z0-9_.*-]{0,15}\Z")
VALUES = st.one_of(SF_INTEGER, st.booleans(), st.binary(max_size=40))


@given(SF_INTEGER)
def test_integers_round_trip(value: int) -> None:
    assert parse_sf_integer(format_sf_integer(value)) == value


@given(st.integers(min_value=10**15) | st.integers(max_value=-(10**15)))
def test_integers_past_fifteen_digits_are_not_written(value: int) -> None:
    with pytest.raises(ValueError, match="sf-integer"):
        format_sf_integer(value)


@given(st.booleans())
def test_booleans_round_trip(value: bool) -> None:
    assert parse_sf_boolean(format_sf_boolean(value)) is value


@given(st.dictionaries(KEYS, VALUES, min_size=1, max_size=6))
def test_dictionaries_round_trip(members: dict[str, int | bool | bytes]) -> None:
    parsed = parse_sf_dictionary(format_sf_dictionary(members))
    assert list(parsed) == list(members)
    for key, value in members.items():
        bare, params = parsed[key]
        assert params == {}
        assert type(bare) is type(value)
        assert bare == value


@given(st.text(max_size=80))
@example('a=("x" 1;b=?0), b=:AAAA:, c=@1659578233, d=%"caf%c3%a9"')
@example("a=(")
@example("a=1,")
@example("a=" + "9" * 16)
@example("a=1.2345")
@example('a="\\x"')
def test_any_text_is_parsed_or_refused_as_a_structured_field_error(value: str) -> None:
    for parse in (parse_sf_dictionary, parse_sf_item, parse_sf_integer, parse_sf_boolean):
        with contextlib.suppress(StructuredFieldError):
            parse(value)


_INTEGER = re.compile(r"-?[0-9]{1,15}")


@given(st.from_regex(r"\A[ ]{0,2}-?[0-9]{0,17}[ ]{0,2}\Z") | st.text(alphabet="-0123456789 ."))
def test_integers_agree_with_the_grammar(value: str) -> None:
    # RFC 9651 §4.2: spaces are discarded before the value and after it.
    core = value.strip(" ")
    try:
        got = parse_sf_integer(value)
    except StructuredFieldError:
        assert not _INTEGER.fullmatch(core), value
    else:
        assert _INTEGER.fullmatch(core), value
        assert got == int(core)
