"""The server's memory does not grow with the image: 512 MiB through a server that stays small.

What this proves: both upload paths stream. The real server (``python -m pixdrop serve`` in a
subprocess, metadata in its default SQLite file) takes a 512 MiB image in one request, and
again as 64 chunks of 8 MiB sent two at a time. Its resident memory (VmRSS, read from
``/proc`` every 20 ms) never rises more than 96 MiB above idle, a small fraction of the
payload, so neither path holds the image in memory. The stored sha256 and blob size must be
the payload's, so every byte did arrive. The test process streams from a file as well, so it
never holds the payload either. The server decodes the image to check it, in a separate
worker process (``pixdrop.imaging.pool``) that streams the pixels; that process is not measured.

There is no timing assertion: a slow machine makes this slower, not red. Linux only.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import struct
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import pytest

from tests.e2e import ServerProcess
from tests.http.helpers import data_files

MiB = 1024 * 1024
PAYLOAD_SIZE = 512 * MiB
CHUNK_SIZE = 8 * MiB
PARALLEL = 2
#: Far below the payload: a path that buffered the image, or many chunks, would cross it.
MAX_GROWTH = 96 * MiB
BODY_BLOCK = MiB
#: A small real image, to warm the server up.
SAMPLE_PNG = Path(__file__).parents[1] / "data" / "chelsea.png"
#: The payload's width: 8192 x ~10900 16-bit RGB pixels, 89 megapixels (under max_pixels).
PNG_WIDTH = 8192

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc (Linux only)"
)


def read_rss(pid: int) -> int:
    """VmRSS of *pid* in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


class PeakRss:
    """The highest VmRSS of *pid* while the ``with`` block runs (sampled every 20 ms)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, read_rss(self.pid))

    def __enter__(self) -> PeakRss:
        self.peak = read_rss(self.pid)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.peak = max(self.peak, read_rss(self.pid))


@dataclass(frozen=True)
class Payload:
    path: Path
    size: int
    sha256: str

    def blocks(self) -> Iterator[bytes]:
        with self.path.open("rb") as source:
            while block := source.read(BODY_BLOCK):
                yield block


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("memory")


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_png(out: BinaryIO, size: int) -> str:
    """Write a real PNG of exactly *size* bytes to *out*; return its sha256.

    16-bit RGB noise (seeded: the same bytes every run), deflated with level 0 (stored
    blocks) so that it stays as big as its pixels, then a private ancillary chunk (which
    decoders skip) pads it to the byte.
    """
    rng = random.Random(20240611)
    hasher = hashlib.sha256()
    written = 0

    def emit(data: bytes) -> None:
        nonlocal written
        hasher.update(data)
        out.write(data)
        written += len(data)

    width, row = PNG_WIDTH, 1 + PNG_WIDTH * 6  # filter byte + 3 samples of 2 bytes per pixel
    height = (size - 1024) * 65535 // 65540 // row  # leave room for headers and block framing
    emit(
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0))
    )
    deflate = zlib.compressobj(0)
    rows_per_block = max(1, CHUNK_SIZE // row)
    for first in range(0, height, rows_per_block):
        rows = min(rows_per_block, height - first)
        raw = b"".join(b"\x00" + rng.randbytes(row - 1) for _ in range(rows))
        emit(png_chunk(b"IDAT", deflate.compress(raw)))
    emit(png_chunk(b"IDAT", deflate.flush()))
    pad = size - written - 12 - 12  # this chunk's framing, then IEND's
    emit(png_chunk(b"pdAd", bytes(pad)))
    emit(png_chunk(b"IEND", b""))
    assert written == size
    return hasher.hexdigest()


@pytest.fixture(scope="module")
def payload(workdir: Path) -> Iterator[Payload]:
    """512 MiB on disk, a real PNG (the server decodes it); removed after the module."""
    path = workdir / "payload.png"
    try:
        with path.open("wb") as out:
            digest = write_png(out, PAYLOAD_SIZE)
        yield Payload(path, PAYLOAD_SIZE, digest)
    finally:
        path.unlink(missing_ok=True)  # pytest keeps old temp dirs: leave no 512 MiB in them


@pytest.fixture(scope="module")
def data_dir(workdir: Path) -> Path:
    return workdir / "data"


@pytest.fixture(scope="module")
def server(workdir: Path, data_dir: Path) -> Iterator[ServerProcess]:
    """One server for the module, warmed up by one small upload; its data is removed after."""
    process = ServerProcess(
        workdir,
        data_dir,
        f"sqlite:///{data_dir / 'pixdrop.db'}",  # what the server picks when not told
        ["--no-access-log", "--max-request-size", "1GiB"],
    )
    try:
        process.wait_healthy()
        with httpx.Client(base_url=process.url, timeout=30) as client:
            warm = client.post("/v1/images", content=SAMPLE_PNG.read_bytes())
            assert warm.status_code == 201, warm.text
            delete_image(client, warm.json())
        yield process
    finally:
        process.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def delete_image(client: httpx.Client, image: dict[str, Any]) -> None:
    response = client.delete(
        f"/v1/images/{image['id']}", headers={"Authorization": f"Bearer {image['delete_token']}"}
    )
    assert response.status_code == 204, response.text


def check_stored(data_dir: Path, image: dict[str, Any], payload: Payload) -> None:
    """Same sha256 and size as the payload, and the blob on disk has every byte."""
    assert image["sha256"] == payload.sha256
    assert image["size"] == payload.size
    sha = image["sha256"]
    blob = data_dir / "blobs" / sha[:2] / sha[2:4] / sha
    assert blob.stat().st_size == payload.size


def check_growth(peak: int, idle: int, what: str) -> None:
    assert peak - idle < MAX_GROWTH, (
        f"{what}: server RSS rose {(peak - idle) / MiB:.0f} MiB above idle "
        f"({idle / MiB:.0f} -> {peak / MiB:.0f} MiB) for a {PAYLOAD_SIZE // MiB} MiB upload"
    )


def check_cleaned(data_dir: Path) -> None:
    """After the delete, neither a blob nor a staging file is left in the data directory."""
    assert data_files(data_dir / "blobs") == []
    assert data_files(data_dir / "staging") == []


def test_one_request_upload_memory_stays_flat(
    server: ServerProcess, data_dir: Path, payload: Payload
) -> None:
    idle = read_rss(server.process.pid)
    with (
        httpx.Client(base_url=server.url, timeout=120) as client,
        PeakRss(server.process.pid) as rss,
    ):
        response = client.post(
            "/v1/images",
            content=payload.blocks(),
            # A declared length, so httpx streams the generator without chunked encoding.
            headers={"Content-Length": str(payload.size)},
        )
    assert response.status_code == 201, response.text
    image = response.json()
    check_stored(data_dir, image, payload)
    check_growth(rss.peak, idle, "one-request upload")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        delete_image(client, image)
    check_cleaned(data_dir)


def send_chunks(base_url: str, upload_id: str, payload: Payload, indices: range) -> None:
    """PUT the chunks at *indices*, read one at a time from the payload file."""
    fd = os.open(payload.path, os.O_RDONLY)
    try:
        with httpx.Client(base_url=base_url, timeout=120) as client:
            for index in indices:
                data = os.pread(fd, CHUNK_SIZE, index * CHUNK_SIZE)
                response = client.put(f"/v1/uploads/{upload_id}/chunks/{index}", content=data)
                assert response.status_code == 201, (index, response.text)
    finally:
        os.close(fd)


def test_chunked_upload_memory_stays_flat(
    server: ServerProcess, data_dir: Path, payload: Payload
) -> None:
    idle = read_rss(server.process.pid)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        spec = {"size": payload.size, "chunk_size": CHUNK_SIZE, "sha256": payload.sha256}
        created = client.post("/v1/uploads", json=spec)
        assert created.status_code == 201, created.text
        upload = created.json()
        count = upload["chunk_count"]
        assert count == PAYLOAD_SIZE // CHUNK_SIZE
        with PeakRss(server.process.pid) as rss:
            # Thread k sends chunks k, k + PARALLEL, ...: two requests in flight at a time.
            with ThreadPoolExecutor(PARALLEL) as pool:
                futures = [
                    pool.submit(
                        send_chunks, server.url, upload["id"], payload, range(k, count, PARALLEL)
                    )
                    for k in range(PARALLEL)
                ]
                for future in futures:
                    future.result()
            response = client.post(f"/v1/uploads/{upload['id']}/complete")
        assert response.status_code == 201, response.text
        image = response.json()
        check_stored(data_dir, image, payload)
        check_growth(rss.peak, idle, "chunked upload")
        delete_image(client, image)
    check_cleaned(data_dir)
