"""Property tests for tus header grammar (``protocols/tus.py``): ``Upload-Metadata`` pairs
round-trip; any text is read or refused with ``InvalidResumableRequest``, never another
exception; lengths agree with a reference reading (ASCII digits, at most 19)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pixdrop.errors import InvalidResumableRequest
from pixdrop.protocols.tus import metadata_text, parse_length, parse_metadata

#: tus: a key is ASCII, non-empty, without spaces or commas.
KEYS = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=","),
    min_size=1,
    max_size=20,
)


def encode(pairs: dict[str, bytes]) -> str:
    return ",".join(
        f"{key} {base64.b64encode(value).decode()}" if value else key
        for key, value in pairs.items()
    )


@given(st.dictionaries(KEYS, st.binary(max_size=60), min_size=1, max_size=6))
def test_metadata_round_trips(pairs: dict[str, bytes]) -> None:
    assert parse_metadata(encode(pairs)) == pairs


@given(st.dictionaries(KEYS, st.binary(max_size=20), min_size=1, max_size=4))
def test_spaces_around_pairs_do_not_matter(pairs: dict[str, bytes]) -> None:
    assert parse_metadata(" , ".join(encode({k: v}) for k, v in pairs.items())) == pairs


@given(st.text(max_size=120))
@example("filename")
@example("filename ,")
@example("a YQ==,a YQ==")
@example("a Y Q==")
@example("a Y")
@example("a\u00a0YQ==")
def test_any_metadata_is_read_or_refused_as_invalid_resumable_request(value: str) -> None:
    try:
        pairs = parse_metadata(value)
    except InvalidResumableRequest as exc:
        header = exc.extra["header"]
    else:
        assert pairs
        for key in pairs:
            assert key
            assert "," not in key
            assert not any(c.isspace() for c in key)
        return
    assert header == "Upload-Metadata"


@given(st.dictionaries(KEYS, st.binary(max_size=2000), max_size=3), st.lists(KEYS, max_size=3))
def test_metadata_text_is_printable_and_bounded(pairs: dict[str, bytes], keys: list[str]) -> None:
    text = metadata_text(pairs, *keys)
    if text is not None:
        assert text.isprintable()
        assert 0 < len(text) <= 1024


@given(st.text(alphabet="0123456789 \t+-_x٣¹", max_size=25) | st.text(max_size=10))
@example("9" * 19)
@example("9" * 20)
@example(" 12 ")
def test_lengths_agree_with_the_grammar(value: str) -> None:
    core = value.strip()
    ascii_digits = core.isascii() and core.isdigit() and 1 <= len(core) <= 19
    try:
        got = parse_length(value, "Upload-Length")
    except InvalidResumableRequest:
        assert not ascii_digits, value
    else:
        assert ascii_digits, value
        assert got == int(core)


@given(st.integers(min_value=0, max_value=10**19 - 1))
def test_lengths_round_trip(length: int) -> None:
    assert parse_length(str(length), "Upload-Offset") == length


def test_twenty_digits_are_refused() -> None:
    with pytest.raises(InvalidResumableRequest):
        parse_length("1" + "0" * 19, "Upload-Length")
