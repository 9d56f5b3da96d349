"""``pixdrop db copy``: a SQLite site's metadata moves into PostgreSQL, and a server on the copy
serves, completes and deletes what the old one held (docs/deploy.md, "From one machine to
many")."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from tests.e2e import ServerProcess, pixdrop_command, pixdrop_env
from tests.http.helpers import (
    create_upload,
    get_upload,
    noise_png,
    post_image,
    put_chunk,
    split_chunks,
    upload_in_chunks,
)

pytestmark = pytest.mark.postgres

CHUNK = 64 * 1024


def _copy(data_dir: Path, target: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pixdrop_command("db", "copy", "--data-dir", str(data_dir), "--to", target, *extra),
        env=pixdrop_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_sqlite_site_moves_to_postgresql(tmp_path: Path, empty_postgres_url: str) -> None:
    data_dir = tmp_path / "d"
    photo, chunked = noise_png(300, seed=1), noise_png(260, seed=2)
    old = ServerProcess(tmp_path, data_dir, f"sqlite:///{data_dir / 'pixdrop.db'}")
    try:
        old.wait_healthy()
        with httpx.Client(base_url=old.url, timeout=30) as client:
            single = post_image(client, photo, "image/png")
            upload, reply = upload_in_chunks(client, chunked, CHUNK, filename="c.png")
            assert reply.status_code == 201, reply.text
            finished = reply.json()
            unfinished = create_upload(client, len(chunked), chunk_size=CHUNK)
            first = put_chunk(client, unfinished["id"], 0, split_chunks(chunked, CHUNK)[0])
            assert first.status_code == 201, first.text
    finally:
        old.stop()

    result = _copy(data_dir, empty_postgres_url)
    assert result.returncode == 0, result.stderr
    # Two images, one finished upload and its four parts; the unfinished upload stays behind.
    assert (
        "copied 0 api_keys, 2 images, 1 uploads, 0 upload_concat, 4 upload_parts" in result.stderr
    )

    new = ServerProcess(tmp_path, data_dir, empty_postgres_url)
    try:
        new.wait_healthy()
        with httpx.Client(base_url=new.url, timeout=30) as client:
            for image, data in ((single, photo), (finished, chunked)):
                got = client.get(f"/v1/images/{image['id']}/original")
                assert got.status_code == 200
                assert got.content == data
            assert get_upload(client, upload["id"])["state"] == "completed"
            # The unfinished upload stayed behind: its client starts it again.
            assert client.get(f"/v1/uploads/{unfinished['id']}").status_code == 404
            gone = client.delete(
                f"/v1/images/{single['id']}",
                headers={"Authorization": f"Bearer {single['delete_token']}"},
            )
            assert gone.status_code == 204, gone.text
            assert client.get(f"/v1/images/{single['id']}").status_code == 404
    finally:
        new.stop()

    # The target is no longer empty: a second copy is refused and writes nothing.
    again = _copy(data_dir, empty_postgres_url)
    assert again.returncode == 2
    assert "the target database is not empty" in again.stderr
