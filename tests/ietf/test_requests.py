"""``protocols/ietf_requests.py`` reading a whole request, version included, into one value;
errors come out as a client of that version sees them (no server: sans-I/O)."""

from __future__ import annotations

import pytest

from pixdrop.errors import BadRequest, UnsupportedMediaType
from pixdrop.protocols import ietf_requests

V = "Upload-Draft-Interop-Version"


def test_read_creation() -> None:
    headers = {V: "8", "Upload-Complete": "?1", "Content-Type": "image/png"}
    read = ietf_requests.read_creation(headers, 5)
    assert (read.version, read.complete, read.length, read.content_type) == (
        8,
        True,
        5,
        "image/png",
    )


def test_read_append() -> None:
    headers = {V: "7", "Upload-Offset": "5", "Upload-Complete": "?0"}
    headers["Content-Type"] = "application/partial-upload"
    assert ietf_requests.read_append(headers, 5) == ietf_requests.Append(7, 5, False, None)


def test_errors_speak_the_version() -> None:
    with pytest.raises(BadRequest) as info:
        ietf_requests.read_creation({V: "4"}, 1)  # no Upload-Complete
    assert info.value.headers["Upload-Complete"] == "?0"
    assert info.value.headers[V] == "4"
    with pytest.raises(UnsupportedMediaType) as media:
        ietf_requests.read_append({V: "6", "Upload-Offset": "0"}, 1)
    assert media.value.headers["Accept-Patch"] == "application/partial-upload"
    assert media.value.headers[V] == "6"


def test_an_unknown_or_missing_version_is_refused_as_is() -> None:
    for headers in ({V: "2"}, {}):
        with pytest.raises(BadRequest) as info:
            ietf_requests.read_bare(headers, "OPTIONS")
        assert V not in info.value.headers


def test_read_bare() -> None:
    assert ietf_requests.read_bare({V: "6", "Upload-Offset": "0"}, "OPTIONS").version == 6
    assert ietf_requests.read_bare({V: "7", "Upload-Offset": "0"}, "HEAD").version == 7
    with pytest.raises(BadRequest) as info:
        ietf_requests.read_bare({V: "6", "Upload-Offset": "0"}, "delete")
    assert info.value.detail.startswith("A DELETE request")
