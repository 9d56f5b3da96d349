"""The library against a live server: one request or chunks, resume, fresh starts, errors.

Requests are counted on the server's side (its access log), so "sent only what was missing"
is what the server saw, not what the client believes it did.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import os
import shutil
import threading
from pathlib import Path

import anyio
import httpx
import pytest

from pixdrop.client import (
    AsyncClient,
    BadRequestError,
    Client,
    ForbiddenError,
    NotFoundError,
    Progress,
)
from pixdrop.client.source import Source
from pixdrop.client.state import ResumeStore
from tests.client.conftest import (
    CHUNK,
    FAST_RETRY,
    AccessLog,
    assert_sent_only,
    chunk_puts,
    count,
    fake_png,
    write_png,
)
from tests.client.proxy import FaultProxy, Faults
from tests.conftest import LiveServer


class Stop(Exception):
    """Raised from a progress callback to interrupt an upload midway."""


def stop_after(limit: int):
    def check(progress: Progress) -> None:
        if progress.done >= limit:
            raise Stop

    return check


def chunks_of(data: bytes) -> int:
    return -(-len(data) // CHUNK)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def records(state_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((state_dir / "uploads").glob("*.json"))]


def make_client(server: LiveServer, state_dir: Path, **options) -> Client:
    return Client(server.url, state_dir=state_dir, retry=FAST_RETRY, **options)


def interrupted_upload(client: Client, path: Path, after_chunks: int) -> str:
    """Start a chunked upload of *path*, stop it midway; return the remembered upload id."""
    with pytest.raises(Stop):
        client.upload(
            path, chunk_size=CHUNK, parallel=2, on_progress=stop_after(after_chunks * CHUNK)
        )
    (record,) = records(client.config.state_dir or Path())
    return str(record["upload_id"])


class Recorder(httpx.BaseTransport):
    """A transport that notes each request's headers and how many are in flight at once."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append(request)
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            response = self.inner.handle_request(request)
            response.read()
            return response
        finally:
            with self.lock:
                self.in_flight -= 1

    def close(self) -> None:
        self.inner.close()


def test_small_file_goes_in_one_request(
    chunk_server, access_log: AccessLog, state_dir, tmp_path, photo_png
):
    path = tmp_path / "cat.png"
    path.write_bytes(photo_png)
    with make_client(chunk_server, state_dir) as client:
        image = client.upload(path)
        again = client.get(image.id)
    assert (image.sha256, image.size, image.filename) == (
        sha256(photo_png),
        len(photo_png),
        "cat.png",
    )
    assert image.delete_token
    assert (image.width, image.height, image.format) == (451, 300, "png")
    assert again.delete_token is None
    assert count(access_log.hits, "POST", "/v1/images") == 1
    assert count(access_log.hits, "POST", "/v1/uploads") == 0


def test_large_file_goes_in_parallel_chunks_with_digests(
    chunk_server, access_log, state_dir, tmp_path
):
    path = tmp_path / "big.png"
    data = write_png(path, 20 * CHUNK)  # 21 chunks, the last one short
    proxy = FaultProxy(int(chunk_server.url.rsplit(":", 1)[1]), Faults(delay=0.02))
    recorder, seen = Recorder(), []
    try:
        with Client(proxy.url, state_dir=state_dir, retry=FAST_RETRY, transport=recorder) as client:
            image = client.upload(path, chunk_size=CHUNK, parallel=4, on_progress=seen.append)
    finally:
        proxy.close()

    assert image.sha256 == sha256(data)
    assert image.size == len(data)
    assert len(data) % CHUNK
    assert chunks_of(data) == 21
    assert sorted(chunk_puts(access_log.hits)) == list(range(21))
    assert count(access_log.hits, "POST", "/v1/uploads") == 1
    (create,) = [r for r in recorder.requests if r.method == "POST" and r.url.path == "/v1/uploads"]
    assert json.loads(create.content) == {
        "size": len(data), "sha256": sha256(data), "chunk_size": CHUNK, "filename": "big.png"
    }  # fmt: skip
    for request in recorder.requests:
        if request.method == "PUT":
            index = int(request.url.path.rsplit("/", 1)[1])
            chunk = data[index * CHUNK : (index + 1) * CHUNK]
            digest = hashlib.sha256(chunk).digest()
            assert (
                request.headers["content-digest"]
                == f"sha-256=:{base64.b64encode(digest).decode()}:"
            )
    assert 2 <= recorder.most_in_flight <= 4, recorder.most_in_flight
    assert proxy.connections <= 4
    upload_id = seen[-1].upload_id  # every report names the chunked upload
    assert seen[-1] == Progress(len(data), len(data), 0, upload_id)
    assert {p.upload_id for p in seen} == {upload_id}
    assert len(chunk_puts(access_log.hits, upload_id)) == 21
    assert records(state_dir) == []  # finished: nothing left to resume


def test_resume_sends_only_the_missing_chunks(chunk_server, access_log, state_dir, tmp_path):
    path = tmp_path / "big.png"
    data = write_png(path, 24 * CHUNK)
    with make_client(chunk_server, state_dir) as client:
        upload_id = interrupted_upload(client, path, after_chunks=10)
        mark = access_log.settle()
        missing = client.status(upload_id).missing
        assert 0 < len(missing) < chunks_of(data) - 8, missing

        resumed: list[Progress] = []
        image = client.upload(path, chunk_size=CHUNK, parallel=3, on_progress=resumed.append)
    hits = access_log.since(mark)
    assert_sent_only(hits, missing)
    assert count(hits, "POST", "/v1/uploads") == 0
    assert resumed[0].resumed == len(data) - sum(
        len(data[i * CHUNK : (i + 1) * CHUNK]) for i in missing
    )
    assert image.sha256 == sha256(data)
    assert image.delete_token


def test_changed_file_is_uploaded_afresh(chunk_server, access_log, state_dir, tmp_path):
    path = tmp_path / "photo.png"
    old = write_png(path, 12 * CHUNK, seed=1)
    before = path.stat()
    with make_client(chunk_server, state_dir) as client:
        old_id = interrupted_upload(client, path, after_chunks=4)
        # Same name, same size, same mtime: only the content (its sha256) tells them apart.
        new = write_png(path, 12 * CHUNK, seed=2)
        assert len(new) == len(old)
        assert new != old
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        mark = access_log.settle()
        image = client.upload(path, chunk_size=CHUNK)
        out = io.BytesIO()
        client.download(image.id, out)
    hits = access_log.since(mark)
    assert count(hits, "POST", "/v1/uploads") == 1
    assert count(hits, "DELETE", f"/v1/uploads/{old_id}") == 1  # the stale upload is freed
    assert chunk_puts(hits, old_id) == []
    assert sorted(chunk_puts(hits)) == list(range(chunks_of(new)))
    assert image.sha256 == sha256(new)
    assert out.getvalue() == new


def test_vanished_upload_is_replaced_by_a_fresh_one(chunk_server, access_log, state_dir, tmp_path):
    path = tmp_path / "photo.png"
    data = write_png(path, 8 * CHUNK)
    with make_client(chunk_server, state_dir) as client:
        old_id = interrupted_upload(client, path, after_chunks=3)
        assert httpx.delete(f"{chunk_server.url}/v1/uploads/{old_id}").status_code == 204
        mark = access_log.settle()
        image = client.upload(path, chunk_size=CHUNK)
    hits = access_log.since(mark)
    assert count(hits, "GET", f"/v1/uploads/{old_id}") == 1
    assert count(hits, "POST", "/v1/uploads") == 1
    assert sorted(chunk_puts(hits)) == list(range(chunks_of(data)))
    assert image.sha256 == sha256(data)


def test_completed_upload_is_resolved_by_complete(chunk_server, access_log, state_dir, tmp_path):
    """A run that died after ``complete`` but before forgetting its record: no chunk again."""
    path = tmp_path / "photo.png"
    data = write_png(path, 5 * CHUNK)
    saved = tmp_path / "record.json"

    def keep_record(progress: Progress) -> None:
        if progress.done and not saved.exists():
            (record,) = (state_dir / "uploads").glob("*.json")
            shutil.copy(record, saved)

    with make_client(chunk_server, state_dir) as client:
        first = client.upload(path, chunk_size=CHUNK, on_progress=keep_record)
        record = json.loads(saved.read_text())
        with Source(path) as source:
            name = ResumeStore.key(client.base_url, source, source.fingerprint())
        shutil.copy(saved, state_dir / "uploads" / f"{name}.json")
        mark = access_log.mark()
        again = client.upload(path, chunk_size=CHUNK)
    hits = access_log.since(mark)
    assert chunk_puts(hits) == []
    assert count(hits, "POST", f"/v1/uploads/{record['upload_id']}/complete") == 1
    assert again.id == first.id
    assert again.sha256 == sha256(data)
    assert again.delete_token is None  # only the creating answer carries it


def test_refusals_raise_typed_errors_and_are_not_retried(chunk_server, access_log, state_dir):
    with make_client(chunk_server, state_dir, single_request_limit=1000) as client:
        with pytest.raises(NotFoundError) as missing:
            client.get("A" * 22)
        with pytest.raises(BadRequestError) as too_small:
            client.upload(fake_png(5000), chunk_size=1000)  # under the server's minimum
        image = client.upload(fake_png(3 * CHUNK), chunk_size=CHUNK)
        with pytest.raises(ForbiddenError):
            client.delete(image.id, "not-the-token")
        client.delete(image.id, image.delete_token or "")
        with pytest.raises(NotFoundError):
            client.status("no-such-upload")

    assert missing.value.status == 404
    assert missing.value.slug == "image-not-found"
    assert missing.value.detail
    assert missing.value.body["status"] == 404
    assert too_small.value.slug == "invalid-upload-request"
    assert too_small.value.body["limit"] == "chunk_size"
    hits = access_log.hits
    assert count(hits, "GET", "/v1/images/" + "A" * 22) == 1
    assert count(hits, "POST", "/v1/uploads") == 2  # the refused one once, then the good one
    assert count(hits, "DELETE", f"/v1/images/{image.id}") == 2


def test_async_client_uploads_resumes_and_downloads(chunk_server, access_log, state_dir, tmp_path):
    path = tmp_path / "async.png"
    data = write_png(path, 10 * CHUNK + 1)

    async def scenario() -> tuple[str, list[int], bytes, str]:
        async with AsyncClient(chunk_server.url, state_dir=state_dir, retry=FAST_RETRY) as client:
            with pytest.raises(Stop):
                await client.upload(
                    path, chunk_size=CHUNK, parallel=3, on_progress=stop_after(4 * CHUNK)
                )
            (record,) = records(state_dir)
            await anyio.to_thread.run_sync(access_log.settle)
            status = await client.status(record["upload_id"])
            mark = access_log.mark()
            image = await client.upload(path, chunk_size=CHUNK, parallel=3)
            puts = chunk_puts(access_log.since(mark), statuses={201})
            assert_sent_only(access_log.since(mark), status.missing)
            out = tmp_path / "copy.png"
            await client.download(image.id, out)
            fetched = await client.get(image.id)
            return image.sha256, puts, out.read_bytes(), fetched.sha256

    digest, puts, copy, fetched = asyncio.run(scenario())
    assert 0 < len(puts) < chunks_of(data)
    assert digest == fetched == sha256(data)
    assert copy == data


def test_too_large_for_one_request_falls_back_to_chunks(server_factory, access_log, tmp_path):
    server = server_factory(min_chunk_size=CHUNK, max_request_size=2 * CHUNK, access_log=True)
    data = fake_png(3 * CHUNK)
    one_request = 10 * CHUNK  # the client would send it whole; the server takes only 2 chunks
    with Client(
        server.url, state_dir=tmp_path, retry=FAST_RETRY, single_request_limit=one_request
    ) as client:
        image = client.upload(data, chunk_size=CHUNK)
    assert image.sha256 == sha256(data)
    assert count(access_log.hits, "POST", "/v1/images") == 1  # refused from its headers: 413
    assert sorted(chunk_puts(access_log.hits)) == list(range(chunks_of(data)))
