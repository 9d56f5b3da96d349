"""``/readyz`` (the database and the blob store answer now) apart from ``/healthz`` (the
process answers): a store that goes away makes the server unready, never dead."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from pixdrop.config import Settings
from pixdrop.http.app import begin_shutdown, create_app
from tests.conftest import PG_ADMIN_URL, ServerFactory, _pg_connect, start_server


def _ready(url: str) -> httpx.Response:
    return httpx.get(url + "/readyz", timeout=30)


def test_ready_and_alive_while_both_stores_answer(server_factory: ServerFactory) -> None:
    live = server_factory()
    ready = _ready(live.url)
    assert (ready.status_code, ready.json()) == (
        200,
        {"status": "ok", "database": "ok", "blob_store": "ok"},
    )
    assert httpx.get(live.url + "/healthz").status_code == 200


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_database_that_goes_away_makes_it_unready_not_dead(
    server_factory: ServerFactory, empty_postgres_url: str
) -> None:
    live = server_factory(database_url=empty_postgres_url)
    assert _ready(live.url).status_code == 200
    with _pg_connect(PG_ADMIN_URL) as admin:
        admin.execute(f'DROP DATABASE "{empty_postgres_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    unready = _ready(live.url)
    assert unready.status_code == 503
    assert unready.json() == {"status": "unavailable", "database": "down", "blob_store": "ok"}
    alive = httpx.get(live.url + "/healthz")
    assert (alive.status_code, alive.json()["status"]) == (200, "ok")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_blob_store_that_goes_away_makes_it_unready_not_dead(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    live = server_factory(blob_store=f"file://{tmp_path / 'blobs'}")
    assert _ready(live.url).status_code == 200
    shutil.rmtree(tmp_path / "blobs")
    unready = _ready(live.url)
    assert unready.status_code == 503
    assert unready.json() == {"status": "unavailable", "database": "ok", "blob_store": "down"}
    assert httpx.get(live.url + "/healthz").status_code == 200


def test_unready_once_shutdown_has_begun(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "d", access_log=False)
    app = create_app(settings)
    live = start_server(settings, app)
    try:
        assert _ready(live.url).status_code == 200
        begin_shutdown(app)  # what the server calls when it starts to stop
        unready = _ready(live.url)
        assert (unready.status_code, unready.json()) == (503, {"status": "shutting-down"})
        assert httpx.get(live.url + "/healthz").status_code == 200
    finally:
        live.stop()
