"""Servers shared by a whole module, so a table of many rows starts few servers.

``tus_servers(**overrides)`` starts (once per module and backend) a server with those settings
overrides and returns it with an open client; rows asking for the same overrides share both.
Each server has its own data directory; on PostgreSQL they share the session's database, as
nodes of one cluster would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixdrop.config import Settings
from tests.conftest import LiveServer, start_server

#: Settings every module-scoped server starts with (rows add their own overrides).
BASE_SETTINGS: dict[str, Any] = {
    "access_log": False,
    "image_workers": 1,
    "sweep_interval": 3600.0,  # no sweep during a module: expired uploads stay known (410)
}

TusServers = Callable[..., "Served"]


@dataclass
class Served:
    """A module-scoped server and a client kept open on it (creating clients is slow)."""

    live: LiveServer
    client: httpx.Client

    @property
    def url(self) -> str:
        return self.live.url


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def tus_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def tus_servers(
    tus_backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[TusServers]:
    root = tmp_path_factory.mktemp(f"tus-{tus_backend}")
    started: dict[tuple[tuple[str, Any], ...], Served] = {}

    def database_url(data_dir: Path) -> str:
        if tus_backend == "postgres":
            return str(request.getfixturevalue("postgres_url"))
        return f"sqlite:///{data_dir / 'pixdrop.db'}"

    def get(**overrides: Any) -> Served:
        key = tuple(sorted(overrides.items()))
        if key not in started:
            data_dir = root / f"server-{len(started)}"
            data_dir.mkdir()
            settings = Settings(
                data_dir=data_dir,
                database_url=database_url(data_dir),
                **{**BASE_SETTINGS, **overrides},
            )
            live = start_server(settings)
            started[key] = Served(live, httpx.Client(base_url=live.url, timeout=30))
        return started[key]

    yield get
    for served in started.values():
        served.client.close()
        served.live.stop()
