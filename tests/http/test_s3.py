"""pixdrop on PostgreSQL + an S3 bucket (SeaweedFS), over real HTTP: what only an object store
makes different. The rest of the HTTP suites also run on this pair (their ``[s3]`` variants).

* native chunks are multipart parts: at least 5 MiB but the last, advertised in /v1/limits and
  refused below that with a problem naming the minimum;
* the bytes live in the bucket, not in the data directory (which holds scratch files only);
* an upload smaller than one part, including a deferred-length tus upload, still completes.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.http.helpers import (
    assert_problem,
    create_upload,
    noise_png,
    put_chunk,
    split_chunks,
)

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"


@pytest.fixture
def backend() -> str:
    return "s3"


@pytest.fixture(scope="module")
def big_png() -> bytes:
    """A PNG of random pixels (incompressible): about 12 MiB, three 5 MiB parts."""
    return noise_png(2000, seed=14)


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and "tmp" not in p.relative_to(root).parts]


@pytest.mark.postgres
@pytest.mark.s3
def test_native_chunks_are_parts_of_at_least_5_mib(
    server_factory: ServerFactory, big_png: bytes
) -> None:
    server = server_factory()
    with httpx.Client(base_url=server.url, timeout=60) as client:
        limits = client.get("/v1/limits").json()
        assert limits["min_chunk_size"] == 5 * MiB
        small = client.post("/v1/uploads", json={"size": len(big_png), "chunk_size": 65536})
        body = assert_problem(small, 400)
        assert body["allowed"][0] == 5 * MiB

        upload = create_upload(
            client,
            len(big_png),
            chunk_size=5 * MiB,
            sha256=hashlib.sha256(big_png).hexdigest(),
        )
        chunks = split_chunks(big_png, 5 * MiB)
        assert len(chunks) == 3
        with ThreadPoolExecutor(3) as pool:  # last chunk first, all at once
            replies = list(
                pool.map(lambda i: put_chunk(client, upload["id"], i, chunks[i]), [2, 0, 1])
            )
        assert [r.status_code for r in replies] == [201, 201, 201]
        done = client.post(f"/v1/uploads/{upload['id']}/complete")
        assert done.status_code == 201, done.text
        image = done.json()
        original = client.get(f"/v1/images/{image['id']}/original")
        assert original.content == big_png
        ranged = client.get(
            f"/v1/images/{image['id']}/original", headers={"Range": "bytes=5242870-5242889"}
        )
        assert ranged.status_code == 206
        assert ranged.content == big_png[5242870:5242890]
    # The bytes are in the bucket: the data directory keeps no blob and no staging file.
    assert stored_files(server.settings.data_dir) == []


@pytest.mark.postgres
@pytest.mark.s3
def test_a_deferred_length_tus_upload_smaller_than_a_part_completes(
    server_factory: ServerFactory, photo_jpeg: bytes
) -> None:
    server = server_factory()
    third = len(photo_jpeg) // 3
    with httpx.Client(base_url=server.url, timeout=30) as client:
        created = client.post("/files/", headers={**TUS, "Upload-Defer-Length": "1"})
        assert created.status_code == 201, created.text
        path = httpx.URL(created.headers["location"]).path
        offset = 0
        for piece in (photo_jpeg[:third], photo_jpeg[third : 2 * third]):
            reply = client.patch(
                path,
                content=piece,
                headers={**TUS, "Upload-Offset": str(offset), "Content-Type": OCTETS},
            )
            assert reply.status_code == 204, reply.text
            offset += len(piece)
        last = client.patch(
            path,
            content=photo_jpeg[offset:],
            headers={
                **TUS,
                "Upload-Offset": str(offset),
                "Upload-Length": str(len(photo_jpeg)),
                "Content-Type": OCTETS,
            },
        )
        assert last.status_code == 204, last.text
        assert "pixdrop-image" in last.headers
        url = last.headers["pixdrop-image"].split('url="', 1)[1].split('"', 1)[0]
        original = client.get(url.rstrip("/") + "/original")
        assert original.content == photo_jpeg  # not a zero-byte object
