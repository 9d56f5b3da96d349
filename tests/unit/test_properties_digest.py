"""Property tests for RFC 9530 ``Content-Digest`` / ``Repr-Digest`` (``protocols/digest.py``):
a field made from some bytes verifies those bytes and no others; any text is parsed or refused
with ``InvalidDigest``, never anything else; well-formed fields agree with the RFC 9651
dictionary parser (``protocols/sfv.py``) as the reference."""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pixdrop.errors import DigestMismatch, InvalidDigest
from pixdrop.protocols.digest import SUPPORTED, parse_digest_field, verify
from pixdrop.protocols.sfv import parse_sf_dictionary

ALGORITHMS = st.sampled_from(sorted(SUPPORTED))
#: Algorithms RFC 9530 registers that pixdrop ignores, and made-up keys.
OTHERS = st.sampled_from(["md5", "sha", "crc32c", "unixsum", "unixcksum", "id-sha-256", "x"])


def field_for(data: bytes, algorithms: list[str]) -> str:
    return ", ".join(
        f"{a}=:{base64.b64encode(hashlib.new(SUPPORTED[a], data).digest()).decode()}:"
        for a in algorithms
    )


def computed(data: bytes) -> dict[str, bytes]:
    return {name: hashlib.new(name, data).digest() for name in SUPPORTED.values()}


@given(st.binary(max_size=256), st.lists(ALGORITHMS, min_size=1, max_size=3))
def test_a_field_made_from_bytes_verifies_them(data: bytes, algorithms: list[str]) -> None:
    expected = parse_digest_field(field_for(data, algorithms))
    assert set(expected.values) == {SUPPORTED[a] for a in algorithms}
    verify(expected, computed(data), "body")


@given(st.binary(max_size=64), st.binary(max_size=64), ALGORITHMS)
def test_other_bytes_do_not_verify(data: bytes, other: bytes, algorithm: str) -> None:
    expected = parse_digest_field(field_for(data, [algorithm]))
    if hashlib.new(SUPPORTED[algorithm], other).digest() == expected.values[SUPPORTED[algorithm]]:
        return  # the same bytes (a collision would be news)
    with pytest.raises(DigestMismatch):
        verify(expected, computed(other), "body")


@given(st.text(max_size=200))
@example("sha-256=:" + "A" * 43 + "=:")
@example("sha-256=::")
@example("sha-256=:====:")
@example("md5=:AAAA:")
@example(",")
def test_any_text_is_parsed_or_refused_as_invalid_digest(value: str) -> None:
    try:
        expected = parse_digest_field(value)
    except InvalidDigest:
        return
    assert expected.values
    for name, raw in expected.values.items():
        assert name in SUPPORTED.values()
        assert len(raw) == hashlib.new(name).digest_size


members = st.dictionaries(
    st.one_of(ALGORITHMS, OTHERS),
    st.one_of(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64)),
    min_size=1,
    max_size=4,
)


@given(members)
def test_well_formed_fields_agree_with_the_structured_field_parser(found: dict[str, bytes]) -> None:
    value = ", ".join(f"{k}=:{base64.b64encode(v).decode()}:" for k, v in found.items())
    reference = {k: item[0] for k, item in parse_sf_dictionary(value).items()}
    wanted = {
        SUPPORTED[k]: v
        for k, v in reference.items()
        if k in SUPPORTED and len(v) == hashlib.new(SUPPORTED[k]).digest_size
    }
    sizes_ok = all(
        len(v) == hashlib.new(SUPPORTED[k]).digest_size
        for k, v in reference.items()
        if k in SUPPORTED
    )
    if not wanted or not sizes_ok:
        with pytest.raises(InvalidDigest):
            parse_digest_field(value)
    else:
        assert parse_digest_field(value).values == wanted
