"""protocols/ietf*.py and sfv.py: the IETF resumable-upload draft (interop 3-8), pure."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from starlette.datastructures import Headers

from pixdrop.errors import (
    BadRequest,
    ChecksumMismatch,
    CompletedUpload,
    DigestMismatch,
    InconsistentUploadLength,
    InvalidDigest,
    InvalidResumableRequest,
    MismatchingUploadOffset,
    NotFound,
    OffsetMismatch,
    PayloadTooLarge,
    UnprocessableImage,
    UnsupportedMediaType,
    UploadExpired,
    UploadNotFound,
    UploadNotReceiving,
)
from pixdrop.protocols import ietf, ietf_requests, ietf_responses, sfv
from pixdrop.protocols.problem import problem_body

ALL = sorted(ietf.SUPPORTED_VERSIONS)
IANA = "https://iana.org/assignments/http-problem-types#"
H = dict[str, str]


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


# --- versions -------------------------------------------------------------------------------


def test_supported_versions_are_3_to_8_and_each_names_its_drafts() -> None:
    assert frozenset(range(3, 9)) == ietf.SUPPORTED_VERSIONS
    assert set(ietf.DRAFTS) == ietf.SUPPORTED_VERSIONS
    drafts = [d for v in ALL for d in ietf.DRAFTS[v]]
    assert drafts == [f"{n:02d}" for n in range(1, 12)]  # -01 .. -11, each once, in order


@pytest.mark.parametrize(
    ("version", "field", "partial", "age", "append_status", "strict_head"),
    [
        (3, "Upload-Incomplete", False, None, 201, True),
        (4, "Upload-Complete", False, None, 201, True),
        (5, "Upload-Complete", False, None, 201, True),
        (6, "Upload-Complete", True, "expires", 201, True),
        (7, "Upload-Complete", True, "max-age", 204, False),
        (8, "Upload-Complete", True, "max-age", 204, False),
    ],
)
def test_features_per_version(
    version: int,
    field: str,
    partial: bool,
    age: str | None,
    append_status: int,
    strict_head: bool,
) -> None:
    f = ietf.features(version)
    assert f.complete_field == field
    assert f.partial_upload_required is partial
    assert f.upload_limit is (age is not None)
    assert f.age_key == age
    assert f.incomplete_append_status == append_status
    assert f.refuses_fields_on_head_and_delete is strict_head
    assert f.complete_optional_on_append is (version <= 6)
    assert f.ignores_malformed_fields is (version >= 7)


@pytest.mark.parametrize("version", [2, 9, 0, -1])
def test_features_refuses_unsupported_versions(version: int) -> None:
    with pytest.raises(ValueError, match="not supported"):
        ietf.features(version)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("3", 3), ("6", 6), ("8", 8), (" 7 ", 7), ("5;x=1", 5)],
)
def test_parse_interop_version(value: str, expected: int) -> None:
    assert ietf.parse_interop_version(value) == expected


@pytest.mark.parametrize(
    ("value", "provided"),
    [("2", 2), ("9", 9), ("-6", -6), ("abc", None), ("6.0", None), ("?1", None), ("", None)],
)
def test_parse_interop_version_refuses(value: str, provided: int | None) -> None:
    with pytest.raises(BadRequest) as info:
        ietf.parse_interop_version(value)
    assert info.value.status == 400
    assert info.value.extra["supported"] == ALL
    assert info.value.extra.get("provided") == provided
    assert "3 to 8" in info.value.detail


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"Upload-Draft-Interop-Version": "6"}, 6),
        ({"upload-draft-interop-version": "3"}, 3),
    ],
)
def test_interop_version_from_headers(headers: H, expected: int | None) -> None:
    assert ietf.interop_version(headers) == expected


# --- structured fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0),
        ("42", 42),
        ("-7", -7),
        ("999999999999999", 999_999_999_999_999),
        ("  12  ", 12),
        ("12;a", 12),
        ("12; a=1;b=?0", 12),
        ("12;a=:AAEC:", 12),
        ('12;n="x y"', 12),
    ],
)
def test_parse_sf_integer(value: str, expected: int) -> None:
    assert sfv.parse_sf_integer(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1000000000000000",  # 16 digits
        "1.5",  # a decimal
        "+1",
        "1 2",
        "1,2",  # two field lines combined
        "0x10",
        "?1",
        "abc",
        '"12"',
        "12;",  # parameter without key
        "12;A=1",  # keys are lower case
        "١٢",  # non-ASCII digits
        "-",
    ],
)
def test_parse_sf_integer_refuses(value: str) -> None:
    with pytest.raises(sfv.StructuredFieldError):
        sfv.parse_sf_integer(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("?1", True), ("?0", False), (" ?1", True), ("?0;p=1", False)],
)
def test_parse_sf_boolean(value: str, expected: bool) -> None:
    assert sfv.parse_sf_boolean(value) is expected


@pytest.mark.parametrize("value", ["", "?", "?2", "1", "0", "true", "?1?0", "?1 x", "?T"])
def test_parse_sf_boolean_refuses(value: str) -> None:
    with pytest.raises(sfv.StructuredFieldError):
        sfv.parse_sf_boolean(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1.5", Decimal("1.5")),
        ("-0.125", Decimal("-0.125")),
        ('"a \\"q\\" \\\\"', 'a "q" \\'),
        ("tok/en:1", "tok/en:1"),
        ("*x", "*x"),
        (":aGVsbG8=:", b"hello"),
        (":aGVsbG8:", b"hello"),  # padding may be left out
        ("@1700000000", sfv.Date(1_700_000_000)),
        ('%"caf%c3%a9"', sfv.DisplayString("café")),
    ],
)
def test_parse_sf_item_bare_types(value: str, expected: object) -> None:
    bare, params = sfv.parse_sf_item(value)
    assert bare == expected
    assert params == {}


def test_parse_sf_item_tells_tokens_from_strings() -> None:
    assert isinstance(sfv.parse_sf_item("abc")[0], sfv.Token)
    assert not isinstance(sfv.parse_sf_item('"abc"')[0], sfv.Token)


@pytest.mark.parametrize(
    "value",
    [
        '"open',
        '"bad \\x"',
        '"tab\there"',
        ":not base64!:",
        ":open",
        "1.",
        "1.2345",
        "1234567890123.1",
        "@1.5",
        '%"BAD%C3"',
        '%"caf%c3"',
        "%x",
        "(1 2)",  # an inner list is not an item
    ],
)
def test_parse_sf_item_refuses(value: str) -> None:
    with pytest.raises(sfv.StructuredFieldError):
        sfv.parse_sf_item(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("max-size=100, min-size=0", {"max-size": (100, {}), "min-size": (0, {})}),
        ("a=1,b=2", {"a": (1, {}), "b": (2, {})}),
        ("a=1 ,\tb=2", {"a": (1, {}), "b": (2, {})}),
        ("flag, x=?0", {"flag": (True, {}), "x": (False, {})}),
        ("flag;p=1", {"flag": (True, {"p": 1})}),
        ("a=1, a=2", {"a": (2, {})}),
        ("l=(1 2);q=3", {"l": ([(1, {}), (2, {})], {"q": 3})}),
        ("l=()", {"l": ([], {})}),
        ("", {}),
    ],
)
def test_parse_sf_dictionary(value: str, expected: dict[str, Any]) -> None:
    assert sfv.parse_sf_dictionary(value) == expected


@pytest.mark.parametrize("value", ["a=1,", "a=1;", "A=1", "a=1 b=2", "=1", "a=(1", "a=(1,2)"])
def test_parse_sf_dictionary_refuses(value: str) -> None:
    with pytest.raises(sfv.StructuredFieldError):
        sfv.parse_sf_dictionary(value)


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ({"max-size": 10, "max-age": 0}, "max-size=10, max-age=0"),
        ({"ok": True, "no": False}, "ok, no=?0"),
        ({"sha-256": b"\x00\x01"}, "sha-256=:AAE=:"),
        ({}, ""),
    ],
)
def test_format_sf_dictionary_round_trips(
    members: dict[str, int | bool | bytes], expected: str
) -> None:
    text = sfv.format_sf_dictionary(members)
    assert text == expected
    assert {k: v for k, (v, _) in sfv.parse_sf_dictionary(text).items()} == members


@pytest.mark.parametrize(
    "members",
    [{"Max": 1}, {"": 1}, {"a b": 1}, {"1a": 1}, {"x": 10**15}],
)
def test_format_sf_dictionary_refuses(members: dict[str, int | bool | bytes]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - keys and integers share the message shape
        sfv.format_sf_dictionary(members)


@pytest.mark.parametrize(("value", "text"), [(True, "?1"), (False, "?0")])
def test_format_sf_boolean(value: bool, text: str) -> None:
    assert sfv.format_sf_boolean(value) == text
    assert sfv.parse_sf_boolean(text) is value


@pytest.mark.parametrize("value", [-(10**15), 10**15, True])
def test_format_sf_integer_refuses(value: int) -> None:
    with pytest.raises(ValueError, match="sf-integer"):
        sfv.format_sf_integer(value)


# --- reading requests -----------------------------------------------------------------------


def test_field_joins_repeated_lines_so_a_duplicated_item_is_refused() -> None:
    headers = Headers(raw=[(b"upload-offset", b"5"), (b"upload-offset", b"7")])
    assert ietf.field(headers, "Upload-Offset") == "5, 7"
    with pytest.raises(BadRequest):
        ietf.upload_offset(headers)
    assert ietf.field({"UPLOAD-OFFSET": "5"}, "upload-offset") == "5"
    assert ietf.field({}, "Upload-Offset") is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({}, None), ({"Upload-Offset": "0"}, 0), ({"Upload-Offset": "123"}, 123)],
)
def test_upload_offset(headers: H, expected: int | None) -> None:
    assert ietf.upload_offset(headers) == expected


@pytest.mark.parametrize("value", ["-1", "x", "1.0", "?1", ""])
def test_upload_offset_refuses(value: str) -> None:
    with pytest.raises(BadRequest) as info:
        ietf.upload_offset({"Upload-Offset": value})
    assert info.value.extra["header"] == "Upload-Offset"


@pytest.mark.parametrize(
    ("version", "value", "expected"),
    [
        (3, None, None),
        (6, "100", 100),
        (8, "100", 100),
        (7, "nope", None),  # from interop 7 a malformed field is ignored
        (8, "-5", None),
    ],
)
def test_upload_length(version: int, value: str | None, expected: int | None) -> None:
    headers = {} if value is None else {"Upload-Length": value}
    assert ietf.upload_length(headers, version) == expected


@pytest.mark.parametrize("version", [3, 4, 5, 6])
def test_upload_length_malformed_is_refused_before_interop_7(version: int) -> None:
    with pytest.raises(BadRequest):
        ietf.upload_length({"Upload-Length": "nope"}, version)


@pytest.mark.parametrize(
    ("version", "headers", "expected"),
    [
        (3, {}, None),
        (3, {"Upload-Incomplete": "?1"}, False),  # inverted: more to come
        (3, {"Upload-Incomplete": "?0"}, True),
        (3, {"Upload-Complete": "?1"}, None),  # not a v3 field
        (4, {"Upload-Complete": "?1"}, True),
        (4, {"Upload-Complete": "?0"}, False),
        (4, {"Upload-Incomplete": "?1"}, None),  # not a v4+ field
        (6, {"upload-complete": "?1"}, True),
        (8, {"Upload-Complete": "?0"}, False),
        (8, {}, None),
    ],
)
def test_upload_complete(version: int, headers: H, expected: bool | None) -> None:
    assert ietf.upload_complete(headers, version) is expected


@pytest.mark.parametrize(
    ("version", "headers"),
    [
        (3, {"Upload-Incomplete": "1"}),
        (4, {"Upload-Complete": "true"}),
        (8, {"Upload-Complete": "?2"}),
    ],
)
def test_upload_complete_refuses_non_booleans(version: int, headers: H) -> None:
    with pytest.raises(BadRequest) as info:
        ietf.upload_complete(headers, version)
    assert "?1 or ?0" in info.value.detail


@pytest.mark.parametrize(
    ("version", "headers", "expected"),
    [
        (3, {}, True),  # v3: complete iff Upload-Incomplete is omitted or false
        (3, {"Upload-Incomplete": "?1"}, False),
        (5, {"Upload-Complete": "?1"}, True),
        (8, {"Upload-Complete": "?0"}, False),
    ],
)
def test_creation_completes(version: int, headers: H, expected: bool) -> None:
    assert ietf.creation_completes(headers, version) is expected


@pytest.mark.parametrize("version", [4, 5, 6, 7, 8])
def test_creation_without_completeness_is_refused_from_interop_4(version: int) -> None:
    with pytest.raises(BadRequest) as info:
        ietf.creation_completes({}, version)
    assert info.value.extra["header"] == "Upload-Complete"


@pytest.mark.parametrize(
    ("version", "headers", "expected"),
    [
        (3, {}, True),
        (4, {}, True),
        (6, {}, True),
        (6, {"Upload-Complete": "?0"}, False),
        (7, {"Upload-Complete": "?1"}, True),
        (3, {"Upload-Incomplete": "?1"}, False),
    ],
)
def test_append_completes(version: int, headers: H, expected: bool) -> None:
    assert ietf.append_completes(headers, version) is expected


@pytest.mark.parametrize("version", [7, 8])
def test_append_without_completeness_is_refused_from_interop_7(version: int) -> None:
    with pytest.raises(BadRequest):
        ietf.append_completes({}, version)


@pytest.mark.parametrize(
    ("content_type", "version", "ok"),
    [
        (None, 3, True),
        (None, 5, True),
        ("application/offset+octet-stream", 5, True),
        (None, 6, False),
        ("application/offset+octet-stream", 6, False),
        ("application/partial-upload", 6, True),
        ("Application/Partial-Upload", 7, True),
        ("application/partial-upload; charset=binary", 8, True),
        ("application/partial-uploads", 8, False),
        ("", 8, False),
    ],
)
def test_append_content_type(content_type: str | None, version: int, ok: bool) -> None:
    if ok:
        ietf.check_append_content_type(content_type, version)
        return
    with pytest.raises(UnsupportedMediaType):
        ietf.check_append_content_type(content_type, version)


def test_check_append_content_type_answers_415_with_accept_patch() -> None:
    ietf.check_append_content_type("application/partial-upload", 6)
    with pytest.raises(UnsupportedMediaType) as info:
        ietf.check_append_content_type("image/png", 6)
    assert info.value.status == 415
    assert info.value.headers["Accept-Patch"] == "application/partial-upload"


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (None, None),
        ("image/JPEG", "image/jpeg"),
        ("image/png; q=1", "image/png"),
        ("application/partial-upload", None),
        ("application/offset+octet-stream", None),
        ("application/octet-stream", None),
        ("", None),
    ],
)
def test_representation_type(content_type: str | None, expected: str | None) -> None:
    assert ietf_requests.representation_type(content_type) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("inline", None),
        ('inline; filename="cat.jpg"', "cat.jpg"),
        ("attachment; filename=cat.jpg", "cat.jpg"),
        ('inline; filename="a \\"b\\".png"', 'a "b".png'),
        (
            "inline; filename=\"file name.jpg\"; filename*=UTF-8''file%20name.jpg",
            "file name.jpg",
        ),
        ("inline; filename*=UTF-8''caf%C3%A9.png; filename=cafe.png", "café.png"),
        ("inline; filename*=iso-8859-1'en'caf%E9.png", "café.png"),
        ("inline; filename*=UTF-8''%FF.png; filename=x.png", "x.png"),  # bad UTF-8
        ("inline; filename*=koi8-r''x.png; filename=y.png", "y.png"),  # charset not allowed
        ('inline; filename=""', None),
    ],
)
def test_disposition_filename(value: str | None, expected: str | None) -> None:
    assert ietf_requests.disposition_filename(value) == expected


def test_repr_digest_reads_sha256_and_ignores_other_algorithms() -> None:
    assert ietf.repr_digest({}) is None
    wanted = hashlib.sha256(b"abc").hexdigest()
    assert ietf.repr_digest({"Repr-Digest": f"sha-256=:{sha256_b64(b'abc')}:"}) == wanted
    both = f"sha=:qZk+NkcGgWq6PiVxeFDCbJzQ2J0=:, sha-256=:{sha256_b64(b'abc')}:;p=1"
    assert ietf.repr_digest({"Repr-Digest": both}) == wanted
    # Only algorithms pixdrop does not check (Immich sends SHA-1): the field is ignored.
    assert ietf.repr_digest({"Repr-Digest": "sha=:qZk+NkcGgWq6PiVxeFDCbJzQ2J0=:"}) is None
    sha512 = base64.b64encode(hashlib.sha512(b"abc").digest()).decode()
    assert ietf.repr_digest({"Repr-Digest": f"sha-512=:{sha512}:"}) is None


@pytest.mark.parametrize(
    "value",
    ["sha-256=abc", "sha-256=:AAEC:", "sha-256", "sha-256=:@@:", "sha-256=(:AAEC:)", "x,"],
)
def test_repr_digest_refuses_malformed_values(value: str) -> None:
    with pytest.raises(InvalidDigest) as info:
        ietf.repr_digest({"Repr-Digest": value})
    assert info.value.status == 400
    assert "Repr-Digest" in info.value.detail


def test_content_digest_prefers_sha256_then_sha512() -> None:
    raw256, raw512 = hashlib.sha256(b"x").digest(), hashlib.sha512(b"x").digest()
    b256, b512 = base64.b64encode(raw256).decode(), base64.b64encode(raw512).decode()
    assert ietf.content_digest({}) is None
    field = f"sha-512=:{b512}:, sha-256=:{b256}:"
    assert ietf.content_digest({"Content-Digest": field}) == ("sha256", raw256)
    assert ietf.content_digest({"Content-Digest": f"sha-512=:{b512}:"}) == ("sha512", raw512)
    assert ietf.content_digest({"Content-Digest": "md5=:AAAAAAAAAAAAAAAAAAAAAA==:"}) is None
    with pytest.raises(InvalidDigest):
        ietf.content_digest({"Content-Digest": f"sha-512=:{b256}:"})


def test_repr_digest_header() -> None:
    text = ietf_responses.repr_digest_header(hashlib.sha256(b"abc").hexdigest())
    assert text == {"Repr-Digest": f"sha-256=:{sha256_b64(b'abc')}:"}
    assert ietf.repr_digest(text) == hashlib.sha256(b"abc").hexdigest()


@pytest.mark.parametrize(
    ("declared", "content_length", "offset", "complete", "expected"),
    [
        (None, None, 0, False, None),
        (None, 100, 0, False, None),  # Content-Length of a non-final part says nothing
        (None, 100, 0, True, 100),
        (None, 40, 60, True, 100),
        (100, None, 0, False, 100),
        (100, 25, 0, False, 100),
        (100, 100, 0, True, 100),
        (100, 40, 60, True, 100),
        (100, None, 60, True, 100),  # chunked body: only Upload-Length speaks
    ],
)
def test_request_length(
    declared: int | None,
    content_length: int | None,
    offset: int,
    complete: bool,
    expected: int | None,
) -> None:
    got = ietf.request_length(
        declared=declared, content_length=content_length, offset=offset, complete=complete
    )
    assert got == expected


def test_request_length_refuses_disagreeing_indicators() -> None:
    with pytest.raises(InconsistentUploadLength) as info:
        ietf.request_length(declared=100, content_length=30, offset=60, complete=True)
    error = info.value
    assert error.status == 400
    assert (
        error.type == "https://iana.org/assignments/http-problem-types#inconsistent-upload-length"
    )
    assert error.extra == {"upload-length": 100, "implied-length": 90}


CREATION_CASES: list[tuple[int, H, int | None, dict[str, Any]]] = [
    (3, {}, 10, {"complete": True, "length": 10}),
    (3, {"Upload-Incomplete": "?1"}, 10, {"complete": False, "length": None}),
    (5, {"Upload-Complete": "?0", "Upload-Length": "50"}, 0, {"complete": False, "length": 50}),
    (
        6,
        {"Upload-Complete": "?1", "Upload-Length": "10", "Upload-Offset": "0"},
        10,
        {"complete": True, "length": 10},
    ),
    (
        8,
        {
            "Upload-Complete": "?0",
            "Content-Type": "image/png",
            "Content-Disposition": 'inline; filename="a.png"',
            "Repr-Digest": f"sha-256=:{sha256_b64(b'a')}:",
        },
        None,
        {
            "complete": False,
            "length": None,
            "content_type": "image/png",
            "filename": "a.png",
            "sha256": hashlib.sha256(b"a").hexdigest(),
        },
    ),
    (
        6,
        {"Upload-Complete": "?1", "Content-Type": "application/partial-upload"},
        5,
        {"content_type": None, "filename": None, "sha256": None, "checksum": None},
    ),
    (
        5,
        {
            "Upload-Complete": "?1",
            "Upload-Metadata": "filename Y2F0LmpwZw==,filetype aW1hZ2UvanBlZw==",
            "Content-Digest": f"sha-256=:{sha256_b64(b'a')}:",
        },
        1,
        {
            "content_type": "image/jpeg",
            "filename": "cat.jpg",
            "checksum": ("sha256", hashlib.sha256(b"a").digest()),
        },
    ),
    (
        8,
        {
            "Upload-Complete": "?1",
            "Content-Type": "image/png",
            "Content-Disposition": 'inline; filename="a.png"',
            "Upload-Metadata": "filename Y2F0LmpwZw==,filetype aW1hZ2UvanBlZw==",
        },
        1,
        {"content_type": "image/png", "filename": "a.png"},
    ),
    (8, {"Upload-Complete": "?1", "Upload-Metadata": "not base64!"}, 1, {"filename": None}),
]


@pytest.mark.parametrize(("version", "headers", "content_length", "expected"), CREATION_CASES)
def test_parse_creation(
    version: int, headers: H, content_length: int | None, expected: dict[str, Any]
) -> None:
    creation = ietf_requests.parse_creation(headers, version, content_length)
    assert creation.version == version
    for name, value in expected.items():
        assert getattr(creation, name) == value, name


@pytest.mark.parametrize(
    ("version", "headers", "content_length", "error"),
    [
        (6, {"Upload-Complete": "?1", "Upload-Offset": "5"}, 5, BadRequest),
        (6, {}, 5, BadRequest),
        (7, {"Upload-Complete": "?1", "Upload-Length": "9"}, 10, InconsistentUploadLength),
        (8, {"Upload-Complete": "yes"}, 1, BadRequest),
        (8, {"Upload-Complete": "?1", "Repr-Digest": "sha-256=abc"}, 1, InvalidDigest),
    ],
)
def test_parse_creation_refuses(
    version: int, headers: H, content_length: int | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        ietf_requests.parse_creation(headers, version, content_length)


APPEND = {"Content-Type": "application/partial-upload"}


@pytest.mark.parametrize(
    ("version", "headers", "content_length", "expected"),
    [
        (3, {"Upload-Offset": "10"}, 5, ietf_requests.Append(3, 10, True, 15)),
        (
            3,
            {"Upload-Offset": "10", "Upload-Incomplete": "?1"},
            5,
            ietf_requests.Append(3, 10, False, None),
        ),
        (
            5,
            {"Upload-Offset": "0", "Upload-Complete": "?0"},
            5,
            ietf_requests.Append(5, 0, False, None),
        ),
        (
            6,
            {**APPEND, "Upload-Offset": "5", "Upload-Complete": "?1"},
            None,
            ietf_requests.Append(6, 5, True, None),
        ),
        (
            8,
            {**APPEND, "Upload-Offset": "5", "Upload-Complete": "?0", "Upload-Length": "20"},
            5,
            ietf_requests.Append(8, 5, False, 20),
        ),
        (
            8,
            {**APPEND, "Upload-Offset": "15", "Upload-Complete": "?1", "Upload-Length": "20"},
            5,
            ietf_requests.Append(8, 15, True, 20),
        ),
    ],
)
def test_parse_append(
    version: int, headers: H, content_length: int | None, expected: ietf_requests.Append
) -> None:
    assert ietf_requests.parse_append(headers, version, content_length) == expected


@pytest.mark.parametrize(
    ("version", "headers", "error"),
    [
        (6, {"Upload-Offset": "0", "Upload-Complete": "?0"}, UnsupportedMediaType),
        (8, {**APPEND, "Upload-Complete": "?0"}, BadRequest),
        (8, {**APPEND, "Upload-Offset": "-1", "Upload-Complete": "?0"}, BadRequest),
        (8, {**APPEND, "Upload-Offset": "0"}, BadRequest),
        (
            8,
            {**APPEND, "Upload-Offset": "0", "Upload-Complete": "?1", "Upload-Length": "6"},
            InconsistentUploadLength,
        ),
        (
            8,
            {
                **APPEND,
                "Upload-Offset": "0",
                "Upload-Complete": "?0",
                "Content-Digest": "sha-256=x",
            },
            InvalidDigest,
        ),
    ],
)
def test_parse_append_refuses(version: int, headers: H, error: type[Exception]) -> None:
    with pytest.raises(error):
        ietf_requests.parse_append(headers, version, 5)


@pytest.mark.parametrize(
    ("version", "headers", "refused"),
    [
        (3, {"Upload-Offset": "0"}, ["Upload-Offset"]),
        (3, {"Upload-Incomplete": "?1"}, ["Upload-Incomplete"]),
        (3, {"Upload-Complete": "?1"}, []),
        (4, {"Upload-Complete": "?0", "Upload-Offset": "1"}, ["Upload-Offset", "Upload-Complete"]),
        (5, {"Upload-Length": "5"}, []),
        (6, {"Upload-Length": "5"}, ["Upload-Length"]),
        (7, {"Upload-Offset": "0", "Upload-Complete": "?1"}, []),
        (8, {"Upload-Length": "5"}, []),
        (6, {}, []),
    ],
)
def test_check_no_upload_fields(version: int, headers: H, refused: list[str]) -> None:
    if not refused:
        ietf_requests.check_no_upload_fields(headers, version, "head")
        return
    with pytest.raises(BadRequest) as info:
        ietf_requests.check_no_upload_fields(headers, version, "head")
    assert info.value.extra["fields"] == refused
    assert info.value.detail.startswith("A HEAD request")


# --- writing responses ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "complete", "expected"),
    [
        (3, False, {"Upload-Incomplete": "?1"}),
        (3, True, {"Upload-Incomplete": "?0"}),
        (4, False, {"Upload-Complete": "?0"}),
        (8, True, {"Upload-Complete": "?1"}),
    ],
)
def test_completion_headers(version: int, complete: bool, expected: H) -> None:
    assert ietf_responses.completion_headers(complete, version) == expected


@pytest.mark.parametrize(
    ("version", "kwargs", "expected"),
    [
        (3, {"max_size": 10}, None),
        (5, {"max_size": 10, "max_age": 60}, None),
        (6, {"max_size": 10, "max_age": 60}, "max-size=10, expires=60"),
        (7, {"max_size": 10, "max_age": 60}, "max-size=10, max-age=60"),
        (8, {}, "min-size=0"),
        (
            8,
            {
                "max_size": 100,
                "min_size": 1,
                "max_append_size": 50,
                "min_append_size": 5,
                "max_age": 0,
            },
            "max-size=100, min-size=1, max-append-size=50, min-append-size=5, max-age=0",
        ),
    ],
)
def test_format_upload_limit(version: int, kwargs: dict[str, int], expected: str | None) -> None:
    assert ietf_responses.format_upload_limit(version=version, **kwargs) == expected


def test_format_upload_limit_takes_max_size_first_and_refuses_negatives() -> None:
    assert ietf_responses.format_upload_limit(7, version=7) == "max-size=7"
    with pytest.raises(ValueError, match="negative"):
        ietf_responses.format_upload_limit(version=8, max_age=-1)


@pytest.mark.parametrize(
    ("delta", "expected"),
    [(timedelta(seconds=90.9), 90), (timedelta(0), 0), (timedelta(seconds=-5), 0)],
)
def test_seconds_left(delta: timedelta, expected: int) -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert ietf_responses.seconds_left(now + delta, now) == expected


@pytest.mark.parametrize(
    ("version", "kwargs", "expected"),
    [
        (
            3,
            {"location": "https://x/files/a", "limit": "max-size=1"},
            {"Upload-Draft-Interop-Version": "3", "Location": "https://x/files/a"},
        ),
        (
            6,
            {"location": "https://x/files/a", "limit": "max-size=1"},
            {
                "Upload-Draft-Interop-Version": "6",
                "Location": "https://x/files/a",
                "Upload-Limit": "max-size=1",
            },
        ),
        (8, {"offset": 500}, {"Upload-Draft-Interop-Version": "8", "Upload-Offset": "500"}),
        (
            5,
            {"offset": 0, "limit": "max-size=1"},
            {"Upload-Draft-Interop-Version": "5", "Upload-Offset": "0"},
        ),
    ],
)
def test_interim_headers(version: int, kwargs: dict[str, Any], expected: H) -> None:
    assert ietf_responses.STATUS_UPLOAD_RESUMPTION_SUPPORTED == 104
    assert ietf_responses.interim_headers(version, **kwargs) == expected


@pytest.mark.parametrize(
    ("version", "creating", "complete", "status"),
    [
        (3, True, False, 201),
        (8, True, False, 201),
        (8, True, True, 201),
        (3, False, False, 201),
        (6, False, False, 201),
        (7, False, False, 204),
        (8, False, False, 204),
        (8, False, True, 201),
        (4, False, True, 201),
    ],
)
def test_success_status(version: int, creating: bool, complete: bool, status: int) -> None:
    assert ietf_responses.success_status(version, creating=creating, complete=complete) == status


@pytest.mark.parametrize(
    ("version", "kwargs", "expected"),
    [
        (
            3,
            {"offset": 25, "complete": False, "location": "/files/a", "limit": "min-size=0"},
            {
                "Upload-Draft-Interop-Version": "3",
                "Upload-Offset": "25",
                "Upload-Incomplete": "?1",
                "Location": "/files/a",
            },
        ),
        (
            6,
            {"offset": 25, "complete": False, "location": "/files/a", "limit": "max-size=9"},
            {
                "Upload-Draft-Interop-Version": "6",
                "Upload-Offset": "25",
                "Upload-Complete": "?0",
                "Location": "/files/a",
                "Upload-Limit": "max-size=9",
            },
        ),
        (
            8,
            {"offset": 100, "complete": True},
            {"Upload-Draft-Interop-Version": "8", "Upload-Offset": "100", "Upload-Complete": "?1"},
        ),
    ],
)
def test_upload_response_headers(version: int, kwargs: dict[str, Any], expected: H) -> None:
    assert ietf_responses.upload_response_headers(version, **kwargs) == expected


@pytest.mark.parametrize(
    ("version", "kwargs", "expected"),
    [
        (
            3,
            {"offset": 100, "complete": False, "length": 250, "limit": "max-size=9"},
            {
                "Upload-Draft-Interop-Version": "3",
                "Upload-Offset": "100",
                "Upload-Incomplete": "?1",
                "Upload-Length": "250",
                "Cache-Control": "no-store",
            },
        ),
        (
            8,
            {"offset": 100, "complete": False, "limit": "max-age=3600"},
            {
                "Upload-Draft-Interop-Version": "8",
                "Upload-Offset": "100",
                "Upload-Complete": "?0",
                "Upload-Limit": "max-age=3600",
                "Cache-Control": "no-store",
            },
        ),
        (
            7,
            {"offset": 9, "complete": True, "length": 9},
            {
                "Upload-Draft-Interop-Version": "7",
                "Upload-Offset": "9",
                "Upload-Complete": "?1",
                "Upload-Length": "9",
                "Cache-Control": "no-store",
            },
        ),
    ],
)
def test_offset_retrieval_headers(version: int, kwargs: dict[str, Any], expected: H) -> None:
    assert ietf_responses.offset_retrieval_headers(version, **kwargs) == expected


@pytest.mark.parametrize(
    ("version", "limit", "expected"),
    [
        (
            3,
            None,
            {"Accept-Patch": "application/partial-upload", "Upload-Draft-Interop-Version": "3"},
        ),
        (
            6,
            "min-size=0",
            {
                "Accept-Patch": "application/partial-upload",
                "Upload-Draft-Interop-Version": "6",
                "Upload-Limit": "min-size=0",
            },
        ),
        (
            5,
            "min-size=0",
            {"Accept-Patch": "application/partial-upload", "Upload-Draft-Interop-Version": "5"},
        ),
        (
            8,
            "max-size=1",
            {
                "Accept-Patch": "application/partial-upload",
                "Upload-Draft-Interop-Version": "8",
                "Upload-Limit": "max-size=1",
            },
        ),
    ],
)
def test_options_headers(version: int, limit: str | None, expected: H) -> None:
    assert ietf_responses.options_headers(version, limit=limit) == expected


# --- problems -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "completeness"),
    [(3, ("Upload-Incomplete", "?1")), (6, ("Upload-Complete", "?0"))],
)
def test_mismatch_error_is_the_iana_409(version: int, completeness: tuple[str, str]) -> None:
    error = ietf_responses.mismatch_error(12, 25, version)
    assert isinstance(error, OffsetMismatch)
    assert error.status == 409
    assert error.headers["Upload-Offset"] == "12"
    assert error.headers[completeness[0]] == completeness[1]
    body = problem_body(error, instance="/files/x")
    assert body["type"] == (
        "https://iana.org/assignments/http-problem-types#mismatching-upload-offset"
    )
    assert body["expected-offset"] == 12
    assert body["provided-offset"] == 25
    assert body["status"] == 409


@pytest.mark.parametrize(
    ("version", "appending_bytes", "cls", "type_uri"),
    [
        (6, True, CompletedUpload, IANA + "completed-upload"),
        (7, True, CompletedUpload, IANA + "completed-upload"),
        (8, True, InconsistentUploadLength, IANA + "inconsistent-upload-length"),
        (8, False, CompletedUpload, IANA + "completed-upload"),
        (3, True, CompletedUpload, IANA + "completed-upload"),
    ],
)
def test_completed_error(
    version: int, appending_bytes: bool, cls: type[Exception], type_uri: str
) -> None:
    error = ietf_responses.completed_error(version, length=100, appending_bytes=appending_bytes)
    assert isinstance(error, cls)
    assert error.status == 400
    assert error.type == type_uri
    assert error.headers["Upload-Offset"] == "100"
    assert ietf_responses.completion_headers(True, version).items() <= error.headers.items()


def test_problem_type_uris() -> None:
    assert MismatchingUploadOffset("x").type == IANA + "mismatching-upload-offset"
    assert CompletedUpload("x").type == IANA + "completed-upload"
    assert InconsistentUploadLength("x").type == IANA + "inconsistent-upload-length"


@pytest.mark.parametrize(
    ("version", "offset", "complete", "expected"),
    [
        (3, None, False, {"Upload-Draft-Interop-Version": "3", "Upload-Incomplete": "?1"}),
        (
            7,
            5,
            False,
            {"Upload-Draft-Interop-Version": "7", "Upload-Complete": "?0", "Upload-Offset": "5"},
        ),
        (8, None, True, {"Upload-Draft-Interop-Version": "8", "Upload-Complete": "?1"}),
    ],
)
def test_error_headers(version: int, offset: int | None, complete: bool, expected: H) -> None:
    assert ietf_responses.error_headers(version, offset=offset, complete=complete) == expected


def test_translate_error_offset_mismatch_becomes_the_iana_problem() -> None:
    service_error = OffsetMismatch(
        "wrong offset", offset=40, expected_offset=40, provided_offset=10
    )
    error = ietf_responses.translate_error(service_error, 8)
    assert isinstance(error, MismatchingUploadOffset)
    assert error.extra == {"expected-offset": 40, "provided-offset": 10}
    assert error.headers["Upload-Offset"] == "40"


def test_translate_error_completed_upload() -> None:
    service_error = UploadNotReceiving("done", offset=100)
    error = ietf_responses.translate_error(service_error, 8, appending_bytes=True)
    assert isinstance(error, InconsistentUploadLength)
    assert isinstance(ietf_responses.translate_error(service_error, 6), CompletedUpload)


@pytest.mark.parametrize(
    ("version", "has_limit"),
    [(5, False), (6, True), (8, True)],
)
def test_translate_error_too_large_carries_upload_limit(version: int, has_limit: bool) -> None:
    error = ietf_responses.translate_error(PayloadTooLarge("big"), version, limit="max-size=10")
    assert isinstance(error, PayloadTooLarge)
    assert ("Upload-Limit" in error.headers) is has_limit
    assert error.headers["Upload-Draft-Interop-Version"] == str(version)


def test_translate_error_refused_image_says_the_upload_is_complete() -> None:
    error = ietf_responses.translate_error(UnprocessableImage("not an image"), 8)
    assert error.headers["Upload-Complete"] == "?1"
    error = ietf_responses.translate_error(UnprocessableImage("not an image"), 3)
    assert error.headers["Upload-Incomplete"] == "?0"


def test_translate_error_keeps_other_errors_and_their_headers() -> None:
    original = NotFound("gone")
    original.headers["Upload-Complete"] = "?1"
    error = ietf_responses.translate_error(original, 7)
    assert error is original
    assert error.headers == {"Upload-Complete": "?1", "Upload-Draft-Interop-Version": "7"}
    # a mismatch without the provided offset cannot be translated: it stays a plain 409
    plain = ietf_responses.translate_error(OffsetMismatch("x", offset=3), 7)
    assert not isinstance(plain, MismatchingUploadOffset)
    assert plain.headers["Upload-Offset"] == "3"


def test_translate_error_length_errors_of_the_service_become_inconsistent_length() -> None:
    changed = InvalidResumableRequest("length cannot change", length=10)
    error = ietf_responses.translate_error(changed, 8, length_errors=True)
    assert isinstance(error, InconsistentUploadLength)
    assert error.extra == {"length": 10}
    past_end = PayloadTooLarge("too long", limit="upload_length", allowed=3)
    error = ietf_responses.translate_error(past_end, 7, length_errors=True)
    assert isinstance(error, InconsistentUploadLength)
    assert error.status == 400
    # outside the service's append (or a limit other than the length): kept as they are
    assert ietf_responses.translate_error(changed, 8) is changed
    too_big = PayloadTooLarge("big", limit="max_image_size")
    assert ietf_responses.translate_error(too_big, 8, length_errors=True) is too_big


@pytest.mark.parametrize(("version", "status"), [(3, 404), (6, 404), (7, 410), (8, 410)])
def test_translate_error_expired_is_not_found_up_to_interop_6(version: int, status: int) -> None:
    error = ietf_responses.translate_error(UploadExpired("expired"), version)
    assert error.status == status
    assert isinstance(error, UploadNotFound) is (status == 404)


def test_translate_error_checksum_mismatch_is_a_digest_mismatch() -> None:
    error = ietf_responses.translate_error(ChecksumMismatch("bad", algorithm="sha256"), 8)
    assert isinstance(error, DigestMismatch)
    assert error.status == 400
    assert error.extra == {"algorithm": "sha256"}
