"""The chunk PUT and the tus PATCH and creation are answered without FastAPI's router
(``http/fastpath.py``), and as their routes would answer them: their statuses, their problems,
their scope check (``tests/auth/test_matrix.py``) and what the metrics record of them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from tests.http.helpers import assert_problem

CHUNK_ROUTE = "/v1/uploads/{upload_id}/chunks/{index}"
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def client(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The path templates of the routes the router hands requests to (the server runs in
    this process)."""
    seen: list[str] = []
    handle = APIRoute.handle

    async def spy(self: APIRoute, scope: Any, receive: Any, send: Any) -> None:
        seen.append(self.path)
        await handle(self, scope, receive, send)

    monkeypatch.setattr(APIRoute, "handle", spy)
    return seen


def test_a_chunk_put_skips_the_router(
    client: httpx.Client, routed: list[str], photo_jpeg: bytes
) -> None:
    created = client.post("/v1/uploads", json={"size": len(photo_jpeg)})
    assert created.status_code == 201
    upload = created.json()["id"]
    put = client.put(f"/v1/uploads/{upload}/chunks/0", content=photo_jpeg)
    assert put.status_code == 201, put.text
    assert put.json()["size"] == len(photo_jpeg)
    again = client.put(f"/v1/uploads/{upload}/chunks/0", content=photo_jpeg)
    assert again.status_code == 200  # an identical re-send
    assert client.get(f"/v1/uploads/{upload}").status_code == 200
    assert "/v1/uploads/{upload_id}" in routed  # the spy sees what the router serves
    assert CHUNK_ROUTE not in routed


def test_tus_creation_and_patch_skip_the_router(
    client: httpx.Client, routed: list[str], photo_jpeg: bytes
) -> None:
    size = str(len(photo_jpeg))
    created = client.post("/files/", headers={**TUS, "Upload-Length": size})
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    headers = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    patched = client.patch(location, headers=headers, content=photo_jpeg)
    assert patched.status_code == 204, patched.text
    assert patched.headers["Upload-Offset"] == size
    assert client.head(location, headers=TUS).headers["Upload-Offset"] == size
    assert routed == ["/files/{upload_id}"]  # the HEAD only


def test_its_errors_are_the_apps_problems(client: httpx.Client, routed: list[str]) -> None:
    missing = client.put(f"/v1/uploads/{'x' * 22}/chunks/0", content=b"x")
    assert_problem(missing, 404)
    created = client.post("/v1/uploads", json={"size": 10})
    bad_index = client.put(f"/v1/uploads/{created.json()['id']}/chunks/x", content=b"x")
    assert_problem(bad_index, 404, "chunk-not-found", chunk_count=1)
    assert CHUNK_ROUTE not in routed


def test_other_methods_on_its_path_still_meet_the_router(client: httpx.Client) -> None:
    created = client.post("/v1/uploads", json={"size": 10})
    answer = client.get(f"/v1/uploads/{created.json()['id']}/chunks/0")
    assert_problem(answer, 405)


def test_the_metrics_name_its_route(client: httpx.Client, photo_jpeg: bytes) -> None:
    created = client.post("/v1/uploads", json={"size": len(photo_jpeg)})
    client.put(f"/v1/uploads/{created.json()['id']}/chunks/0", content=photo_jpeg)
    metrics = client.get("/metrics").text
    assert f'route="{CHUNK_ROUTE}"' in metrics
    assert 'method="PUT"' in metrics
