"""tuspy (the tus project's Python client) against a live pixdrop: upload, and resume.

tuspy creates the upload (POST with ``Upload-Length`` and ``Upload-Metadata``), sends PATCHes
of ``chunk_size`` bytes and, when it is given a URL storage, remembers the upload URL under a
fingerprint of the file, so that a later uploader of the same file asks the server for its
offset (HEAD) and sends only the rest. Every test ends with the image stored and its original
byte for byte the file.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from tusclient.client import TusClient
from tusclient.exceptions import TusCommunicationError
from tusclient.storage.filestorage import FileStorage
from tusclient.uploader import Uploader

from tests.conftest import LiveServer
from tests.interop.relay import Relay
from tests.interop.support import CHUNK, assert_stored, head_offset

FILENAME = "rocket-big.png"
METADATA = {"filename": FILENAME, "filetype": "image/png"}


class FileBytes(io.BytesIO):
    """The file for tuspy's ``file_stream``: a stream that survives ``close()``.

    With ``store_url`` tuspy fingerprints the stream in a ``with`` block (which closes it) and
    reads it again afterwards for the chunks; and with ``file_path`` it leaves files open for
    the garbage collector (ResourceWarnings, which this suite turns into errors).
    """

    def close(self) -> None:
        self.seek(0)


def uploader(endpoint: str, data: bytes, **options: object) -> Uploader:
    client = TusClient(endpoint)
    return client.uploader(
        file_stream=FileBytes(data), chunk_size=CHUNK, metadata=METADATA, **options
    )


@pytest.mark.parametrize("checksum", [False, True], ids=["plain", "sha1-checksum"])
def test_upload_in_chunks(server: LiveServer, big_image: Path, checksum: bool) -> None:
    data = big_image.read_bytes()
    assert len(data) > 8 * CHUNK

    upload = uploader(f"{server.url}/files/", data, upload_checksum=checksum)
    upload.upload()

    assert upload.offset == len(data)
    assert upload.url is not None
    assert upload.url.startswith(f"{server.url}/files/")
    # The PATCH that brought the last byte answers with the stored image.
    last = upload.request
    assert last is not None
    assert last.status_code == 204
    assert "pixdrop-image" in last.response_headers, last.response_headers
    assert last.response_headers.get("pixdrop-delete-token")
    image = assert_stored(upload.url, data, filename=FILENAME)
    assert image["id"] in last.response_headers["pixdrop-image"]


def test_resume_with_a_new_uploader(relay: Relay, big_image: Path, tmp_path: Path) -> None:
    """Three chunks, the uploader is dropped; a new one finds the URL in storage and resumes."""
    data = big_image.read_bytes()
    storage = FileStorage(str(tmp_path / "tus-urls.json"))
    try:
        first = uploader(f"{relay.url}/files/", data, store_url=True, url_storage=storage)
        for _ in range(3):
            first.upload_chunk()
        url, offset = first.url, first.offset
        assert url is not None
        assert offset == 3 * CHUNK
        del first
        assert head_offset(url) == offset

        relay.reset()
        second = uploader(f"{relay.url}/files/", data, store_url=True, url_storage=storage)
        assert second.url == url  # from the URL storage, by fingerprint
        assert second.offset == offset  # from the server (HEAD)
        second.upload()
    finally:
        storage.close()

    sent = relay.sent
    assert second.offset == len(data)
    # The HEAD and the remaining PATCHes: the rest of the file and some headers, no more.
    assert len(data) - offset <= sent < len(data)
    assert_stored(url, data, filename=FILENAME)


def test_resume_after_a_cut_connection(relay: Relay, big_image: Path, tmp_path: Path) -> None:
    """The connection drops in the middle of a PATCH; the next uploader resumes from the
    server's offset, which counts at least every chunk the server acknowledged."""
    data = big_image.read_bytes()
    storage = FileStorage(str(tmp_path / "tus-urls.json"))
    try:
        first = uploader(f"{relay.url}/files/", data, store_url=True, url_storage=storage)
        relay.cut_after(len(data) * 45 // 100 + 1000)  # in the middle of the fifth chunk
        with pytest.raises(TusCommunicationError):
            first.upload()
        assert relay.cuts == 1
        url, acknowledged = first.url, first.offset
        assert url is not None
        assert 0 < acknowledged < len(data)
        del first

        relay.reset()
        # Retries: the server may still be closing the broken PATCH when the HEAD comes (its
        # offset can then grow once more, and a PATCH at the older offset is a 409).
        second = uploader(
            f"{relay.url}/files/",
            data,
            store_url=True,
            url_storage=storage,
            retries=3,
            retry_delay=1,
        )
        assert second.url == url
        resumed_at = second.offset
        assert resumed_at >= acknowledged
        second.upload()
    finally:
        storage.close()

    assert second.offset == len(data)
    assert relay.sent < len(data)
    assert_stored(url, data, filename=FILENAME)
