"""SIGKILL a real ``pixdrop serve`` after an upload completed and before its events were
delivered (the receiver is down): a restarted server delivers every one of them."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e import ServerProcess, pixdrop_command, pixdrop_env
from tests.http.helpers import free_port, poll, upload_in_chunks
from tests.webhooks.conftest import deliveries
from tests.webhooks.receiver import Receiver, types_for

CHUNK = 64 * 1024
FAST = ["--webhook-retry-base", "0.2", "--webhook-refresh", "0.2", "--webhook-timeout", "2"]


def webhooks_cli(database_url: str, *args: str) -> str:
    """The real ``pixdrop webhooks`` command, in a process of its own."""
    done = subprocess.run(
        pixdrop_command("webhooks", *args, "--database-url", database_url),
        env=pixdrop_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator:
    started: list[ServerProcess] = []

    def start() -> ServerProcess:
        server = ServerProcess(tmp_path, tmp_path / "d", database_url, extra_args=FAST)
        started.append(server)
        server.wait_healthy()
        return server

    yield start
    for server in started:
        server.stop()


def test_sigkill_before_delivery_loses_no_event(spawn, cli, database_url: str, photo_png) -> None:
    port = free_port()  # the receiver will listen here, once the first server is dead
    added = webhooks_cli(
        database_url, "add", f"http://127.0.0.1:{port}/hook", "--events", "*", "--json"
    )
    endpoint = json.loads(added)
    try:
        first = spawn()
        with httpx.Client(base_url=first.url, timeout=30) as client:
            upload, done = upload_in_chunks(client, photo_png, CHUNK)
            assert done.status_code == 201, done.text
        image_id = done.json()["id"]

        def mine() -> list[dict]:
            return deliveries(cli, endpoint)

        # The events are in the outbox and the sender has tried (the receiver is down); the
        # upload's second event waits for its first.
        tried = poll(mine, lambda rows: len(rows) == 3 and any(r["attempts"] for r in rows), 30)
        assert any(r["attempts"] for r in tried), tried
        assert {(r["type"], r["state"]) for r in tried} == {
            ("upload.created", "pending"),
            ("upload.completed", "pending"),
            ("image.created", "pending"),
        }
        first.kill()
        assert first.process.returncode == -9

        receiver = Receiver(port)
        try:
            spawn()
            receiver.wait_for(lambda got: len(got) >= 3, timeout=90)
            receiver.verified(endpoint["secret"])
            got = receiver.events()
            assert types_for(got, upload["id"]) == ["upload.created", "upload.completed"]
            assert types_for(got, image_id) == ["image.created"]
            assert {r.headers["webhook-id"] for r in got} == {r["event_id"] for r in tried}
        finally:
            receiver.stop()
    finally:
        webhooks_cli(database_url, "remove", endpoint["id"])
