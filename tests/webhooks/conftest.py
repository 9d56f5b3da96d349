"""Fixtures of the webhook tests: a receiver, and the ``pixdrop webhooks`` command."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from pixdrop.cli import main
from tests.webhooks.receiver import Receiver

Cli = Callable[..., str]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.stop()


@pytest.fixture
def cli(database_url: str, tmp_path: Any) -> Cli:
    """Run ``pixdrop webhooks ARGS --database-url <the test's database>``; return stdout."""

    def run(*args: str, code: int | None = 0) -> str:
        result = CliRunner().invoke(
            main,
            ["webhooks", *args, "--database-url", database_url, "--data-dir", str(tmp_path / "d")],
            catch_exceptions=False,
        )
        assert code is None or result.exit_code == code, result.output
        return result.output

    return run


@pytest.fixture
def add_endpoint(cli: Cli) -> Iterator[Callable[..., dict[str, Any]]]:
    """``pixdrop webhooks add URL --events EVENTS``; the endpoints go at the end of the test
    (the PostgreSQL database is shared by the session's tests)."""
    added: list[str] = []

    def add(url: str, events: str = "*") -> dict[str, Any]:
        found: dict[str, Any] = json.loads(cli("add", url, "--events", events, "--json"))
        added.append(found["id"])
        return found

    yield add
    for endpoint_id in added:
        cli("remove", endpoint_id, code=None)


def deliveries(cli: Cli, endpoint: dict[str, Any], *args: str) -> list[dict[str, Any]]:
    """The deliveries to *endpoint*, newest first."""
    rows = [json.loads(line) for line in cli("deliveries", "--json", *args).splitlines()]
    return [row for row in rows if row["endpoint_id"] == endpoint["id"]]
