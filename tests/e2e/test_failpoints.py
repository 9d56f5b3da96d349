"""A failpoint matrix for completion: ``pixdrop serve`` is SIGKILLed at each step of completing
an upload (``pixdrop.failpoints.STEPS``, chosen by ``PXD_FAILPOINT``), for each way in (native
chunks, tus, the IETF draft, tus concatenation). A restarted server must then hold:

* no image record without its blob (every listed image serves its bytes);
* retried, the upload completes into exactly one image of the bytes sent (for tus
  concatenation the client, which never learnt the final upload's URL, creates it again);
* not retried, the upload reports every byte received (nothing missing to send again);
* once every upload has expired and the sweeper ran, no leftovers: no staging file, and no
  blob that no image names (the case that needed ``Lifecycle._reclaim``: killed between
  keeping the blob and recording the image, then never retried).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import time
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest

from pixdrop import failpoints
from pixdrop.metadata import open_metadata_store
from pixdrop.metadata.leases import open_leases
from pixdrop.services.leases import LeaseKeeper
from pixdrop.services.lifecycle import Lifecycle, UploadLimits
from pixdrop.services.locks import LeaseLocks
from pixdrop.storage import default_blob_store_url, open_blob_store
from tests.e2e import ServerProcess
from tests.http.helpers import create_upload, noise_png, send_chunks, split_chunks
from tests.tus.wire import OCTETS, TUS, sf_strings

IETF = {"Upload-Draft-Interop-Version": "7"}
RETRY = (409, 423, 503)  # a dead holder's lease lapses after its ttl (10 s)


def until_settled(call: Callable[[], httpx.Response], timeout: float = 60) -> httpx.Response:
    """*call* until it answers anything but a retry-later status, as a client would."""
    deadline = time.monotonic() + timeout
    while True:
        response = call()
        if response.status_code not in RETRY or time.monotonic() > deadline:
            return response
        time.sleep(0.5)


def path_of(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    return httpx.URL(response.headers["location"]).path


# --- the ways in: send everything but the request that completes; that request; a retry ----


class Native:
    def check_received(self, client: httpx.Client, handle: str, data: bytes) -> None:
        state = client.get(f"/v1/uploads/{handle}")
        assert state.status_code == 200, state.text
        assert state.json()["missing"] == []

    def prepare(self, client: httpx.Client, data: bytes) -> str:
        chunk = 64 * 1024
        upload = create_upload(client, len(data), chunk_size=chunk)
        chunks = split_chunks(data, chunk)
        send_chunks(client, upload["id"], chunks, range(len(chunks)))
        return str(upload["id"])

    def complete(self, client: httpx.Client, handle: str, data: bytes) -> httpx.Response:
        return client.post(f"/v1/uploads/{handle}/complete")

    def retry(self, client: httpx.Client, handle: str, data: bytes) -> str:
        done = until_settled(lambda: self.complete(client, handle, data))
        assert done.status_code in (200, 201), done.text
        return str(done.json()["id"])


class Tus:
    def check_received(self, client: httpx.Client, handle: str, data: bytes) -> None:
        state = until_settled(lambda: client.head(handle, headers=TUS))
        assert state.status_code == 200, state.text
        assert state.headers["upload-offset"] == str(len(data))

    def prepare(self, client: httpx.Client, data: bytes) -> str:
        created = client.post("/files", headers={**TUS, "Upload-Length": str(len(data))})
        return path_of(created)

    def complete(self, client: httpx.Client, handle: str, data: bytes) -> httpx.Response:
        headers = {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"}
        return client.patch(handle, content=data, headers=headers)

    def retry(self, client: httpx.Client, handle: str, data: bytes) -> str:
        def again() -> httpx.Response:
            state = client.head(handle, headers=TUS)
            if state.status_code != 200 or "pixdrop-image" in state.headers:
                return state
            # The bytes are all in: an empty PATCH at the end completes the upload.
            offset = state.headers["upload-offset"]
            headers = {**TUS, "Content-Type": OCTETS, "Upload-Offset": offset}
            return client.patch(handle, content=b"", headers=headers)

        done = until_settled(again)
        assert done.status_code in (200, 204), done.text
        if "pixdrop-image" not in done.headers:
            done = client.head(handle, headers=TUS)
        return image_id(done)


class Ietf:
    def check_received(self, client: httpx.Client, handle: str, data: bytes) -> None:
        state = until_settled(lambda: client.head(handle, headers=IETF))
        assert state.status_code == 204, state.text
        assert state.headers["upload-offset"] == str(len(data))

    def prepare(self, client: httpx.Client, data: bytes) -> str:
        headers = {**IETF, "Upload-Complete": "?0", "Upload-Length": str(len(data))}
        return path_of(client.post("/files", headers=headers))

    def complete(self, client: httpx.Client, handle: str, data: bytes) -> httpx.Response:
        headers = {
            **IETF,
            "Content-Type": "application/partial-upload",
            "Upload-Offset": "0",
            "Upload-Complete": "?1",
        }
        return client.patch(handle, content=data, headers=headers)

    def retry(self, client: httpx.Client, handle: str, data: bytes) -> str:
        def again() -> httpx.Response:
            state = client.head(handle, headers=IETF)
            if state.status_code != 204 or "pixdrop-image" in state.headers:
                return state
            offset = state.headers["upload-offset"]
            headers = {
                **IETF,
                "Content-Type": "application/partial-upload",
                "Upload-Offset": offset,
                "Upload-Complete": "?1",
            }
            return client.patch(handle, content=b"", headers=headers)

        done = until_settled(again)
        assert done.status_code in (201, 204), done.text
        return image_id(done)


class Concat:
    """Three partial tus uploads, then the final upload that joins them (and completes)."""

    def check_received(self, client: httpx.Client, handle: str, data: bytes) -> None:
        for path in handle.split():
            state = until_settled(lambda path=path: client.head(path, headers=TUS))
            assert state.status_code == 200, state.text
            assert state.headers["upload-offset"] == state.headers["upload-length"]

    def prepare(self, client: httpx.Client, data: bytes) -> str:
        third = len(data) // 3
        pieces = [data[:third], data[third : 2 * third], data[2 * third :]]
        paths = []
        for piece in pieces:
            headers = {**TUS, "Upload-Length": str(len(piece)), "Upload-Concat": "partial"}
            path = path_of(client.post("/files", headers=headers))
            sent = Tus().complete(client, path, piece)
            assert sent.status_code == 204, sent.text
            paths.append(path)
        return " ".join(paths)

    def complete(self, client: httpx.Client, handle: str, data: bytes) -> httpx.Response:
        return client.post("/files", headers={**TUS, "Upload-Concat": f"final;{handle}"})

    def retry(self, client: httpx.Client, handle: str, data: bytes) -> str:
        # The client never learnt the final upload's URL: it creates one again (the partial
        # uploads are still there, as the first final never finished with them).
        done = until_settled(lambda: self.complete(client, handle, data))
        assert done.status_code == 201, done.text
        return image_id(done)


def image_id(response: httpx.Response) -> str:
    header = response.headers.get("pixdrop-image")
    assert header, (response.status_code, dict(response.headers))
    return sf_strings(header)["id"]


Way = Native | Tus | Ietf | Concat
WAYS: dict[str, type[Way]] = {"native": Native, "tus": Tus, "ietf": Ietf, "concat": Concat}


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator[Callable[..., ServerProcess]]:
    started: list[ServerProcess] = []

    def start(**env: str) -> ServerProcess:
        server = ServerProcess(tmp_path, tmp_path / "d", database_url, env=env)
        started.append(server)
        server.wait_healthy()
        return server

    yield start
    for server in started:
        server.stop()
        reap(server)


def reap(server: ServerProcess) -> None:
    """Kill what a server that killed itself left in its process group (decoder workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.process.pid, signal.SIGKILL)


def images_of(client: httpx.Client, sha256: str) -> list[str]:
    """Ids of the listed images of these bytes (the database may hold other tests' images)."""
    found, cursor = [], None
    while True:
        page = client.get(
            "/v1/images", params={"limit": 100, **({"cursor": cursor} if cursor else {})}
        )
        assert page.status_code == 200, page.text
        body = page.json()
        found += [image["id"] for image in body["images"] if image["sha256"] == sha256]
        cursor = body["next_cursor"]
        if not cursor:
            return found


async def sweep_everything(database_url: str, data_dir: Path) -> None:
    """Run the sweeper of the server's stores as if every upload had expired long ago."""
    store = open_blob_store(default_blob_store_url(data_dir), scratch=data_dir / "tmp")
    meta = open_metadata_store(database_url)
    leases = open_leases(meta)
    keeper = LeaseKeeper(leases, lock_wait=5.0)
    limits = UploadLimits(
        max_image_size=1 << 30,
        default_chunk_size=1 << 20,
        min_chunk_size=1 << 16,
        max_chunk_size=1 << 26,
        max_chunks=10_000,
        ttl=timedelta(0),
    )
    lifecycle = Lifecycle(
        staging=store.staging,
        meta=meta,
        limits=limits,
        clock=lambda: datetime.now(UTC),
        blobs=store.blobs,
        locks=LeaseLocks(keeper),
    )
    try:
        async with anyio.create_task_group() as tasks:
            await tasks.start(keeper.run)
            while await lifecycle.sweep(now=datetime.now(UTC) + timedelta(days=3)):
                pass
            tasks.cancel_scope.cancel()
    finally:
        await leases.close()
        await meta.close()
        await store.close()


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def crash_at(spawn, step: str, how: Way, data: bytes) -> str:
    """Send *data* the way *how* does, with the server set to die at *step* of completing it;
    return the upload's handle once the server is dead."""
    first = spawn(**{failpoints.VARIABLE: step})
    with httpx.Client(base_url=first.url, timeout=60) as client:
        handle = how.prepare(client, data)
        with pytest.raises(httpx.TransportError):
            how.complete(client, handle, data)
    first.process.wait(timeout=30)
    assert first.process.returncode == -signal.SIGKILL
    reap(first)
    return handle


def check_images(client: httpx.Client, data: bytes) -> list[str]:
    """The images of *data*: every one serves its bytes (no record without its blob)."""
    listed = images_of(client, hashlib.sha256(data).hexdigest())
    for each in listed:
        original = client.get(f"/v1/images/{each}/original")
        assert original.status_code == 200, original.text
        assert original.content == data
    return listed


def check_swept(database_url: str, data_dir: Path, kept: list[str]) -> None:
    """Once every upload expired and was swept: no staging file, and only the blobs *kept*."""
    anyio.run(sweep_everything, database_url, data_dir)
    assert files_under(data_dir / "staging") == []
    assert [blob.name for blob in files_under(data_dir / "blobs")] == kept


def new_image(way: str, step: str) -> bytes:
    """A small PNG of its own (the PostgreSQL database is shared by the session's tests)."""
    return noise_png(200, seed=zlib.crc32(f"{way} {step} {time.time_ns()}".encode()))


#: Steps where the database's answer matters (the blob kept, the image recorded or not).
DATABASE_STEPS = ("completion.kept", "completion.recorded")


def cases(steps: tuple[str, ...]) -> list[object]:
    """(backend, way, step): every way in at every one of *steps*, once each, on SQLite and on
    PostgreSQL in turn (each way meets both backends). The whole matrix on both backends
    took 10 minutes, too long for CI; no step's outcome depends on the backend but through
    the database steps, which each way meets on both."""
    found: list[object] = []
    for index, (way, step) in enumerate((w, s) for w in WAYS for s in steps):
        if index % 2:
            found.append(pytest.param("postgres", way, step, marks=pytest.mark.postgres))
        else:
            found.append(("sqlite", way, step))
    return found


@pytest.mark.parametrize(("backend", "way", "step"), cases(failpoints.STEPS), indirect=["backend"])
def test_sigkill_while_completing_then_retry(
    spawn, database_url: str, tmp_path: Path, way: str, step: str
) -> None:
    data, how = new_image(way, step), WAYS[way]()
    handle = crash_at(spawn, step, how, data)

    second = spawn()
    with httpx.Client(base_url=second.url, timeout=60) as client:
        image = how.retry(client, handle, data)
        listed = check_images(client, data)
        assert image in listed
        if way != "concat":  # a final upload created again may make a second image
            assert listed == [image]
    second.stop()
    check_swept(database_url, tmp_path / "d", [hashlib.sha256(data).hexdigest()])


@pytest.mark.parametrize(("backend", "way", "step"), cases(DATABASE_STEPS), indirect=["backend"])
def test_sigkill_while_completing_then_expiry(
    spawn, database_url: str, tmp_path: Path, way: str, step: str
) -> None:
    """The client never comes back: the upload says it has every byte, and once it expired
    the sweep leaves the blob only if an image names it."""
    data, how = new_image(way, step), WAYS[way]()
    handle = crash_at(spawn, step, how, data)

    second = spawn()
    with httpx.Client(base_url=second.url, timeout=60) as client:
        how.check_received(client, handle, data)
        listed = check_images(client, data)
        assert len(listed) <= 1
    second.stop()
    kept = [hashlib.sha256(data).hexdigest()] if listed else []
    check_swept(database_url, tmp_path / "d", kept)
