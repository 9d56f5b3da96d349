"""``pixdrop store migrate``: the real command in a subprocess, on images uploaded through a
real server (SQLite, local disk) that keeps serving meanwhile; local → S3 (SeaweedFS) → local,
then servers on the new stores give the same bytes. Resumable (a second run copies nothing, an
interrupted one is finished by running it again), and a corrupted source blob is reported and
never kept."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, ServerFactory
from tests.e2e import pixdrop_command, pixdrop_env
from tests.http.helpers import post_image, sha256_hex, tiny_image


@pytest.fixture
def backend() -> str:
    """The images are uploaded on SQLite and local disk; the S3 store is the target."""
    return "sqlite"


def migrate(
    server: LiveServer, source: str, target: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pixdrop_command(
            "store",
            "migrate",
            "--from",
            source,
            "--to",
            target,
            "--data-dir",
            str(server.settings.data_dir),
            "--database-url",
            str(server.settings.database_url),
            *extra,
        ),
        capture_output=True,
        text=True,
        timeout=120,
        env=pixdrop_env(),
        stdin=subprocess.DEVNULL,
        check=False,
    )


def upload_some(server: LiveServer, photo_png: bytes, photo_jpeg: bytes) -> list[dict[str, Any]]:
    """Four images, three blobs (one is uploaded twice)."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        images = [post_image(client, data) for data in (photo_png, photo_jpeg, tiny_image())]
        images.append(post_image(client, photo_png))
        return images


def blob_path(root: Path, sha256: str) -> Path:
    return root / "blobs" / sha256[:2] / sha256[2:4] / sha256


def assert_serves(server: LiveServer, images: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for image in images:
            answer = client.get(f"/v1/images/{image['id']}/original")
            assert answer.status_code == 200, answer.text
            assert sha256_hex(answer.content) == image["sha256"]


def summary(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.s3
def test_local_to_s3_and_back(
    server_factory: ServerFactory,
    s3_url: str,
    tmp_path: Path,
    photo_png: bytes,
    photo_jpeg: bytes,
) -> None:
    server = server_factory()  # keeps serving from the old store throughout
    images = upload_some(server, photo_png, photo_jpeg)
    old = server.settings.data_dir.resolve().as_uri()
    bucket, _, query = s3_url.partition("?")
    s3 = f"{bucket}/migrated?{query}"

    first = migrate(server, old, s3)
    assert first.returncode == 0, first.stderr
    assert "copied 3 blob(s)" in summary(first)
    assert ", 0 already in the target, 0 failed" in summary(first)
    again = migrate(server, old, s3)
    assert again.returncode == 0, again.stderr
    assert "copied 0 blob(s) (0 B), 3 already in the target, 0 failed" in summary(again)
    assert_serves(server, images)  # the old store is untouched
    assert_serves(server_factory(blob_store=s3), images)

    back = tmp_path / "back"
    home = migrate(server, s3, back.as_uri())
    assert home.returncode == 0, home.stderr
    assert "copied 3 blob(s)" in summary(home)
    for image in images:
        assert (
            blob_path(back, image["sha256"]).read_bytes()
            == blob_path(server.settings.data_dir, image["sha256"]).read_bytes()
        )
    assert_serves(server_factory(blob_store=back.as_uri()), images)


def test_resumes_what_an_interrupted_or_broken_run_left(
    server_factory: ServerFactory, tmp_path: Path, photo_png: bytes, photo_jpeg: bytes
) -> None:
    server = server_factory()
    images = upload_some(server, photo_png, photo_jpeg)
    old = server.settings.data_dir.resolve().as_uri()
    new = tmp_path / "new"

    # Interrupted with Ctrl-C at some point (when exactly does not matter): run again.
    process = subprocess.Popen(
        pixdrop_command(
            "store",
            "migrate",
            "--from",
            old,
            "--to",
            new.as_uri(),
            "--jobs",
            "1",
            "--database-url",
            str(server.settings.database_url),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=pixdrop_env(),
    )
    # Once the target store is opened (the command is past its start-up), Ctrl-C.
    deadline = time.monotonic() + 30
    while not new.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode in (0, 130), err
    if process.returncode == 130:
        assert "run the same command again to resume" in err

    resumed = migrate(server, old, new.as_uri())
    assert resumed.returncode == 0, resumed.stderr
    assert ", 0 failed" in summary(resumed)
    done = migrate(server, old, new.as_uri())
    assert "copied 0 blob(s) (0 B), 3 already in the target" in summary(done)

    # A blob lost in the target, another cut short: only those two are copied again.
    lost, cut = images[0]["sha256"], images[1]["sha256"]
    blob_path(new, lost).unlink()
    cut_path = blob_path(new, cut)
    cut_path.chmod(0o644)
    with cut_path.open("r+b") as f:
        f.truncate(100)
    repaired = migrate(server, old, new.as_uri())
    assert repaired.returncode == 0, repaired.stderr
    assert "copied 2 blob(s)" in summary(repaired)
    assert "1 already in the target, 0 failed" in summary(repaired)
    assert_serves(server_factory(blob_store=new.as_uri()), images)


def test_a_corrupted_source_blob_is_reported_and_not_kept(
    server_factory: ServerFactory, tmp_path: Path, photo_png: bytes, photo_jpeg: bytes
) -> None:
    server = server_factory()
    images = upload_some(server, photo_png, photo_jpeg)
    bad = images[1]["sha256"]
    path = blob_path(server.settings.data_dir, bad)
    path.chmod(0o644)
    with path.open("r+b") as f:  # one byte flipped, same size: only the hash can tell
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    new = tmp_path / "new"

    result = migrate(server, server.settings.data_dir.resolve().as_uri(), new.as_uri())
    assert result.returncode == 1, result.stderr
    assert bad in result.stderr
    assert "do not match their sha256" in result.stderr
    assert "copied 2 blob(s)" in summary(result)
    assert summary(result).endswith("1 failed")
    assert not blob_path(new, bad).exists()
    assert not any(p.is_file() for p in (new / "staging").rglob("*"))  # nothing left staged
    for image in (images[0], images[2]):
        assert blob_path(new, image["sha256"]).is_file()


def test_refuses_the_same_store_twice(server_factory: ServerFactory) -> None:
    server = server_factory()
    url = server.settings.data_dir.resolve().as_uri()
    result = migrate(server, url, url)
    assert result.returncode == 2
    assert "same store" in result.stderr
    assert os.path.isdir(server.settings.data_dir)
