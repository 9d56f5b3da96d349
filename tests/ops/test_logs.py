"""``--log-format json``: one JSON object per line with the request's fields, never a secret;
the request id in problem bodies and in every record made while a request is served."""

from __future__ import annotations

import io
import json
import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import Request
from fastapi.responses import JSONResponse

from pixdrop.config import Settings
from pixdrop.http.app import create_app
from pixdrop.logs import JsonFormatter, log_format_for
from tests.conftest import ServerFactory, start_server
from tests.e2e import ServerProcess
from tests.http.helpers import assert_problem, noise_png

SIGNATURE = "X-Amz-Signature=0ddba11secret"


def _json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every line but the start-up banner (printed before logging starts), parsed."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert " serving on http://" in lines[0], lines[:1]
    return [json.loads(line) for line in lines[1:]]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_json_access_lines_carry_the_fields_and_no_secret(
    tmp_path: Path, database_url: str
) -> None:
    server = ServerProcess(tmp_path, tmp_path / "data", database_url, ["--log-format", "json"])
    image = noise_png(32, 7)
    try:
        server.wait_healthy(timeout=120)
        with httpx.Client(base_url=server.url, timeout=60) as client:
            posted = client.post("/v1/images", content=image, headers={"X-Request-Id": "trace-7"})
            assert posted.status_code == 201, posted.text
            created = posted.json()
            token = created["delete_token"]
            fetched = client.get(f"/v1/images/{created['id']}/original?{SIGNATURE}")
            assert fetched.status_code == 200
            deleted = client.delete(
                f"/v1/images/{created['id']}", headers={"Authorization": f"Bearer {token}"}
            )
            assert deleted.status_code == 204
            missing = client.get(f"/v1/images/{created['id']}")
            assert assert_problem(missing, 404)["request_id"] == missing.headers["X-Request-Id"]
    finally:
        server.stop()
    stderr = server.stderr()
    for secret in (token, "0ddba11secret", "Bearer", "Authorization"):
        assert secret not in stderr
    records = _json_lines(stderr)
    access = [r for r in records if r["logger"] == "pixdrop.access"]
    post = next(r for r in access if r["method"] == "POST")
    assert {k: post[k] for k in ("level", "request_id", "route", "path", "status")} == {
        "level": "info",
        "request_id": "trace-7",
        "route": "/v1/images",
        "path": "/v1/images",
        "status": 201,
    }
    assert (post["bytes_in"], post["image_id"]) == (len(image), created["id"])
    assert post["bytes_out"] == len(posted.content)
    assert isinstance(post["duration_ms"], float)
    assert post["duration_ms"] >= 0
    assert datetime.fromisoformat(post["time"]).utcoffset() is not None
    assert "/v1/images" in post["message"]
    get = next(r for r in access if r["route"] == "/v1/images/{image_id}/original")
    assert (get["path"], get["image_id"], get["bytes_out"]) == (
        f"/v1/images/{created['id']}/original",
        created["id"],
        len(image),
    )
    gone = next(r for r in access if r["method"] == "DELETE")
    assert (gone["status"], gone["image_id"], gone["bytes_in"]) == (204, created["id"], 0)
    assert (
        next(r for r in access if r["status"] == 404)["request_id"]
        == missing.headers["X-Request-Id"]
    )


def test_records_made_while_serving_carry_the_request_id(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", access_log=False)
    app = create_app(settings)

    async def noisy(request: Request) -> JSONResponse:
        logging.getLogger("pixdrop.test").warning("working on it")
        return JSONResponse({})

    app.add_api_route("/noisy", noisy)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("pixdrop.test")
    logger.addHandler(handler)
    live = start_server(settings, app)
    try:
        assert httpx.get(live.url + "/noisy", headers={"X-Request-Id": "req-9"}).status_code == 200
    finally:
        live.stop()
        logger.removeHandler(handler)
    (line,) = [json.loads(text) for text in out.getvalue().splitlines()]
    assert (line["message"], line["level"], line["request_id"]) == (
        "working on it",
        "warning",
        "req-9",
    )


def test_every_problem_quotes_the_request_id(server_factory: ServerFactory) -> None:
    live = server_factory()
    with httpx.Client(base_url=live.url, timeout=30) as client:
        replies = [
            (client.get("/v1/images/" + "A" * 22), 404),  # a pixdrop error
            (client.post("/v1/uploads", json={"size": "many"}), 400),  # request validation
            (client.put("/v1/limits"), 405),  # the router's own
            (client.post("/files", headers={"Upload-Length": "5"}), 412),  # tus middleware
        ]
        for response, status in replies:
            body = assert_problem(response, status)
            assert body["request_id"] == response.headers["X-Request-Id"], body
        chosen = client.get("/v1/images/" + "B" * 22, headers={"X-Request-Id": "mine-1"})
        assert assert_problem(chosen, 404)["request_id"] == "mine-1"


def test_auto_is_text_on_a_terminal_and_json_elsewhere(tmp_path: Path) -> None:
    leader, follower = os.openpty()
    with open(follower, "w") as terminal, (tmp_path / "log").open("w") as file:
        assert log_format_for("auto", terminal) == "text"
        assert log_format_for("auto", file) == "json"
        assert log_format_for("text", file) == "text"
        assert log_format_for("json", terminal) == "json"
    os.close(leader)
