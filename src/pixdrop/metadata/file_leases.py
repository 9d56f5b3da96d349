"""``FileLeases``: the ``Leases`` port for one machine (the SQLite deployments).

A lease is a lock the kernel keeps: an open-file-description lock (``F_OFD_SETLK``) on one
byte of a lock file beside the database, at an offset derived from the key. Taking and
dropping it are system calls, not database writes: a chunk PUT, which takes a lease for its
chunk, costs microseconds for it (measured: a SQLite lease row cost about 30 us per acquire and
release inline, and 5-9 % of the 1 KiB chunk rate in the benchmark). Open-file-description
locks belong to the open file, not to the process, so two instances in one process exclude
each other as two processes do, and closing one file never drops the other's locks. The
kernel drops a lock when its process dies: a ``kill -9`` leaves nothing held, and nothing
waits for a time to live.

What a lock cannot carry is a request to stop (a newer request taking a resumable upload
over from an older one on another worker process). Those are rows of a small SQLite table
beside it (``lease_stops``: key, when it was asked): written only on a takeover, read by the
holder's renewal ticker. A holder takes a stop request into account only if it was made after
the holder took the lease, so a stale row never stops a later holder.

Unlike ``SqlLeases`` on PostgreSQL, a lease here does not lapse after its time to live while
its process lives: on one machine the kernel knows which processes are alive, and a process
that is alive but stuck would not be safe to take over from anyway.

All of this holds on one machine only: locks on a network file system are not kernel-local,
and SQLite itself warns against sharing a database file over one. So the same small database
also records which machine serves the data (``machines``: host, boot id, last seen), beaten
by every running server (:meth:`FileLeases.beat`); a server that finds another machine seen
within ``MACHINE_TTL`` refuses to start (:func:`other_machines`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import socket
import sqlite3
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from pixdrop.ports import LeaseBusy

__all__ = ["MACHINE_TTL", "FileLeases", "OtherMachine", "machine_identity", "other_machines"]

#: ``struct flock`` on Linux (x86_64 and aarch64): l_type, l_whence, l_start, l_len, l_pid,
#: with the C layout's padding; an open-file-description lock wants l_pid = 0.
_FLOCK = "hhxxxxqqixxxx"
#: How long a statement on the stop table waits for another one's write lock.
BUSY_TIMEOUT_MS = 5_000
#: A machine last seen longer ago than this no longer counts as serving the data; running
#: servers beat every third of it.
MACHINE_TTL = 30.0

_MACHINES_TABLE = (
    "CREATE TABLE IF NOT EXISTS machines ("
    "host TEXT NOT NULL, boot TEXT NOT NULL, seen_at REAL NOT NULL, "
    "PRIMARY KEY (host, boot)) WITHOUT ROWID"
)


def machine_identity() -> tuple[str, str]:
    """(host name, boot id) of this machine: processes under one running kernel share its
    file locks, which is what one machine means here. A host whose boot id changed (it
    rebooted) is still this machine."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return socket.gethostname(), boot


@dataclass(frozen=True, slots=True)
class OtherMachine:
    """A machine other than this one that served the same SQLite data recently."""

    host: str
    seconds_ago: float


def other_machines(stops_path: Path, *, ttl: float = MACHINE_TTL) -> list[OtherMachine]:
    """The other machines that beat in *stops_path* within *ttl* seconds (none when the file
    does not exist yet)."""
    if not stops_path.exists():
        return []
    host, boot = machine_identity()
    with contextlib.closing(sqlite3.connect(stops_path, isolation_level=None)) as conn:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute(_MACHINES_TABLE)
        rows = conn.execute(
            "SELECT host, seen_at FROM machines WHERE host != ? AND boot != ? AND seen_at > ?",
            (host, boot, time.time() - ttl),
        ).fetchall()
    now = time.time()
    return [OtherMachine(str(h), max(0.0, now - float(at))) for h, at in rows]


def _offset(key: str) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 2  # 62 bits: a valid off_t


class FileLeases:
    """``ports.Leases`` on one machine (see the module docstring)."""

    def __init__(self, lock_path: Path, stops_path: Path) -> None:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        # key -> (holder, when it was taken, its byte in the lock file); the lock is this
        # instance's open file's.
        self._held: dict[str, tuple[str, float, int]] = {}
        self._guard = threading.Lock()  # threads of this process share the open file
        self._stops_path = stops_path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._conn().execute(
            "CREATE TABLE IF NOT EXISTS lease_stops ("
            "key TEXT NOT NULL PRIMARY KEY, asked_at REAL NOT NULL) WITHOUT ROWID"
        )
        self._conn().execute(_MACHINES_TABLE)

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self._stops_path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # stop requests need no durability
            self._local.conn = conn
            with self._guard:
                self._connections.append(conn)
        return conn

    def _lock(self, offset: int, kind: int) -> bool:
        request = struct.pack(_FLOCK, kind, os.SEEK_SET, offset, 1, 0)
        try:
            fcntl.fcntl(self._fd, fcntl.F_OFD_SETLK, request)
        except OSError:  # EAGAIN / EACCES: another open file holds it
            return False
        return True

    async def acquire(self, key: str, holder: str, ttl: float) -> bool:
        """Take *key* for *holder*; True if it was free (or its holder's process died), or
        already *holder*'s (then older stop requests no longer count). *ttl* is not used: the
        lease lasts until it is released or its process dies."""
        with self._guard:
            current = self._held.get(key)
            if current is not None:
                if current[0] != holder:
                    return False
                offset = current[2]
            else:
                offset = _offset(key)
                if not self._lock(offset, fcntl.F_WRLCK):
                    return False
            self._held[key] = (holder, time.time(), offset)
            return True

    async def renew(self, key: str, holder: str, ttl: float) -> bool:
        """True if someone asked *holder* to stop since it took *key*; ``LeaseBusy`` if it
        does not hold *key*."""
        with self._guard:
            current = self._held.get(key)
        if current is None or current[0] != holder:
            raise LeaseBusy(key)
        row = (
            self._conn()
            .execute("SELECT asked_at FROM lease_stops WHERE key = ?", (key,))
            .fetchone()
        )
        return row is not None and row[0] > current[1]

    async def renew_held(self, holder: str, ttl: float) -> dict[str, bool]:
        """Every key *holder* holds here, and whether it was asked to stop: one read."""
        with self._guard:
            mine = {key: since for key, (who, since, _) in self._held.items() if who == holder}
        if not mine:
            return {}
        # The table holds only stop requests (rare, and purged), so reading it whole is
        # cheaper than a statement per key.
        rows = self._conn().execute("SELECT key, asked_at FROM lease_stops").fetchall()
        asked = {str(key): float(at) for key, at in rows if key in mine}
        return {key: asked.get(key, -1.0) > since for key, since in mine.items()}

    async def ask_stop(self, key: str) -> None:
        """Ask whoever holds *key* (on any process of this machine) to step aside."""
        self._conn().execute(
            "INSERT INTO lease_stops (key, asked_at) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET asked_at = excluded.asked_at",
            (key, time.time()),
        )

    async def release(self, key: str, holder: str) -> None:
        """Drop *holder*'s lease of *key* (nothing if it holds none)."""
        with self._guard:
            current = self._held.get(key)
            if current is None or current[0] != holder:
                return
            del self._held[key]
            self._lock(current[2], fcntl.F_UNLCK)

    async def beat(self) -> None:
        """Record that this machine serves the data now (see :func:`other_machines`)."""
        host, boot = machine_identity()
        self._conn().execute(
            "INSERT INTO machines (host, boot, seen_at) VALUES (?, ?, ?) "
            "ON CONFLICT (host, boot) DO UPDATE SET seen_at = excluded.seen_at",
            (host, boot, time.time()),
        )

    async def purge(self, grace: float = 60.0) -> int:
        """Delete stop requests older than *grace* seconds; return how many."""
        conn = self._conn()
        cursor = conn.execute("DELETE FROM lease_stops WHERE asked_at < ?", (time.time() - grace,))
        conn.execute("DELETE FROM machines WHERE seen_at < ?", (time.time() - 86_400,))
        return cursor.rowcount

    async def close(self) -> None:
        """Drop every lock and close the files."""
        with self._guard:
            self._held.clear()
            connections, self._connections = self._connections, []
        os.close(self._fd)  # the kernel drops this open file's locks
        for conn in connections:
            conn.close()
