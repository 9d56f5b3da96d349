"""``SqlLeases``: the ``Leases`` port on SQLite or PostgreSQL.

A lease is a row of ``leases`` (see ``tables.py``): a key, its holder, when it expires, and a
flag a newer request sets to ask the holder to stop. Every method is one short statement in
its own transaction (autocommit), except a failed ``acquire``, which reads who holds the key and
may then take it over with a compare-and-swap on the holder (still atomic: only one of several
takers can swap out the same holder). No connection is held between calls.

Acquiring is one upsert, atomic on both dialects::

    INSERT ... ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, ...
    WHERE leases.expires_at <= now OR leases.holder = excluded.holder  RETURNING true

Holders are made by :func:`new_holder`: the host (its name and PID namespace), the process id
and a random token. A holder on this host whose process is gone counts as expired, so after a
``kill -9`` and a restart nothing waits for a lease's time to live to run out.

Leases need no durability: after a crash of the machine their holders are dead anyway.

* PostgreSQL: a small engine of its own, autocommit, with ``synchronous_commit = off`` for the
  session (what ``SET LOCAL`` would do per transaction, without its round trip). Times are the
  server's clock (``statement_timestamp()``), so nodes whose clocks disagree still agree on
  expiry. Calls run on worker threads, as the metadata store's do.
* SQLite: a file of its own next to the metadata database (``pixdrop.db`` →
  ``pixdrop-leases.db``; the table migration 0004 made in the metadata database is unused
  there), WAL, ``synchronous = NORMAL`` (no fsync per commit). Its own file means a lease
  statement never waits for the metadata database's write lock, which a group commit holds
  across an fsync; so lease statements only ever wait for one another (microseconds) and run
  inline, on the calling thread, without a thread hop. Times are this machine's clock (SQLite
  serves one machine).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sqlite3
import threading
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from anyio import to_thread
from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from pixdrop.metadata.sql import SqlMetadataStore
from pixdrop.ports import LeaseBusy

__all__ = [
    "SqlLeases",
    "holder_is_dead",
    "leases_path",
    "new_holder",
    "open_leases",
]

log = logging.getLogger("pixdrop.leases")

#: How long a SQLite lease statement waits for another one's write lock. They take
#: microseconds; this only bites if a process is stuck while holding the lock.
SQLITE_BUSY_TIMEOUT_MS = 5_000


# --- Holders ---


def _host() -> str:
    """This host, as holders name it: the host name and the PID namespace, so that two
    containers sharing a host name (``--network host``) are not taken for one host whose
    process ids they could check."""
    name = socket.gethostname()[:64] or "localhost"
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return name
    return f"{name}@{namespace.removeprefix('pid:[').removesuffix(']')}"


def new_holder() -> str:
    """A new holder name: ``<host>/<pid>/<random>`` (at most 105 characters)."""
    return f"{_host()}/{os.getpid()}/{secrets.token_hex(8)}"


def holder_is_dead(holder: str) -> bool:
    """True if *holder* (from :func:`new_holder`) was a process on this host that is gone.

    False when unsure: another host, a name not made by :func:`new_holder`, or a process id
    that is alive (perhaps reused: the lease then waits for its expiry, as any other).
    """
    host, _, rest = holder.partition("/")
    pid_text, _, _token = rest.partition("/")
    if host != _host() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # PermissionError: alive, another user's
        return False
    try:  # killed but not yet reaped by its parent: dead all the same
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


# --- Drivers: the statements, per dialect, run synchronously ---


class _Driver(ABC):
    """The lease statements of one dialect; each method is synchronous and thread-safe."""

    def acquire(self, key: str, holder: str, ttl: float) -> bool:
        if self._upsert(key, holder, ttl):
            return True
        current = self._holder_of(key)
        if current is None:  # released in between: one more try
            return self._upsert(key, holder, ttl)
        if holder_is_dead(current):
            return self._replace(key, current, holder, ttl)
        return False

    @abstractmethod
    def _upsert(self, key: str, holder: str, ttl: float) -> bool:
        """Insert, or take over an expired lease or one of *holder*'s; True if it did."""

    @abstractmethod
    def _holder_of(self, key: str) -> str | None: ...

    @abstractmethod
    def _replace(self, key: str, old: str, holder: str, ttl: float) -> bool:
        """Give *key* to *holder* if *old* still holds it; True if it did."""

    @abstractmethod
    def renew(self, key: str, holder: str, ttl: float) -> bool: ...

    @abstractmethod
    def renew_held(self, holder: str, ttl: float) -> dict[str, bool]: ...

    @abstractmethod
    def ask_stop(self, key: str) -> None: ...

    @abstractmethod
    def release(self, key: str, holder: str) -> None: ...

    @abstractmethod
    def purge(self, grace: float) -> int: ...

    @abstractmethod
    def close(self) -> None: ...


def _sqlite_time(seconds_from_now: float) -> str:
    # The text SQLAlchemy's DateTime stores on SQLite (naive UTC, always with microseconds),
    # so that the values compare as text in time order and read back as ``UtcDateTime``.
    moment = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=seconds_from_now)
    return moment.isoformat(" ", timespec="microseconds")


class _SqliteDriver(_Driver):
    """One connection per thread, autocommit; see the module docstring."""

    _UPSERT = (
        "INSERT INTO leases (key, holder, expires_at, stop) VALUES (?1, ?2, ?3, 0) "
        "ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, "
        "expires_at = excluded.expires_at, stop = 0 "
        "WHERE leases.expires_at <= ?4 OR leases.holder = excluded.holder RETURNING 1"
    )
    _REPLACE = "UPDATE leases SET holder = ?, expires_at = ?, stop = 0 WHERE key = ? AND holder = ?"
    _RENEW = "UPDATE leases SET expires_at = ? WHERE key = ? AND holder = ? RETURNING stop"
    _RENEW_HELD = "UPDATE leases SET expires_at = ? WHERE holder = ? RETURNING key, stop"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()
        self._closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        # Every process creates it if missing; ``leases`` as in tables.py, plus an index for
        # renewing by holder. One statement each, so concurrent starters do not collide.
        conn.execute(
            "CREATE TABLE IF NOT EXISTS leases ("
            "key VARCHAR(128) NOT NULL, holder VARCHAR(128) NOT NULL, "
            "expires_at DATETIME NOT NULL, stop BOOLEAN DEFAULT 0 NOT NULL, "
            "CONSTRAINT pk_leases PRIMARY KEY (key))"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS ix_leases_holder ON leases (holder)")

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("the leases are closed")
            # check_same_thread off only so that close() may close every thread's connection.
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
            with self._all_lock:
                self._all.append(conn)
        return conn

    def _upsert(self, key: str, holder: str, ttl: float) -> bool:
        now = _sqlite_time(0)
        expires = _sqlite_time(ttl)
        row = self._conn().execute(self._UPSERT, (key, holder, expires, now)).fetchone()
        return row is not None

    def _holder_of(self, key: str) -> str | None:
        row = self._conn().execute("SELECT holder FROM leases WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _replace(self, key: str, old: str, holder: str, ttl: float) -> bool:
        cursor = self._conn().execute(self._REPLACE, (holder, _sqlite_time(ttl), key, old))
        return cursor.rowcount == 1

    def renew(self, key: str, holder: str, ttl: float) -> bool:
        row = self._conn().execute(self._RENEW, (_sqlite_time(ttl), key, holder)).fetchone()
        if row is None:
            raise LeaseBusy(key)
        return bool(row[0])

    def renew_held(self, holder: str, ttl: float) -> dict[str, bool]:
        rows = self._conn().execute(self._RENEW_HELD, (_sqlite_time(ttl), holder)).fetchall()
        return {str(key): bool(stop) for key, stop in rows}

    def ask_stop(self, key: str) -> None:
        self._conn().execute("UPDATE leases SET stop = 1 WHERE key = ?", (key,))

    def release(self, key: str, holder: str) -> None:
        self._conn().execute("DELETE FROM leases WHERE key = ? AND holder = ?", (key, holder))

    def purge(self, grace: float) -> int:
        cursor = self._conn().execute(
            "DELETE FROM leases WHERE expires_at < ?", (_sqlite_time(-grace),)
        )
        return cursor.rowcount

    def close(self) -> None:
        self._closed = True
        with self._all_lock:
            connections, self._all = self._all, []
        for conn in connections:
            conn.close()


def _postgres_session(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # For this session only: a commit returns before its WAL is flushed to the disk.
    dbapi_connection.execute("SET synchronous_commit = off")
    dbapi_connection.commit()


class _PostgresDriver(_Driver):
    """A pool of autocommit connections of its own; see the module docstring."""

    # Times are the server's: statement_timestamp(), and make_interval for a ttl in seconds.
    _UPSERT = (
        "INSERT INTO leases (key, holder, expires_at, stop) VALUES (%(key)s, %(holder)s, "
        "statement_timestamp() + make_interval(secs => %(ttl)s), false) "
        "ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, "
        "expires_at = excluded.expires_at, stop = false "
        "WHERE leases.expires_at <= statement_timestamp() OR leases.holder = excluded.holder "
        "RETURNING true"
    )
    _REPLACE = (
        "UPDATE leases SET holder = %(holder)s, "
        "expires_at = statement_timestamp() + make_interval(secs => %(ttl)s), stop = false "
        "WHERE key = %(key)s AND holder = %(old)s"
    )
    _RENEW = (
        "UPDATE leases SET expires_at = statement_timestamp() + make_interval(secs => %(ttl)s) "
        "WHERE key = %(key)s AND holder = %(holder)s RETURNING stop"
    )
    _RENEW_HELD = (
        "UPDATE leases SET expires_at = statement_timestamp() + make_interval(secs => %(ttl)s) "
        "WHERE holder = %(holder)s RETURNING key, stop"
    )
    _PURGE = (
        "DELETE FROM leases "
        "WHERE expires_at < statement_timestamp() - make_interval(secs => %(grace)s)"
    )

    def __init__(self, url: URL, *, pool_size: int = 5) -> None:
        # No pre-ping (a round trip per checkout): a statement on a connection the server
        # dropped is retried once on a new one instead (every statement here is idempotent).
        # Autocommit: each lease statement is its own transaction, one round trip, no
        # BEGIN/COMMIT.
        self.engine: Engine = create_engine(
            url, pool_size=pool_size, max_overflow=10, isolation_level="AUTOCOMMIT"
        )
        event.listen(self.engine, "connect", _postgres_session)

    def _run(self, sql: str, params: dict[str, Any]) -> list[Any]:
        for attempt in (1, 2):
            try:
                with self.engine.connect() as conn:
                    return self._execute(conn, sql, params)
            except DBAPIError as exc:
                if attempt == 2 or not exc.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _execute(conn: Connection, sql: str, params: dict[str, Any]) -> list[Any]:
        result = conn.exec_driver_sql(sql, params)
        if not result.returns_rows:
            return [result.rowcount]
        return list(result.fetchall())

    def _upsert(self, key: str, holder: str, ttl: float) -> bool:
        return bool(self._run(self._UPSERT, {"key": key, "holder": holder, "ttl": float(ttl)}))

    def _holder_of(self, key: str) -> str | None:
        rows = self._run("SELECT holder FROM leases WHERE key = %(key)s", {"key": key})
        return str(rows[0][0]) if rows else None

    def _replace(self, key: str, old: str, holder: str, ttl: float) -> bool:
        params = {"key": key, "old": old, "holder": holder, "ttl": float(ttl)}
        return bool(self._run(self._REPLACE, params)[0] == 1)

    def renew(self, key: str, holder: str, ttl: float) -> bool:
        rows = self._run(self._RENEW, {"key": key, "holder": holder, "ttl": float(ttl)})
        if not rows:
            raise LeaseBusy(key)
        return bool(rows[0][0])

    def renew_held(self, holder: str, ttl: float) -> dict[str, bool]:
        rows = self._run(self._RENEW_HELD, {"holder": holder, "ttl": float(ttl)})
        return {str(key): bool(stop) for key, stop in rows}

    def ask_stop(self, key: str) -> None:
        self._run("UPDATE leases SET stop = true WHERE key = %(key)s", {"key": key})

    def release(self, key: str, holder: str) -> None:
        sql = "DELETE FROM leases WHERE key = %(key)s AND holder = %(holder)s"
        self._run(sql, {"key": key, "holder": holder})

    def purge(self, grace: float) -> int:
        return int(self._run(self._PURGE, {"grace": float(grace)})[0])

    def close(self) -> None:
        self.engine.dispose()


# --- The port ---


class SqlLeases:
    """``ports.Leases`` on SQLite or PostgreSQL (see the module docstring).

    Build it with :func:`open_leases`. Besides the port: :meth:`renew_held` (every lease of a
    holder in one statement, for ``services.leases.LeaseKeeper``) and :meth:`purge` (rows
    left by holders that died, for the sweeper).
    """

    def __init__(self, driver: _Driver, *, inline: bool) -> None:
        self._driver = driver
        self._inline = inline

    @classmethod
    def sqlite(cls, path: Path) -> SqlLeases:
        """Leases in the SQLite file *path* (created if missing), run inline."""
        return cls(_SqliteDriver(path), inline=True)

    @classmethod
    def postgres(cls, url: URL) -> SqlLeases:
        """Leases in the ``leases`` table (migration 0004) of the PostgreSQL at *url*."""
        return cls(_PostgresDriver(url), inline=False)

    @property
    def dialect(self) -> str:
        return "sqlite" if isinstance(self._driver, _SqliteDriver) else "postgresql"

    @property
    def sync(self) -> _Driver:
        """The same statements as blocking calls (for threads and processes of tests)."""
        return self._driver

    async def acquire(self, key: str, holder: str, ttl: float) -> bool:
        """Take *key* for *holder* for *ttl* seconds; True if it was free, expired, held by a
        dead process of this host, or already *holder*'s (then renewed, stop flag cleared)."""
        if self._inline:
            return self._driver.acquire(key, holder, ttl)
        return await to_thread.run_sync(self._driver.acquire, key, holder, ttl)

    async def renew(self, key: str, holder: str, ttl: float) -> bool:
        """Extend *holder*'s lease of *key* by *ttl* seconds from now; True if asked to stop.

        Raise ``LeaseBusy`` if *holder* does not hold *key* (it was released or taken).
        """
        if self._inline:
            return self._driver.renew(key, holder, ttl)
        return await to_thread.run_sync(self._driver.renew, key, holder, ttl)

    async def renew_held(self, holder: str, ttl: float) -> dict[str, bool]:
        """Extend every lease *holder* holds by *ttl* seconds, in one statement; answer each
        renewed key and whether someone asked its holder to stop. A key *holder* believes it
        holds but that is missing here was lost."""
        if self._inline:
            return self._driver.renew_held(holder, ttl)
        return await to_thread.run_sync(self._driver.renew_held, holder, ttl)

    async def ask_stop(self, key: str) -> None:
        """Set the stop flag of *key*'s lease, if there is one."""
        if self._inline:
            self._driver.ask_stop(key)
        else:
            await to_thread.run_sync(self._driver.ask_stop, key)

    async def release(self, key: str, holder: str) -> None:
        """Delete *holder*'s lease of *key* (nothing if it holds none)."""
        if self._inline:
            self._driver.release(key, holder)
        else:
            await to_thread.run_sync(self._driver.release, key, holder)

    async def purge(self, grace: float = 60.0) -> int:
        """Delete leases expired more than *grace* seconds ago; return how many."""
        if self._inline:
            return self._driver.purge(grace)
        return await to_thread.run_sync(self._driver.purge, grace)

    async def close(self) -> None:
        """Close the connections; the leases must not be used afterwards."""
        await to_thread.run_sync(self._driver.close)


def leases_path(database: str) -> Path:
    """The SQLite leases file beside the metadata database file *database*."""
    path = Path(database)
    return path.with_name(f"{path.stem}-leases{path.suffix or '.db'}")


def open_leases(store: SqlMetadataStore) -> SqlLeases:
    """The leases of *store* (a ``SqlMetadataStore``): beside its SQLite file, or in its
    PostgreSQL database. Raise ``ValueError`` for any other backend."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database:
            raise ValueError("SQLite leases need a database file")
        return SqlLeases.sqlite(leases_path(url.database))
    if url.get_backend_name() == "postgresql":
        return SqlLeases.postgres(url)
    raise ValueError(f"unsupported database backend {url.get_backend_name()!r}")
