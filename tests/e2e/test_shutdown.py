"""Stopping ``pixdrop serve`` (a real subprocess) while an upload is half-way.

SIGTERM (or Ctrl-C) stops accepting, lets requests run until ``--shutdown-timeout``, then ends
resumable appends where they are: the bytes they received are kept and recorded, one log line
per request cut, exit status 0, no traceback. A second signal exits at once, still without a
traceback, and what was acknowledged stays intact.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import h11
import httpx
import pytest

from tests.e2e import ServerProcess
from tests.http.helpers import RawRequest, poll
from tests.tus.wire import OCTETS, TUS, new_upload, offset_of, patch


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator:
    """Start ``pixdrop serve`` on *database_url* and one data dir; stop them all at the end."""
    started: list[ServerProcess] = []

    def start(*args: str) -> ServerProcess:
        server = ServerProcess(tmp_path, tmp_path / "d", database_url, ["--no-access-log", *args])
        started.append(server)
        server.wait_healthy()
        return server

    yield start
    for server in started:
        server.stop()


def start_hung_patch(
    server: ServerProcess, client: httpx.Client, data: bytes
) -> tuple[str, RawRequest]:
    """A new tus upload of *data*, and a PATCH to it that sends half and then nothing.

    The PATCH asks ``Expect: 100-continue`` and sends its half once the server said so: the
    request then runs and reads its body (a signal sent earlier could find it still in the
    listener's queue, and close it unseen)."""
    path = new_upload(client, len(data))
    headers = {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0", "Expect": "100-continue"}
    hung = RawRequest(server.url, "PATCH", path, len(data), headers)
    while not isinstance(event := hung.conn.next_event(), h11.InformationalResponse):
        assert event is h11.NEED_DATA, event
        hung.conn.receive_data(hung.sock.recv(65536))
    hung.send(data[: len(data) // 2])
    return path, hung


def wait_exit(server: ServerProcess, timeout: float = 60) -> int:
    try:
        return server.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.kill()
        raise AssertionError(f"the server did not exit:\n{server.stderr()[-3000:]}") from None


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_shutdown_ends_a_hung_append_keeping_its_bytes(spawn, photo_png, stop_signal) -> None:
    server = spawn("--shutdown-timeout", "1", "--idle-timeout", "600")
    half = len(photo_png) // 2
    with httpx.Client(base_url=server.url, timeout=10) as client:
        path, hung = start_hung_patch(server, client, photo_png)
        try:
            os.kill(server.process.pid, stop_signal)
            reply = hung.response(timeout=30)  # the append is answered: its bytes are kept
            assert reply.status == 204, reply
            assert reply.headers["upload-offset"] == str(half)
        finally:
            hung.close()
    assert wait_exit(server) == 0
    log = server.stderr()
    assert "Traceback" not in log, log
    cut = [line for line in log.splitlines() if "shutdown:" in line]
    assert len(cut) == 1, log
    assert f"PATCH {path}" in cut[0], log

    again = spawn()
    with httpx.Client(base_url=again.url, timeout=10) as client:
        assert offset_of(client, path) == half
        last = patch(client, path, half, photo_png[half:])
        assert last.status_code == 204, last.text


def test_shutdown_waits_for_requests_that_finish_in_time(spawn, photo_png) -> None:
    """Within the deadline nothing is cut: the upload finishes and is answered."""
    server = spawn("--shutdown-timeout", "600")
    half = len(photo_png) // 2
    with httpx.Client(base_url=server.url, timeout=10) as client:
        _, hung = start_hung_patch(server, client, photo_png)
        try:
            os.kill(server.process.pid, signal.SIGTERM)
            hung.send(photo_png[half:])
            reply = hung.response(timeout=30)
        finally:
            hung.close()
    assert reply.status == 204, reply
    assert "pixdrop-image" in reply.headers, reply
    assert wait_exit(server) == 0
    log = server.stderr()
    assert "Traceback" not in log, log
    assert "shutdown:" not in log, log


def test_a_second_signal_exits_at_once_without_a_traceback(spawn, photo_png) -> None:
    server = spawn("--shutdown-timeout", "600", "--idle-timeout", "600")
    with httpx.Client(base_url=server.url, timeout=10) as client:
        path, hung = start_hung_patch(server, client, photo_png)
        try:
            os.kill(server.process.pid, signal.SIGINT)
            # The first signal is being handled once the listener is gone.
            poll(lambda: _refused(server.url), bool, timeout=30)
            os.kill(server.process.pid, signal.SIGINT)
            assert wait_exit(server, timeout=30) == 0
        finally:
            hung.close()
    log = server.stderr()
    assert "Traceback" not in log, log
    assert f"PATCH {path}" in log, log  # its one line

    again = spawn()
    half = len(photo_png) // 2
    with httpx.Client(base_url=again.url, timeout=10) as client:
        assert offset_of(client, path) == half  # the append recorded what had arrived
        last = patch(client, path, half, photo_png[half:])
        assert last.status_code == 204, last.text


def _refused(url: str) -> bool:
    try:
        httpx.get(url + "/healthz", timeout=2)
    except httpx.TransportError:
        return True
    return False
