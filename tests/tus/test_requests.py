"""``protocols/tus.py`` reading whole requests into one value (no server: sans-I/O)."""

from __future__ import annotations

import base64

import pytest

from pixdrop.errors import BadRequest, UnsupportedMediaType
from pixdrop.protocols import tus

SUPPORTED = ("sha1", "sha256")
DATA = {"Content-Type": tus.OFFSET_OCTET_STREAM}
SHA1 = "sha1 " + base64.b64encode(b"x" * 20).decode()


def creation(headers: dict[str, str], content_length: int | None = None) -> tus.TusCreation:
    return tus.parse_creation(headers, content_length, mount="/files", supported=SUPPORTED)


def test_a_creation_with_the_whole_file() -> None:
    read = creation({**DATA, "Upload-Length": "5", "Upload-Checksum": SHA1}, 5)
    assert (read.length, read.with_data, read.whole, read.partial, read.final) == (
        5,
        True,
        True,
        False,
        None,
    )
    assert read.checksum == tus.BodyChecksum(tus.ChecksumHeader("sha1", b"x" * 20))


def test_a_creation_with_part_of_the_file_or_none() -> None:
    assert not creation({**DATA, "Upload-Length": "9"}, 5).whole
    empty = creation({"Upload-Defer-Length": "1", "Upload-Checksum": "bogus"}, 0)
    assert (empty.length, empty.with_data, empty.checksum) == (None, False, tus.BodyChecksum())


def test_a_creation_reads_its_metadata() -> None:
    raw = "filename " + base64.b64encode(b"a.png").decode() + ",filetype aW1hZ2UvcG5n"
    read = creation({"Upload-Length": "5", "Upload-Metadata": raw})
    assert (read.metadata, read.filename, read.content_type) == (raw, "a.png", "image/png")


def test_a_final_upload_names_its_partial_uploads() -> None:
    value = " final;/files/a http://host/files/b "
    read = creation({"Upload-Concat": value})
    assert (read.final, read.concat, read.length) == (("a", "b"), value.strip(), None)
    assert creation({"Upload-Concat": "partial", "Upload-Length": "3"}).partial


@pytest.mark.parametrize(
    ("headers", "content_length", "error"),
    [
        ({"Upload-Length": "5", "Content-Type": "image/png"}, 5, UnsupportedMediaType),
        ({}, None, BadRequest),
        ({"Upload-Length": "5", "Upload-Defer-Length": "1"}, None, BadRequest),
        ({"Upload-Defer-Length": "2"}, None, BadRequest),
        ({"Upload-Concat": "final;/files/a", "Upload-Length": "5"}, None, BadRequest),
        ({"Upload-Concat": "final;/elsewhere/a"}, None, BadRequest),
        ({**DATA, "Upload-Length": "5", "Upload-Checksum": "md5 AAAA"}, 5, BadRequest),
    ],
)
def test_a_creation_refused(
    headers: dict[str, str], content_length: int | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        creation(headers, content_length)


def test_a_patch() -> None:
    read = tus.parse_patch({**DATA, "Upload-Offset": "3", "Upload-Length": "9"}, 6, SUPPORTED)
    assert read == tus.TusPatch(3, 9, tus.BodyChecksum())
    trailer = {**DATA, "Upload-Offset": "0", "Trailer": "Foo, Upload-Checksum"}
    assert tus.parse_patch(trailer, None, SUPPORTED).checksum.in_trailer


@pytest.mark.parametrize(
    ("headers", "content_length", "error"),
    [
        ({"Upload-Offset": "0"}, None, UnsupportedMediaType),
        ({"Upload-Offset": "0", "Content-Type": "text/plain"}, 3, UnsupportedMediaType),
        (DATA, 3, BadRequest),
        ({**DATA, "Upload-Offset": "-1"}, 3, BadRequest),
        ({**DATA, "Upload-Offset": "0", "Upload-Checksum": "sha1 !"}, 3, BadRequest),
    ],
)
def test_a_patch_refused(
    headers: dict[str, str], content_length: int | None, error: type[Exception]
) -> None:
    with pytest.raises(error):
        tus.parse_patch(headers, content_length, SUPPORTED)


def test_an_empty_patch_needs_no_media_type() -> None:
    assert tus.parse_patch({"Upload-Offset": "4"}, 0, SUPPORTED).offset == 4
