"""Decoder processes live only while there are images to decode (``--image-worker-idle``).

A real ``pixdrop serve`` is watched from outside through ``/proc``: at rest it has no child
process; an upload starts a decoder; the decoder exits after the idle time; the next upload
starts one again.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.e2e import ServerProcess

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/task").exists(), reason="reads children from /proc (Linux only)"
)


def children(pid: int) -> list[int]:
    """The child processes of *pid*: its decoders, and nothing else (no helper process such
    as multiprocessing's resource tracker lives beside them)."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def wait_for(condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_decoders_start_with_an_image_and_exit_when_idle(tmp_path: Path, photo_jpeg: bytes):
    server = ServerProcess(
        tmp_path,
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'pixdrop.db'}",
        ["--image-worker-idle", "1", "--no-access-log"],
    )
    try:
        server.wait_healthy()
        pid = server.process.pid
        # The start-up probe's worker is gone once it has answered.
        assert wait_for(lambda: children(pid) == [], 10), children(pid)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            first = client.post("/v1/images", content=photo_jpeg)
            assert first.status_code == 201, first.text
            (decoder,) = children(pid)  # the decoder that checked it, idle now
            assert b"pixdrop.imaging.worker" in Path(f"/proc/{decoder}/cmdline").read_bytes()
            # It loaded libvips and none of the server (FastAPI's pydantic, SQLAlchemy).
            mapped = Path(f"/proc/{decoder}/maps").read_text()
            assert "libvips" in mapped
            assert "pydantic_core" not in mapped
            assert "sqlalchemy" not in mapped
            assert wait_for(lambda: children(pid) == [], 10), children(pid)
            client.delete(f"/v1/images/{first.json()['id']}")
            again = client.post("/v1/images", content=photo_jpeg)
            assert again.status_code == 201, again.text
    finally:
        server.stop()


def test_an_opened_upload_gets_a_decoder_ready(tmp_path: Path) -> None:
    """Opening a chunked upload starts a decoder in the background, so the upload's check
    does not wait for one to start when its last chunk comes."""
    server = ServerProcess(
        tmp_path,
        tmp_path / "data",
        f"sqlite:///{tmp_path / 'pixdrop.db'}",
        ["--image-worker-idle", "30", "--image-workers", "2", "--no-access-log"],
    )
    try:
        server.wait_healthy()
        pid = server.process.pid
        assert wait_for(lambda: children(pid) == [], 10), children(pid)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            for _ in range(3):  # one is enough: a ready decoder is not started again
                opened = client.post("/v1/uploads", json={"size": 10_000})
                assert opened.status_code == 201, opened.text
        assert wait_for(lambda: len(children(pid)) == 1, 10), children(pid)
        time.sleep(0.5)
        assert len(children(pid)) == 1
    finally:
        server.stop()
