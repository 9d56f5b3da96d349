"""A server speaking HTTP/1.1 through ``pixdrop.http.h1``, the protocol that can send a 104.

``tests.conftest.start_server`` lets uvicorn pick its own protocol class, which has no way to
send an interim response; the tests that watch for ``104 (Upload Resumption Supported)`` on
the wire start theirs here. They are skipped where ``pixdrop.http.h1`` cannot be imported.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from pixdrop.config import Settings
from pixdrop.http.app import create_app
from tests.conftest import LiveServer


@pytest.fixture
def h1_server(tmp_path: Path, database_url: str) -> Iterator[LiveServer]:
    """A pixdrop server on uvicorn with ``pixdrop.http.h1``'s protocol class."""
    try:
        from pixdrop.http.h1 import http_protocol_class
    except ImportError as exc:
        pytest.skip(f"pixdrop.http.h1 is not importable ({exc}): no server here can send a 104")
    settings = Settings(data_dir=tmp_path / "data", database_url=database_url, access_log=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        create_app(settings),
        http=http_protocol_class(),
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    live = LiveServer(f"http://127.0.0.1:{sock.getsockname()[1]}", settings, server, thread)
    yield live
    live.stop()
