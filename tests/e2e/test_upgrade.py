"""A data directory written by an older pixdrop (e8ca91e) is served after the upgrade.

``tests/data/legacy-e8ca91e`` is what that version left on disk (its README says how it was
made): a stored image, a native upload with every other chunk received, a tus upload with
half of its bytes. The new server migrates the database at start and must serve the image,
report exactly what each upload lacks, and finish both from where they stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import ServerProcess

LEGACY = Path(__file__).resolve().parents[1] / "data" / "legacy-e8ca91e"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def legacy(tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    data = tmp_path / "data"
    shutil.copytree(LEGACY, data, ignore=shutil.ignore_patterns("README.md", "images"))
    # Only the expiry moves (to the future), so the test does not depend on the day it runs.
    with sqlite3.connect(data / "pixdrop.db") as db:
        db.execute("UPDATE uploads SET expires_at = '2999-01-01 00:00:00.000000'")
    db.close()
    server = ServerProcess(
        tmp_path, data, f"sqlite:///{data / 'pixdrop.db'}", ["--min-chunk-size", "1KiB"]
    )
    try:
        server.wait_healthy()
        yield server, json.loads((LEGACY / "expected.json").read_text())
    finally:
        server.stop()


def test_old_image_is_served_and_deletable(legacy: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, expected = legacy
    image = expected["image"]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        original = client.get(f"/v1/images/{image['id']}/original")
        assert original.status_code == 200
        assert hashlib.sha256(original.content).hexdigest() == image["sha256"]
        thumb = client.get(f"/v1/images/{image['id']}/thumb")
        assert thumb.status_code == 200, thumb.text
        gone = client.delete(
            f"/v1/images/{image['id']}",
            headers={"Authorization": f"Bearer {image['delete_token']}"},
        )
        assert gone.status_code == 204
        assert client.get(f"/v1/images/{image['id']}/original").status_code == 404


def test_old_native_upload_resumes(legacy: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, expected = legacy
    native = expected["native"]
    data = (LEGACY / "images" / "native.png").read_bytes()
    size = native["chunk_size"]
    with httpx.Client(base_url=server.url, timeout=10) as client:
        state = client.get(f"/v1/uploads/{native['id']}").json()
        assert state["received"] == native["received"]
        for index in state["missing"]:
            chunk = data[index * size : (index + 1) * size]
            put = client.put(f"/v1/uploads/{native['id']}/chunks/{index}", content=chunk)
            assert put.status_code == 201, put.text
        done = client.post(f"/v1/uploads/{native['id']}/complete")
        assert done.status_code == 201, done.text
        original = client.get(f"/v1/images/{done.json()['id']}/original")
        assert original.content == data


def test_old_tus_upload_resumes(legacy: tuple[ServerProcess, dict[str, Any]]) -> None:
    server, expected = legacy
    tus = expected["tus"]
    data = (LEGACY / "images" / "tus.png").read_bytes()
    with httpx.Client(base_url=server.url, timeout=10) as client:
        head = client.head(f"/files/{tus['id']}", headers=TUS)
        assert head.status_code == 200
        offset = int(head.headers["Upload-Offset"])
        assert offset == tus["offset"]
        patch = client.patch(
            f"/files/{tus['id']}",
            content=data[offset:],
            headers={
                **TUS,
                "Upload-Offset": str(offset),
                "Content-Type": "application/offset+octet-stream",
            },
        )
        assert patch.status_code == 204, patch.text
        image_url = patch.headers["Pixdrop-Image"].split('url="', 1)[1].split('"', 1)[0]
        original = client.get(image_url.rstrip("/") + "/original")
        assert original.content == data
