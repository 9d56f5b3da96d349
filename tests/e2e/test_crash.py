"""Kill -9 in the middle of a chunked upload; a restarted server knows exactly what it acked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import ServerProcess
from tests.http.helpers import (
    RawRequest,
    create_upload,
    get_upload,
    put_chunk,
    send_chunks,
    sha256_hex,
    split_chunks,
)

CHUNK = 64 * 1024  # the default minimum: photo_png makes 4 chunks


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator:
    """Start ``pixdrop serve`` on *database_url* and one data dir; stop them all at the end."""
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        server = ServerProcess(tmp_path, tmp_path / "d", database_url)
        started.append(server)
        server.wait_healthy()
        return server

    yield start
    for server in started:
        server.stop()


def put_until_not_busy(client: httpx.Client, upload_id: str, index: int, data: bytes) -> int:
    deadline = time.monotonic() + 5
    while True:
        response = put_chunk(client, upload_id, index, data)
        busy = response.status_code == 409 and response.json()["type"].endswith("/chunk-busy")
        if not busy or time.monotonic() > deadline:
            return response.status_code
        time.sleep(0.2)


def test_sigkill_mid_chunk_then_resume(spawn, photo_png) -> None:
    chunks = split_chunks(photo_png, CHUNK)
    assert len(chunks) == 4

    first = spawn()
    with httpx.Client(base_url=first.url, timeout=10) as client:
        upload = create_upload(client, len(photo_png), chunk_size=CHUNK)
        uid = upload["id"]
        send_chunks(client, uid, chunks, [0, 2])

    in_flight = RawRequest(
        first.url,
        "PUT",
        f"/v1/uploads/{uid}/chunks/1",
        CHUNK,
        {"Content-Type": "application/octet-stream"},
    )
    try:
        in_flight.send(chunks[1][: CHUNK // 2])
        time.sleep(0.3)
        first.kill()
    finally:
        in_flight.close()
    assert first.process.returncode == -9

    second = spawn()
    with httpx.Client(base_url=second.url, timeout=10) as client:
        state = get_upload(client, uid)
        assert state["state"] == "receiving"
        assert (state["received"], state["missing"]) == ([0, 2], [1, 3])

        again = put_chunk(client, uid, 0, chunks[0])  # acked before the crash: identical
        assert again.status_code == 200, again.text

        assert put_until_not_busy(client, uid, 1, chunks[1]) == 201
        assert put_until_not_busy(client, uid, 3, chunks[3]) == 201
        done = client.post(f"/v1/uploads/{uid}/complete")
        assert done.status_code == 201, done.text
        image = done.json()
        assert image["sha256"] == sha256_hex(photo_png)
        served = client.get(f"/v1/images/{image['id']}/original")
        assert served.status_code == 200
        assert served.content == photo_png
