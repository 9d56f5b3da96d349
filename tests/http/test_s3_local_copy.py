"""Node-local copies of uploads on S3 (``storage/s3_local.py``), over real HTTP: a node that
received every byte of an upload completes it without reading the object back from the
bucket, and a node that did not (or whose copy is not the bytes the bucket got) reads it.

Which objects a server reads is seen through botocore's event hooks on that server's own S3
client (an in-process server): every ``GetObject`` still goes to SeaweedFS, the hook only
notes its key. A "node" is one in-process server with a data directory of its own, on the
test's database and bucket prefix; a restart is a new server on the same data directory.
"""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ServerFactory
from tests.http.helpers import (
    create_upload,
    digest_field,
    noise_png,
    post_image,
    put_chunk,
    split_chunks,
)

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

MiB = 1024 * 1024
CHUNK = 5 * MiB
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


@pytest.fixture
def backend() -> str:
    return "s3"


@pytest.fixture(scope="module")
def big_png() -> bytes:
    """A PNG of random pixels (incompressible): about 12 MiB, three chunks of 5 MiB."""
    return noise_png(2000, seed=18)


class StagedReads:
    """The keys of finished uploads (``.../staging/<id>``) a live server's S3 client GETs."""

    def __init__(self, live: LiveServer) -> None:
        self.keys: list[str] = []
        self._lock = threading.Lock()
        client = live.server.config.app.state.blob_store.bucket.client
        client.meta.events.register("provide-client-params.s3.GetObject", self._seen)

    def _seen(self, params: dict[str, Any], **_: Any) -> None:
        if "/staging/" in "/" + str(params.get("Key", "")):
            with self._lock:
                self.keys.append(str(params["Key"]))

    def count(self) -> int:
        with self._lock:
            return len(self.keys)


def copies(live: LiveServer) -> list[Path]:
    """The node-local copies (live and sealed) in a server's scratch directory."""
    root = live.settings.data_dir / "tmp" / "copies"
    return [entry for boot in root.iterdir() for entry in boot.iterdir()] if root.exists() else []


def original(client: httpx.Client, image: dict[str, Any]) -> bytes:
    return client.get(f"/v1/images/{image['id']}/original").content


def chunked(client: httpx.Client, data: bytes, *, sha256: bool = True) -> tuple[str, list[bytes]]:
    fields = {"sha256": hashlib.sha256(data).hexdigest()} if sha256 else {}
    upload = create_upload(client, len(data), chunk_size=CHUNK, **fields)
    return upload["id"], split_chunks(data, CHUNK)


def send(client: httpx.Client, upload_id: str, chunks: list[bytes], indices: list[int]) -> None:
    with ThreadPoolExecutor(len(indices)) as pool:
        replies = list(pool.map(lambda i: put_chunk(client, upload_id, i, chunks[i]), indices))
    assert [reply.status_code for reply in replies] == [201] * len(indices), replies[0].text


def complete(client: httpx.Client, upload_id: str) -> dict[str, Any]:
    done = client.post(f"/v1/uploads/{upload_id}/complete")
    assert done.status_code == 201, done.text
    image: dict[str, Any] = done.json()
    return image


def by_tus(client: httpx.Client, data: bytes) -> dict[str, Any]:
    """A tus upload in PATCHes of 3 MiB (off the grid of 8 MiB parts: tails in between)."""
    created = client.post("/files/", headers={**TUS, "Upload-Length": str(len(data))})
    assert created.status_code == 201, created.text
    path = httpx.URL(created.headers["location"]).path
    reply = None
    for offset in range(0, len(data), 3 * MiB):
        reply = client.patch(
            path,
            content=data[offset : offset + 3 * MiB],
            headers={**TUS, "Upload-Offset": str(offset), "Content-Type": OCTETS},
        )
        assert reply.status_code == 204, reply.text
    assert reply is not None
    assert "pixdrop-image" in reply.headers
    url = reply.headers["pixdrop-image"].split('url="', 1)[1].split('"', 1)[0]
    image: dict[str, Any] = client.get(url).json()
    return image


@pytest.mark.parametrize("how", ["chunks", "tus", "one request"])
def test_an_upload_to_one_node_completes_without_reading_the_object_back(
    server_factory: ServerFactory, big_png: bytes, how: str
) -> None:
    node = server_factory()
    reads = StagedReads(node)
    with httpx.Client(base_url=node.url, timeout=60) as client:
        if how == "chunks":
            upload_id, chunks = chunked(client, big_png)
            send(client, upload_id, chunks, [2, 0, 1])  # last first, all at once
            image = complete(client, upload_id)
        elif how == "tus":
            image = by_tus(client, big_png)
        else:
            image = post_image(client, big_png)
        assert reads.keys == []  # decoded and hashed from the node's own copy
        assert image["sha256"] == hashlib.sha256(big_png).hexdigest()
        assert original(client, image) == big_png  # and the bucket has the same bytes
    assert copies(node) == []  # gone with the upload


def test_a_node_that_saw_only_some_chunks_reads_the_object(
    server_factory: ServerFactory, big_png: bytes, tmp_path: Path
) -> None:
    one = server_factory(data_dir=tmp_path / "one")
    two = server_factory(data_dir=tmp_path / "two")
    reads = StagedReads(one)
    with (
        httpx.Client(base_url=one.url, timeout=60) as first,
        httpx.Client(base_url=two.url, timeout=60) as second,
    ):
        upload_id, chunks = chunked(first, big_png, sha256=False)
        send(first, upload_id, chunks, [0, 2])
        send(second, upload_id, chunks, [1])
        image = complete(first, upload_id)
        assert reads.count() >= 1  # the object, from the bucket
        assert image["sha256"] == hashlib.sha256(big_png).hexdigest()
        assert original(second, image) == big_png
    assert copies(one) == []
    assert len(copies(two)) == 1  # chunk 1's bytes: the other node never completes it


def test_a_copy_survives_a_restart_of_its_process(
    server_factory: ServerFactory, big_png: bytes, tmp_path: Path
) -> None:
    node = server_factory(data_dir=tmp_path / "node")
    with httpx.Client(base_url=node.url, timeout=60) as client:
        upload_id, chunks = chunked(client, big_png)
        send(client, upload_id, chunks, [0, 1, 2])
    node.stop()
    again = server_factory(data_dir=tmp_path / "node")
    reads = StagedReads(again)
    with httpx.Client(base_url=again.url, timeout=60) as client:
        image = complete(client, upload_id)
        assert reads.keys == []  # same boot: the log and the page cache agree
        assert original(client, image) == big_png


def test_a_copy_with_a_wrong_byte_is_never_used(
    server_factory: ServerFactory, big_png: bytes, tmp_path: Path
) -> None:
    """Chunk 1 reaches node one with a flipped byte (refused by its digest, after its bytes
    were written: into the bucket's part and the local copy), node one restarts, and the
    right chunk 1 goes through node two. Node one's copy then holds every byte range, one of
    them with a wrong byte: the receipts say so, and the object is read from the bucket."""
    one = server_factory(data_dir=tmp_path / "one")
    two = server_factory(data_dir=tmp_path / "two")
    with httpx.Client(base_url=one.url, timeout=60) as client:
        upload_id, chunks = chunked(client, big_png)
        send(client, upload_id, chunks, [0, 2])
        bad = bytearray(chunks[1])
        bad[1000] ^= 0xFF
        refused = put_chunk(
            client, upload_id, 1, bytes(bad), headers={"Content-Digest": digest_field(chunks[1])}
        )
        assert refused.status_code == 400, refused.text
    one.stop()
    one = server_factory(data_dir=tmp_path / "one")
    reads = StagedReads(one)
    with (
        httpx.Client(base_url=one.url, timeout=60) as first,
        httpx.Client(base_url=two.url, timeout=60) as second,
    ):
        send(second, upload_id, chunks, [1])
        image = complete(first, upload_id)
        assert reads.count() >= 1
        assert image["sha256"] == hashlib.sha256(big_png).hexdigest()
        assert original(first, image) == big_png
    assert copies(one) == []
