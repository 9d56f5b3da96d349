"""SIGKILL in the middle of one large PATCH (tus-js-client and Uppy send a whole file in one):
a restarted server reports the bytes up to the last checkpoint, and they are the bytes sent.

The server runs with a checkpoint every MiB (``--append-checkpoint-bytes 1MiB``, no clock), so
after 5 MiB of an image sent in one PATCH at least 4 MiB are recorded before the kill.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import httpx
import pytest

from pixdrop.metadata import open_metadata_store
from tests.e2e import ServerProcess
from tests.http.helpers import RawRequest, noise_png
from tests.ietf.wire import PARTIAL
from tests.ietf.wire import fetch_image as ietf_fetch
from tests.tus.wire import OCTETS, TUS, fetch_image, new_upload
from tests.tus.wire import offset_of as tus_offset
from tests.tus.wire import patch as tus_patch

MiB = 1024 * 1024
#: A checkpoint every MiB, none by the clock; a PATCH that stalls is not ended meanwhile.
CHECKPOINTS = (
    "--append-checkpoint-bytes", "1MiB",
    "--append-checkpoint-seconds", "0",
    "--idle-timeout", "600",
)  # fmt: skip
SENT = 5 * MiB


@pytest.fixture(scope="module")
def big_png() -> bytes:
    """A PNG of random pixels, about 8.3 MiB: bigger than 8 MiB."""
    data = noise_png(1700, seed=16)
    assert len(data) > 8 * MiB
    return data


Spawn = Callable[..., ServerProcess]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start ``pixdrop serve`` on one data dir (killed or stopped at the end)."""
    started: list[ServerProcess] = []

    def start(database_url: str, *extra: str) -> ServerProcess:
        server = ServerProcess(tmp_path, tmp_path / "d", database_url, [*CHECKPOINTS, *extra])
        started.append(server)
        server.wait_healthy()
        return server

    yield start
    for server in started:
        server.stop()


def recorded(database_url: str, upload_id: str, at_least: int, timeout: float = 30) -> int:
    """The upload's offset as its records say (read beside the server: a HEAD would stop the
    running PATCH), once it is at least *at_least* or after *timeout* seconds."""

    async def watch() -> int:
        store = open_metadata_store(database_url)
        try:
            deadline = time.monotonic() + timeout
            while True:
                end = await store.received_end(upload_id)
                if end >= at_least or time.monotonic() > deadline:
                    return end
                await anyio.sleep(0.05)
        finally:
            await store.close()

    return anyio.run(watch)


def kill_mid_patch(
    server: ServerProcess, database_url: str, path: str, data: bytes, headers: dict[str, str]
) -> int:
    """Send the first ``SENT`` bytes of *data* in one PATCH of all of it, wait until the
    checkpoints are recorded, SIGKILL the server; return the offset recorded before the kill."""
    in_flight = RawRequest(server.url, "PATCH", path, len(data), headers)
    try:
        for start in range(0, SENT, 256 * 1024):
            in_flight.send(data[start : start + 256 * 1024])
        seen = recorded(database_url, path.rsplit("/", 1)[1], SENT - MiB)
        server.kill()
    finally:
        in_flight.close()
    assert server.process.returncode == -9
    assert seen >= SENT - MiB, f"only {seen} bytes recorded while the PATCH was running"
    return seen


def tus_upload(server: ServerProcess, data: bytes) -> str:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        return new_upload(client, len(data))


def resume_with_tus(server: ServerProcess, path: str, data: bytes, seen: int) -> int:
    """After the restart: the offset is at least what was seen and at most what was sent;
    the rest completes the image, byte for byte. Return that offset."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        offset = tus_offset(client, path)
        assert seen <= offset <= SENT
        last = tus_patch(client, path, offset, data[offset:])
        assert last.status_code == 204, last.text
        assert last.headers["upload-offset"] == str(len(data))
        assert fetch_image(client, last.headers["pixdrop-image"]) == data
    return offset


TUS_APPEND = {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"}


def test_sigkill_mid_patch_keeps_the_checkpoints(
    spawn: Spawn, database_url: str, tmp_path: Path, big_png: bytes
) -> None:
    first = spawn(database_url)
    path = tus_upload(first, big_png)
    seen = kill_mid_patch(first, database_url, path, big_png, TUS_APPEND)

    second = spawn(database_url)
    with httpx.Client(base_url=second.url, timeout=10) as client:
        offset = tus_offset(client, path)
    # The offset matches the bytes on disk: the staging file holds what was sent, up to it.
    staged = (tmp_path / "d" / "staging" / path.rsplit("/", 1)[1]).read_bytes()
    assert len(staged) >= offset
    assert hashlib.sha256(staged[:offset]).digest() == hashlib.sha256(big_png[:offset]).digest()
    assert resume_with_tus(second, path, big_png, seen) == offset


@pytest.mark.postgres
@pytest.mark.s3
def test_sigkill_mid_patch_keeps_the_checkpoints_on_s3(
    spawn: Spawn, postgres_url: str, s3_url: str, big_png: bytes
) -> None:
    """On S3 a checkpoint is the parts filled so far plus a tail object: the same promise."""
    bucket_and_prefix, _, query = s3_url.partition("?")
    store = ("--blob-store", f"{bucket_and_prefix}/t-{secrets.token_hex(6)}?{query}")
    first = spawn(postgres_url, *store)
    path = tus_upload(first, big_png)
    seen = kill_mid_patch(first, postgres_url, path, big_png, TUS_APPEND)

    second = spawn(postgres_url, *store)
    resume_with_tus(second, path, big_png, seen)


def ietf_offset(client: httpx.Client, path: str) -> int:
    response = client.head(path, headers=IETF)
    assert response.status_code == 204, (response.status_code, dict(response.headers))
    return int(response.headers["upload-offset"])


IETF = {"Upload-Draft-Interop-Version": "7"}


def test_ietf_append_keeps_its_checkpoints_too(
    spawn: Spawn, database_url: str, big_png: bytes
) -> None:
    first = spawn(database_url)
    with httpx.Client(base_url=first.url, timeout=10) as client:
        creation = {**IETF, "Upload-Complete": "?0", "Upload-Length": str(len(big_png))}
        created = client.post("/files", headers=creation)
        assert created.status_code == 201, created.text
        path = httpx.URL(created.headers["location"]).path
    append = {**IETF, "Content-Type": PARTIAL, "Upload-Complete": "?1"}
    seen = kill_mid_patch(first, database_url, path, big_png, {**append, "Upload-Offset": "0"})

    second = spawn(database_url)
    with httpx.Client(base_url=second.url, timeout=60) as client:
        offset = ietf_offset(client, path)
        assert seen <= offset <= SENT
        rest = client.patch(
            path, content=big_png[offset:], headers={**append, "Upload-Offset": str(offset)}
        )
        assert rest.status_code == 201, rest.text
        assert rest.headers["upload-complete"] == "?1"
        assert ietf_fetch(client, rest.headers["pixdrop-image"])[1] == big_png


def test_checkpoints_by_the_clock(tmp_path: Path, database_url: str, photo_png: bytes) -> None:
    """With ``--append-checkpoint-seconds`` alone, a slow PATCH is recorded as it goes: the
    bytes before a pause are recorded once the next block comes after the deadline."""
    server = ServerProcess(
        tmp_path,
        tmp_path / "d",
        database_url,
        ["--append-checkpoint-bytes", "0", "--append-checkpoint-seconds", "0.2"],
    )
    try:
        server.wait_healthy()
        path = tus_upload(server, photo_png)
        half = len(photo_png) // 2
        slow = RawRequest(server.url, "PATCH", path, len(photo_png), TUS_APPEND)
        upload_id, sent, seen = path.rsplit("/", 1)[1], half, 0
        try:
            slow.send(photo_png[:half])
            while not seen and sent < half + 20:
                time.sleep(0.5)  # past the deadline: the next block closes the part
                slow.send(photo_png[sent : sent + 1])
                sent += 1
                seen = recorded(database_url, upload_id, 1, timeout=2)
            assert half < seen <= sent, f"{seen} of {sent} bytes recorded while it was running"
            slow.send(photo_png[sent:])
            slow.finish()
            assert slow.response(timeout=60).status == 204
        finally:
            slow.close()
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert tus_offset(client, path) == len(photo_png)
    finally:
        server.stop()
