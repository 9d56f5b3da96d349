"""Abandoned uploads expire: refused after ``expires_at``, then swept with their bytes.

These servers use ``upload_ttl=1``; file names under the data directory are not assumed, only
that no file there (SQLite files aside) still holds an expired upload's bytes.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime

import httpx
import pytest

from tests.http.helpers import (
    assert_problem,
    create_upload,
    files_containing,
    get_upload,
    parse_time,
    poll,
    post_image,
    put_chunk,
    split_chunks,
    upload_in_chunks,
)

KiB = 1024
CHUNK = 4 * KiB
SMALL_CHUNKS = {"min_chunk_size": KiB, "default_chunk_size": CHUNK}


def wait_past(expires_at: str, margin: float = 0.3) -> None:
    deadline = parse_time(expires_at)
    remaining = (deadline - datetime.now(UTC)).total_seconds() + margin
    assert remaining < 5, f"expires_at {expires_at} is too far away for upload_ttl=1"
    if remaining > 0:
        time.sleep(remaining)


@pytest.mark.local_disk
def test_unfinished_upload_is_swept_with_its_bytes(server_factory) -> None:
    live = server_factory(upload_ttl=1, sweep_interval=0.2, **SMALL_CHUNKS)
    data = random.Random(5).randbytes(3 * CHUNK)
    parts = split_chunks(data, CHUNK)
    with httpx.Client(base_url=live.url, timeout=10) as client:
        upload = create_upload(client, len(data), chunk_size=CHUNK)
        uid = upload["id"]
        for index in (0, 2):
            assert put_chunk(client, uid, index, parts[index]).status_code == 201
        assert files_containing(live.settings.data_dir, parts[0]), "chunk bytes not on disk"

        response = poll(lambda: client.get(f"/v1/uploads/{uid}"), lambda r: r.status_code == 404)
        assert_problem(response, 404, "upload-not-found")

    leftovers = poll(
        lambda: (
            files_containing(live.settings.data_dir, parts[0])
            + files_containing(live.settings.data_dir, parts[2])
        ),
        lambda found: not found,
    )
    assert leftovers == []


@pytest.mark.local_disk
def test_chunk_after_expiry_is_refused(server_factory) -> None:
    """Past ``expires_at`` but before any sweep (the sweep interval is a minute)."""
    live = server_factory(upload_ttl=1, sweep_interval=60, **SMALL_CHUNKS)
    data = random.Random(6).randbytes(2 * CHUNK)
    with httpx.Client(base_url=live.url, timeout=10) as client:
        upload = create_upload(client, len(data), chunk_size=CHUNK)
        wait_past(upload["expires_at"])
        response = put_chunk(client, upload["id"], 0, data[:CHUNK])
        assert response.status_code in (404, 410), response.text
        slug = "upload-expired" if response.status_code == 410 else "upload-not-found"
        assert_problem(response, response.status_code, slug)


@pytest.mark.local_disk
def test_sweeps_keep_images(server_factory, photo_png, photo_jpeg) -> None:
    """Images, whether uploaded in one request or in chunks, outlive their uploads' ttl."""
    live = server_factory(upload_ttl=1, sweep_interval=0.2, **SMALL_CHUNKS)
    with httpx.Client(base_url=live.url, timeout=10) as client:
        one = post_image(client, photo_jpeg)
        upload, done = upload_in_chunks(client, photo_png, 64 * KiB)
        assert done.status_code == 201, done.text
        chunked = done.json()
        wait_past(upload["expires_at"], margin=1.0)
        for image, data in ((one, photo_jpeg), (chunked, photo_png)):
            served = client.get(f"/v1/images/{image['id']}/original")
            assert served.status_code == 200, served.text
            assert served.content == data
        state = client.get(f"/v1/uploads/{upload['id']}")
        if state.status_code == 200:  # a completed upload may be kept or swept; if kept, intact
            assert get_upload(client, upload["id"])["image_id"] == chunked["id"]
