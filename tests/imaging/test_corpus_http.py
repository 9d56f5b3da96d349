"""Every corpus sample through both upload paths, over real HTTP: the documented answer each time.

One server (SQLite) serves the whole module; the samples are made by ``corpus.py`` with the
codec itself. Accepted images are also checked through a variant: it must come out upright,
no larger than its box, and without metadata.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image as PILImage

from pixdrop.config import Settings
from tests.conftest import LiveServer, start_server
from tests.http.helpers import assert_problem, sha256_hex, upload_in_chunks
from tests.imaging.corpus import Sample, samples

CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    root = tmp_path_factory.mktemp("corpus")
    settings = Settings(
        data_dir=root / "data",
        database_url=f"sqlite:///{root / 'pixdrop.db'}",
        access_log=False,
        min_chunk_size=CHUNK,
    )
    server = start_server(settings)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(live: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.url, timeout=60) as client:
        yield client


def one_request(client: httpx.Client, sample: Sample) -> httpx.Response:
    params = {"filename": sample.filename} if sample.filename else {}
    headers = {"Content-Type": sample.content_type}
    return client.post("/v1/images", content=sample.data, params=params, headers=headers)


def chunked(client: httpx.Client, sample: Sample) -> httpx.Response:
    fields: dict[str, Any] = {"sha256": sha256_hex(sample.data)}
    if sample.filename:
        fields["filename"] = sample.filename
    _, done = upload_in_chunks(client, sample.data, CHUNK, **fields)
    return done


PATHS = {"one-request": one_request, "chunked": chunked}


def check_answer(response: httpx.Response, sample: Sample) -> dict[str, Any]:
    if sample.status != 201:
        return assert_problem(response, sample.status, "unprocessable-image", **sample.fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    for key, value in sample.fields.items():
        assert body[key] == value, (key, body)
    assert body["sha256"] == sha256_hex(sample.data)
    assert isinstance(body["placeholder"], str), body
    assert len(body["placeholder"]) >= 20, body
    return body


def check_thumb(client: httpx.Client, image: dict[str, Any]) -> None:
    response = client.get(f"/v1/images/{image['id']}/thumb", params={"format": "png"})
    assert response.status_code == 200, response.text
    with PILImage.open(io.BytesIO(response.content)) as thumb:
        assert max(thumb.size) <= 256
        assert not thumb.getexif(), "a variant keeps no metadata"
        upright = image["orientation"] in (5, 6, 7, 8)
        wide = image["width"] >= image["height"]
        if min(image["width"], image["height"]) >= 16:  # aspect survives the shrink
            assert (thumb.width >= thumb.height) == (wide != upright), (thumb.size, image)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("sample", samples(), ids=lambda s: s.name)
def test_sample_gets_the_documented_answer(
    client: httpx.Client, live: LiveServer, sample: Sample, path: str
) -> None:
    if sample.data == b"" and path == "chunked":
        # Nothing to send in chunks: refused when the upload is created (documented 400).
        response = client.post("/v1/uploads", json={"size": 0})
        assert_problem(response, 400, "invalid-upload-request")
        return
    body = check_answer(PATHS[path](client, sample), sample)
    if sample.status == 201 and path == "one-request":
        check_thumb(client, body)


def test_refused_samples_leave_nothing_behind(client: httpx.Client, live: LiveServer) -> None:
    for sample in samples():
        if sample.status != 201:
            one_request(client, sample)
    blobs = Path(live.settings.data_dir) / "blobs"
    staging = Path(live.settings.data_dir) / "staging"
    stored = {p.name for p in blobs.rglob("*") if p.is_file()} if blobs.exists() else set()
    for sample in samples():
        if sample.status != 201:
            assert sha256_hex(sample.data) not in stored, sample.name
    assert not [p for p in staging.iterdir() if p.is_file()] if staging.exists() else True
