"""Sans-I/O protocol helpers: digest fields, conditional and range requests, problem bodies."""

from __future__ import annotations

import base64
import hashlib

import pytest

from pixdrop.errors import DigestMismatch, InvalidDigest, RangeNotSatisfiable, UploadIncomplete
from pixdrop.protocols.digest import merge, parse_digest_field, verify
from pixdrop.protocols.http_range import etag_matches, parse_range
from pixdrop.protocols.problem import problem_body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_digest_field_parses_sha256_and_sha512_and_ignores_others() -> None:
    s256, s512 = hashlib.sha256(b"x").digest(), hashlib.sha512(b"x").digest()
    got = parse_digest_field(f"sha-256=:{b64(s256)}:, md5=:AAAA:, sha-512=:{b64(s512)}:")
    assert got.values == {"sha256": s256, "sha512": s512}


@pytest.mark.parametrize(
    "value",
    [
        "sha-256=abc",  # not a byte sequence
        "sha-256=:!!!:",  # not base64
        f"sha-256=:{b64(b'short')}:",  # wrong length
        "md5=:AAAA:",  # nothing pixdrop can verify
        "",
    ],
)
def test_bad_digest_fields_are_refused(value: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        parse_digest_field(value)
    assert info.value.status == 400
    assert "Content-Digest" in info.value.detail


def test_verify_names_the_algorithm_on_mismatch() -> None:
    expected = merge(parse_digest_field(f"sha-256=:{b64(hashlib.sha256(b'a').digest())}:"))
    verify(expected, {"sha256": hashlib.sha256(b"a").digest()}, "chunk 0")
    with pytest.raises(DigestMismatch) as info:
        verify(expected, {"sha256": hashlib.sha256(b"b").digest()}, "chunk 0")
    assert info.value.extra["algorithm"] == "sha-256"
    assert "chunk 0" in info.value.detail


@pytest.mark.parametrize(
    ("header", "etag", "match"),
    [
        ('"abc"', '"abc"', True),
        ('"x", "abc"', '"abc"', True),
        ('W/"abc"', '"abc"', True),
        ("*", '"abc"', True),
        ('"abd"', '"abc"', False),
    ],
)
def test_if_none_match(header: str, etag: str, match: bool) -> None:
    assert etag_matches(header, etag) is match


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, 1000)),
        ("bytes=-100", (900, 1000)),
        ("bytes=-5000", (0, 1000)),
        ("bytes=990-5000", (990, 1000)),
        ("bytes=0-0", (0, 1)),
        ("bytes=0-1,5-6", None),  # several ranges: served whole
        ("items=0-1", None),
        ("bytes=5-2", None),
        ("bytes=abc", None),
        ("bytes=-", None),
    ],
)
def test_parse_range(header: str, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, 1000) == expected


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable_range(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, 1000)
    assert info.value.headers["Content-Range"] == "bytes */1000"


def test_problem_body_carries_extra_fields() -> None:
    body = problem_body(UploadIncomplete("2 chunks missing", missing=[1, 3]), "/v1/x")
    assert body == {
        "type": "/problems/upload-incomplete",
        "title": "Upload is missing chunks",
        "status": 409,
        "detail": "2 chunks missing",
        "instance": "/v1/x",
        "missing": [1, 3],
    }
