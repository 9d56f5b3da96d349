"""Unexpected failures: a generic 500 problem with a request id, never the exception's text."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from pixdrop.config import Settings
from pixdrop.http.app import create_app
from tests.conftest import start_server
from tests.http.helpers import assert_problem

SECRET = "database password is hunter2"


async def _boom() -> None:
    raise RuntimeError(SECRET)


def test_unexpected_error_is_a_500_problem_with_request_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path / "d", access_log=False)
    app = create_app(settings)
    app.add_api_route("/boom", _boom)
    live = start_server(settings, app)
    try:
        with caplog.at_level(logging.ERROR, logger="pixdrop.errors"):
            response = httpx.get(live.url + "/boom", headers={"X-Request-Id": "trace-42"})
        body = assert_problem(response, 500)
        assert SECRET not in response.text
        assert body["request_id"] == "trace-42"
        assert response.headers["X-Request-Id"] == "trace-42"
        assert "trace-42" in body["detail"]
        # The full error is in the server's log, under the same id.
        assert any("trace-42" in r.getMessage() and r.exc_info for r in caplog.records)

        made = httpx.get(live.url + "/healthz", headers={"X-Request-Id": "bad id with spaces"})
        assert made.headers["X-Request-Id"] != "bad id with spaces"
        assert len(made.headers["X-Request-Id"]) == 16
    finally:
        live.stop()
