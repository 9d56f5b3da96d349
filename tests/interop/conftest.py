"""Fixtures of the interop tests: a real image of several chunks, a byte-counting relay.

Real tus clients (tuspy, tus-js-client) talk to a live pixdrop server (``server`` from
tests/conftest.py) through real sockets; nothing here reaches into the app.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image as PILImage

from tests.conftest import DATA, LiveServer
from tests.interop.relay import Relay


@pytest.fixture(scope="session")
def big_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real PNG of about 2.5 MiB (a photo, scaled up, with fixed noise so it stays big)."""
    photo = PILImage.open(DATA / "rocket.jpg").convert("RGB").resize((1440, 960))
    noise = random.Random(20240601).randbytes(photo.width * photo.height * 3)
    image = PILImage.blend(photo, PILImage.frombytes("RGB", photo.size, noise), 0.08)
    out = io.BytesIO()
    image.save(out, format="PNG")
    path = tmp_path_factory.mktemp("interop") / "rocket-big.png"
    path.write_bytes(out.getvalue())
    assert 2 * 1024 * 1024 < path.stat().st_size < 4 * 1024 * 1024
    return path


@pytest.fixture
def relay(server: LiveServer) -> Iterator[Relay]:
    """A counting (and, on demand, cutting) TCP relay in front of ``server``."""
    with Relay(server.url) as proxy:
        yield proxy
