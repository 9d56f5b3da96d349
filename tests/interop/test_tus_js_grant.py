"""tus-js-client with a direct-upload grant: the browser's one header (issue 15).

The grant's token goes in tus-js-client's ``headers`` option, so every request of the upload
carries ``Authorization: Bearer pxg_…``; the upload makes the grant's one image, and the same
grant cannot make a second one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.interop.support import CHUNK, assert_stored
from tests.interop.test_tus_js import METADATA, node, requests_of, run_upload, succeeded

__all__ = ["node"]  # the fixture, imported so that this module's tests can use it


def _issue(server: LiveServer, **fields: Any) -> dict[str, Any]:
    answer = httpx.post(f"{server.url}/v1/direct-uploads", json=fields, timeout=30)
    assert answer.status_code == 201, answer.text
    grant: dict[str, Any] = answer.json()
    return grant


def test_tus_js_client_uploads_with_a_grant_once(
    node: str, server: LiveServer, big_image: Path
) -> None:
    data = big_image.read_bytes()
    grant = _issue(server, max_size=len(data), formats=["png"])
    options: dict[str, Any] = {
        "endpoint": f"{server.url}/files/",
        "file": str(big_image),
        "chunkSize": CHUNK,
        "metadata": METADATA,
        "headers": {"Authorization": f"Bearer {grant['token']}"},
    }
    report = succeeded(run_upload(node, **options))
    assert len(requests_of(report, "PATCH")) == math.ceil(len(data) / CHUNK)
    assert_stored(report["uploadUrl"], data, filename=METADATA["filename"])
    status = httpx.get(f"{server.url}/v1/direct-uploads/{grant['id']}", timeout=30).json()
    assert status["used"] is True
    assert status["image"]["size"] == len(data)

    again = run_upload(node, **{**options, "retryDelays": []})
    assert again["status"] == "error", again
    assert again["lastResponse"]["status"] == 409
    assert "grant-used" in again["lastResponse"]["body"]


def test_tus_js_client_is_refused_a_file_too_large_for_its_grant(
    node: str, server: LiveServer, big_image: Path
) -> None:
    grant = _issue(server, max_size=1024)
    report = run_upload(
        node,
        endpoint=f"{server.url}/files/",
        file=str(big_image),
        chunkSize=CHUNK,
        metadata=METADATA,
        retryDelays=[],
        headers={"Authorization": f"Bearer {grant['token']}"},
    )
    assert report["status"] == "error", report
    assert report["lastResponse"]["status"] == 413
    assert "grant-too-large" in report["lastResponse"]["body"]
