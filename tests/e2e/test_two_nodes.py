"""Two ``pixdrop serve`` processes on one PostgreSQL database and one data directory (issue 13).

A client that loses its connection to node A while a tus PATCH is still open there resumes at
node B. B must take the upload over from A's stalled request within ``--lock-wait`` (plus a
second of slack), not wait for A's idle timeout: with ``--idle-timeout 60``, only a takeover
across processes (the lease table's stop flag) explains a success in time.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import text

from pixdrop.metadata import database_url as parse_database_url
from pixdrop.metadata.sql import make_engine
from tests.conftest import DATA
from tests.e2e import ServerProcess
from tests.http.helpers import RawRequest
from tests.tus.wire import sf_strings

pytestmark = pytest.mark.postgres

LOCK_WAIT = 2.0
TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def pg_schema_url(postgres_url: str) -> Iterator[str]:
    """A URL of the session's PostgreSQL database, on a new, empty schema of this test.

    ``postgres_url`` fails the run when ``CI=true`` and PostgreSQL is missing, else skips.
    """
    schema = "two_nodes_" + secrets.token_hex(6)
    admin = make_engine(parse_database_url(postgres_url))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{postgres_url}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def nodes(tmp_path: Path, pg_schema_url: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Nodes A and B: one database, one data directory, a short lock wait, a long idle timeout."""
    args = ["--lock-wait", str(LOCK_WAIT), "--idle-timeout", "60", "--no-access-log"]
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            node = ServerProcess(tmp_path, tmp_path / "data", pg_schema_url, args)
            started.append(node)
            node.wait_healthy()
        yield started[0], started[1]
    finally:
        for node in started:
            node.stop()


def test_resume_on_another_node_takes_over_a_stalled_patch(
    nodes: tuple[ServerProcess, ServerProcess],
) -> None:
    node_a, node_b = nodes
    data = (DATA / "rocket.jpg").read_bytes()
    sent_to_a = len(data) // 3

    with httpx.Client(base_url=node_a.url, timeout=30) as client_a:
        created = client_a.post("/files/", headers={**TUS, "Upload-Length": str(len(data))})
        assert created.status_code == 201, created.text
        path = httpx.URL(created.headers["location"]).path

    stalled = RawRequest(
        node_a.url,
        "PATCH",
        path,
        len(data),
        {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    try:
        stalled.send(data[:sent_to_a])
        time.sleep(0.5)  # node A is now inside the PATCH, waiting for more of the body

        with httpx.Client(base_url=node_b.url, timeout=30) as client_b:
            started = time.monotonic()
            replies: list[str] = []
            # As a tus client resumes: HEAD for the offset, PATCH the rest from there. Node A's
            # request, once asked to stop, records the bytes it has, so a PATCH sent from an
            # offset read before that may meet 409 (stale offset): the client then asks again.
            for _ in range(3):
                head = client_b.head(path, headers=TUS)
                replies.append(f"HEAD {head.status_code} after {time.monotonic() - started:.1f} s")
                assert head.status_code == 200, replies
                offset = int(head.headers["upload-offset"])
                assert 0 <= offset <= sent_to_a
                patch = client_b.patch(
                    path,
                    content=data[offset:],
                    headers={
                        **TUS,
                        "Upload-Offset": str(offset),
                        "Content-Type": "application/offset+octet-stream",
                    },
                )
                replies.append(
                    f"PATCH from {offset}: {patch.status_code} after "
                    f"{time.monotonic() - started:.1f} s {patch.text}"
                )
                if patch.status_code != 409:
                    break
            elapsed = time.monotonic() - started
            assert patch.status_code == 204, replies
            assert int(patch.headers["upload-offset"]) == len(data)
            assert elapsed < LOCK_WAIT + 1, replies

            url = sf_strings(patch.headers["pixdrop-image"])["url"]
            meta = client_b.get(url)
            assert meta.status_code == 200, meta.text
            original = client_b.get(meta.json()["url"])
            assert original.status_code == 200, original.text
            digest = hashlib.sha256(data).hexdigest()
            assert hashlib.sha256(original.content).hexdigest() == digest
            assert meta.json()["sha256"] == digest
    finally:
        stalled.close()
