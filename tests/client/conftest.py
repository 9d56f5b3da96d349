"""Fixtures of the client tests: a server that logs every request, test images of any size.

Chunk requests are counted on the server's side, from its access log: the in-thread server's
``pixdrop.access`` log records are collected by ``AccessLog``; a ``ServerProcess``'s stderr
is parsed by ``parse_access_lines``.
"""

from __future__ import annotations

import io
import logging
import random
import re
import time
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image as PILImage

from pixdrop.client import RetryPolicy
from tests.conftest import LiveServer, ServerFactory

#: The smallest chunk the test servers take: small chunks, little data, many requests.
CHUNK = 16 * 1024
#: Retries without the production waits (still exponential, still jittered).
FAST_RETRY = RetryPolicy(attempts=10, backoff=0.01, max_backoff=0.1, max_retry_after=0.2)
_LINE = re.compile(r"\b(GET|PUT|POST|DELETE|HEAD)\s+(/\S*)\s+(\d{3})\b")


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    status: int


def parse_access_lines(text: str) -> list[Hit]:
    return [Hit(m[1], m[2], int(m[3])) for m in map(_LINE.search, text.splitlines()) if m]


def chunk_puts(
    hits: list[Hit], upload_id: str | None = None, statuses: Container[int] | None = None
) -> list[int]:
    """Indices of the chunk PUTs among *hits*: of one upload, with given statuses if asked."""
    pattern = re.compile(r"^/v1/uploads/([^/]+)/chunks/(\d+)$")
    found = []
    for hit in hits:
        match = pattern.match(hit.path)
        if hit.method != "PUT" or not match or upload_id not in (None, match[1]):
            continue
        if statuses is None or hit.status in statuses:
            found.append(int(match[2]))
    return found


def assert_sent_only(hits: list[Hit], expected: list[int] | tuple[int, ...]) -> None:
    """Exactly the chunks *expected* were stored, once each; nothing else was sent.

    A chunk may be PUT more than once only after a ``409 chunk-busy`` (the killed run's
    request still held it) or a failed request; only one PUT of it stores it.
    """
    stored = chunk_puts(hits, statuses={200, 201})
    assert sorted(stored) == sorted(expected), (sorted(stored), sorted(expected))
    assert set(chunk_puts(hits)) == set(expected)


def count(hits: list[Hit], method: str, path: str) -> int:
    return sum(1 for h in hits if h.method == method and h.path == path)


class AccessLog(logging.Handler):
    """Collects the in-thread server's access-log records."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.hits: list[Hit] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.hits.extend(parse_access_lines(record.getMessage()))

    def mark(self) -> int:
        return len(self.hits)

    def since(self, mark: int) -> list[Hit]:
        return self.hits[mark:]

    def settle(self) -> int:
        """Wait until no request has ended for a while; return ``mark()`` (see ``wait_quiet``)."""
        return wait_quiet(self.mark)


def wait_quiet(lines: Callable[[], int], quiet: float = 0.3, timeout: float = 10.0) -> int:
    """Wait until the server's log (*lines* counts it) has not grown for *quiet* seconds.

    An interrupted client may leave requests the server is still finishing (a chunk whose
    body had fully arrived is stored after the client gave up on it); a count taken before
    they end would be wrong.
    """
    deadline = time.monotonic() + timeout
    seen = lines()
    while time.monotonic() < deadline:
        time.sleep(quiet)
        if lines() == seen:
            break
        seen = lines()
    return seen


@pytest.fixture
def access_log() -> Iterator[AccessLog]:
    logger = logging.getLogger("pixdrop.access")
    handler, level = AccessLog(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def chunk_server(server_factory: ServerFactory, access_log: AccessLog) -> LiveServer:
    """A server taking 16 KiB chunks that logs every request into ``access_log``."""
    return server_factory(min_chunk_size=CHUNK, access_log=True)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "client-state"


def fake_png(size: int, seed: int = 0) -> bytes:
    """A real PNG of about *size* bytes (never less) whose pixels are noise chosen by *seed*.

    Stored uncompressed, so the size follows from the dimensions: equal sizes and different
    seeds give files of the same length and different bytes.
    """
    width = 256
    height = max(1, -(-size // (3 * width + 1)))
    pixels = random.Random(seed).randbytes(3 * width * height)
    out = io.BytesIO()
    PILImage.frombytes("RGB", (width, height), pixels).save(out, "PNG", compress_level=0)
    return out.getvalue()


def write_png(path: Path, size: int, seed: int = 0) -> bytes:
    data = fake_png(size, seed)
    path.write_bytes(data)
    return data
