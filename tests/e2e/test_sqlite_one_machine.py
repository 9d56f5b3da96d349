"""SQLite serves one machine: a server refuses to start on a database another machine serves.

Another machine is what writes a fresh row into the ``machines`` table beside the database
(its host name and boot id differ from this one's); a test cannot boot a second kernel, so it
writes that row as the other machine's server would.
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import time
from pathlib import Path

from pixdrop.metadata.file_leases import MACHINE_TTL, machine_identity
from tests.e2e import ServerProcess, pixdrop_command, pixdrop_env
from tests.http.helpers import free_port


def _other_machine_seen(data_dir: Path, seconds_ago: float) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(data_dir / "pixdrop-leases.db") as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS machines (host TEXT NOT NULL, boot TEXT NOT NULL, "
            "seen_at REAL NOT NULL, PRIMARY KEY (host, boot)) WITHOUT ROWID"
        )
        conn.execute(
            "INSERT INTO machines VALUES ('node-b.example', 'another-boot-id', ?)",
            (time.time() - seconds_ago,),
        )


def _serve(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pixdrop_command(
            "serve", "--host", "127.0.0.1", "--port", str(free_port()), "--data-dir", str(data_dir)
        ),
        env=pixdrop_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_database_another_machine_serves_is_refused_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    _other_machine_seen(data_dir, seconds_ago=2)
    result = _serve(data_dir)
    assert result.returncode == 2, result.stderr
    message = result.stderr.strip()
    assert message.startswith("pixdrop: the SQLite database ")
    assert re.search(r"in use by another machine: node-b\.example \(\d+ s ago\)", message)
    assert "postgresql://" in message
    assert "docs/deploy.md" in message
    assert len(message.splitlines()) == 1  # one clear line, no traceback


def test_a_machine_gone_quiet_no_longer_blocks(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    _other_machine_seen(data_dir, seconds_ago=MACHINE_TTL + 5)
    server = ServerProcess(tmp_path, data_dir, f"sqlite:///{data_dir / 'pixdrop.db'}")
    try:
        server.wait_healthy()
        # The running server says this machine now serves the data, for the others to see.
        host, boot = machine_identity()
        with sqlite3.connect(data_dir / "pixdrop-leases.db") as conn:
            rows = conn.execute(
                "SELECT seen_at FROM machines WHERE host = ? AND boot = ?", (host, boot)
            ).fetchall()
        assert len(rows) == 1
        assert time.time() - rows[0][0] < MACHINE_TTL
    finally:
        server.stop()


def test_more_processes_of_one_machine_share_the_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    url = f"sqlite:///{data_dir / 'pixdrop.db'}"
    first = ServerProcess(tmp_path, data_dir, url)
    try:
        first.wait_healthy()
        second = ServerProcess(tmp_path, data_dir, url)
        try:
            second.wait_healthy()
        finally:
            second.stop()
    finally:
        first.stop()
