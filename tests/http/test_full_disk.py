"""A full disk answers 507 insufficient-storage, loses nothing acknowledged before, and the
server recovers by itself once space returns (issue 16).

The server's data directory (and, on SQLite, its database) lies on a real 8 MiB tmpfs that
the test fills with a file; freeing that file is "space returns". Mounting needs root (or
CAP_SYS_ADMIN): where it is not permitted the tests skip, saying so.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy.exc import OperationalError

from pixdrop.http.errors import is_disk_full
from tests.conftest import LiveServer, ServerFactory
from tests.http.helpers import assert_problem, noise_png
from tests.tus.wire import create as tus_create
from tests.tus.wire import fetch_image, head, location_path, offset_of, patch

pytestmark = pytest.mark.local_disk

KiB = 1024
MiB = 1024 * KiB
#: 1.2 MB of incompressible pixels, in chunks of 256 KiB.
IMAGE = noise_png(640, seed=16)
CHUNK = 256 * KiB


@dataclass
class SmallDisk:
    """A mounted 8 MiB tmpfs, and a filler file that takes all its free space."""

    root: Path

    @property
    def filler(self) -> Path:
        return self.root / "filler"

    def fill(self) -> None:
        """Write the filler until the file system refuses one byte more."""
        block = b"\xa5" * (64 * KiB)
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for size in (len(block), 4 * KiB, 1):
                while True:
                    try:
                        os.write(fd, block[:size])
                    except OSError as exc:
                        if exc.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink()


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    root = tmp_path / "disk"
    root.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(root)]
    try:
        subprocess.run(mount, check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        said = getattr(exc, "stderr", None) or exc
        pytest.skip(f"cannot mount an 8 MiB tmpfs here (needs root or CAP_SYS_ADMIN): {said}")
    try:
        yield SmallDisk(root)
    finally:
        subprocess.run(["umount", "--lazy", str(root)], check=False, capture_output=True)


@pytest.fixture
def server(server_factory: ServerFactory, backend: str, disk: SmallDisk) -> LiveServer:
    on_disk = {"database_url": f"sqlite:///{disk.root / 'pixdrop.db'}"}
    return server_factory(
        data_dir=disk.root / "data",
        default_chunk_size=CHUNK,
        min_chunk_size=CHUNK,
        **(on_disk if backend == "sqlite" else {}),
    )


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def assert_full(response: httpx.Response) -> None:
    assert_problem(response, 507, "insufficient-storage")
    assert response.headers["retry-after"] == "60"


def test_one_request_upload(client: httpx.Client, disk: SmallDisk) -> None:
    disk.fill()
    assert_full(client.post("/v1/images", content=IMAGE))

    disk.free()
    response = client.post("/v1/images", content=IMAGE)
    assert response.status_code == 201, response.text
    assert client.get(response.json()["url"]).content == IMAGE


def test_chunk_put_keeps_the_chunks_before(client: httpx.Client, disk: SmallDisk) -> None:
    chunks = [IMAGE[i : i + CHUNK] for i in range(0, len(IMAGE), CHUNK)]
    uid = client.post("/v1/uploads", json={"size": len(IMAGE)}).json()["id"]
    for index in (0, 1):
        assert client.put(f"/v1/uploads/{uid}/chunks/{index}", content=chunks[index]).is_success
    disk.fill()

    assert_full(client.put(f"/v1/uploads/{uid}/chunks/2", content=chunks[2]))

    disk.free()
    assert client.get(f"/v1/uploads/{uid}").json()["received"] == [0, 1]
    for index in range(2, len(chunks)):
        sent = client.put(f"/v1/uploads/{uid}/chunks/{index}", content=chunks[index])
        assert sent.is_success, sent.text
    done = client.post(f"/v1/uploads/{uid}/complete")
    assert done.status_code == 201, done.text
    assert client.get(done.json()["url"]).content == IMAGE


def test_tus_patch_keeps_the_offset_before(client: httpx.Client, disk: SmallDisk) -> None:
    path = location_path(tus_create(client, len(IMAGE)))
    half = len(IMAGE) // 2
    assert patch(client, path, 0, IMAGE[:half]).status_code == 204
    disk.fill()

    assert_full(patch(client, path, half, IMAGE[half:]))
    assert offset_of(client, path) == half

    disk.free()
    done = patch(client, path, half, IMAGE[half:])
    assert done.status_code == 204, done.text
    assert fetch_image(client, done.headers["pixdrop-image"]) == IMAGE
    assert head(client, path).headers["upload-offset"] == str(len(IMAGE))


def test_a_full_database_is_507_and_recovers(
    server_factory: ServerFactory, backend: str, disk: SmallDisk, tmp_path: Path
) -> None:
    if backend != "sqlite":
        pytest.skip("the database on the small disk is SQLite's file")
    server = server_factory(
        data_dir=tmp_path / "roomy",  # the bytes have room; the records do not
        database_url=f"sqlite:///{disk.root / 'pixdrop.db'}",
        default_chunk_size=CHUNK,
        min_chunk_size=CHUNK,
    )
    chunks = [IMAGE[i : i + CHUNK] for i in range(0, len(IMAGE), CHUNK)]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        uid = client.post("/v1/uploads", json={"size": len(IMAGE)}).json()["id"]
        assert client.put(f"/v1/uploads/{uid}/chunks/0", content=chunks[0]).is_success
        disk.fill()

        assert_full(client.put(f"/v1/uploads/{uid}/chunks/1", content=chunks[1]))

        disk.free()
        assert client.get(f"/v1/uploads/{uid}").json()["received"] == [0]
        for index in range(1, len(chunks)):
            sent = client.put(f"/v1/uploads/{uid}/chunks/{index}", content=chunks[index])
            assert sent.is_success, sent.text
        done = client.post(f"/v1/uploads/{uid}/complete")
        assert done.status_code == 201, done.text
        assert client.get(done.json()["url"]).content == IMAGE


def test_postgresqls_disk_full_is_recognised() -> None:
    """PostgreSQL's disk cannot be filled from here; its error, as psycopg raises it and
    SQLAlchemy wraps it, is what the 507 mapping looks for (SQLSTATE 53100)."""
    full = psycopg.errors.DiskFull("could not extend file: No space left on device")
    assert is_disk_full(OperationalError("INSERT INTO parts ...", {}, full))
    other = psycopg.errors.UndefinedTable("relation does not exist")
    assert not is_disk_full(OperationalError("SELECT ...", {}, other))
