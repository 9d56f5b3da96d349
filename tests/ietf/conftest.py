"""The tests that watch for ``104 (Upload Resumption Supported)`` on the wire need a server on
pixdrop's own HTTP/1.1 protocol class (``pixdrop.http.h1``): ``tests.conftest.start_server``
serves every test app with it (``pixdrop.http.app.uvicorn_options``), as ``pixdrop serve``
does."""

from __future__ import annotations

import pytest

from tests.conftest import LiveServer


@pytest.fixture
def h1_server(server: LiveServer) -> LiveServer:
    """The usual test server, named for what these tests rely on."""
    return server
