"""Checks shared by the interop tests: the end state of a tus upload, as seen over HTTP.

``assert_stored`` is the common end of every test: the upload URL reports a stored image
(``Pixdrop-Image``) and the image's original is, byte for byte, the file that was uploaded.
"""

from __future__ import annotations

import hashlib
import re

import httpx

TUS = {"Tus-Resumable": "1.0.0"}
#: The chunk size the clients are given: the test image is about ten of them.
CHUNK = 256 * 1024
_SF_STRING = re.compile(r'\s*([a-z*][a-z0-9_.*-]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')


def parse_pixdrop_image(value: str) -> dict[str, str]:
    """``id="abc", url="http://..."`` (an RFC 8941 dictionary of strings) → a dict."""
    fields: dict[str, str] = {}
    position = 0
    while position < len(value):
        match = _SF_STRING.match(value, position)
        assert match, f"Pixdrop-Image is not a dictionary of strings: {value!r}"
        fields[match[1]] = re.sub(r"\\(.)", r"\1", match[2])
        position = match.end()
    return fields


def assert_stored(upload_url: str, data: bytes, filename: str | None = None) -> dict[str, str]:
    """The completed tus upload at *upload_url* is a stored image whose bytes are *data*.

    Returns the ``Pixdrop-Image`` fields (``id``, ``url``).
    """
    with httpx.Client(timeout=30) as http:
        head = http.head(upload_url, headers=TUS)
        assert head.status_code == 200, (head.status_code, dict(head.headers))
        assert head.headers.get("Tus-Resumable") == "1.0.0"
        assert head.headers.get("Upload-Offset") == str(len(data)), dict(head.headers)
        assert head.headers.get("Upload-Length") == str(len(data)), dict(head.headers)
        assert "Pixdrop-Image" in head.headers, dict(head.headers)
        image = parse_pixdrop_image(head.headers["Pixdrop-Image"])
        assert image.get("id"), image
        assert image.get("url", "").startswith("http"), image

        found = http.get(image["url"])
        assert found.status_code == 200, (found.status_code, found.text[:500])
        if found.headers.get("Content-Type", "").startswith("application/json"):
            # /v1/images/{id}: the image object; the bytes are at its own "url" (/original).
            body = found.json()
            assert body["id"] == image["id"], body
            assert body["size"] == len(data), body
            assert body["sha256"] == hashlib.sha256(data).hexdigest(), body
            if filename is not None:
                assert body["filename"] == filename, body
            found = http.get(body["url"])
            assert found.status_code == 200, (found.status_code, found.text[:500])
        assert len(found.content) == len(data)
        assert found.content == data
    return image


def head_offset(upload_url: str) -> int:
    """The server's ``Upload-Offset`` for an unfinished upload."""
    with httpx.Client(timeout=30) as http:
        head = http.head(upload_url, headers=TUS)
    assert head.status_code == 200, (head.status_code, dict(head.headers))
    return int(head.headers["Upload-Offset"])
