"""The statements of ``SqlLeases``, per dialect, as blocking calls (see ``leases.py`` for the
design: one upsert to acquire, a compare-and-swap to take over from a dead holder, autocommit,
no durability needed)."""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from pixdrop.holders import holder_is_dead
from pixdrop.ports import LeaseBusy

__all__ = ["Driver", "PostgresDriver", "SqliteDriver"]

#: How long a SQLite lease statement waits for another one's write lock. They take
#: microseconds; this only bites if a process is stuck while holding the lock.
SQLITE_BUSY_TIMEOUT_MS = 5_000


class Driver(ABC):
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


def _sqlite_text(moment: datetime) -> str:
    return moment.isoformat(" ", timespec="microseconds")


def _sqlite_time(seconds_from_now: float) -> str:
    # The text SQLAlchemy's DateTime stores on SQLite (naive UTC, always with microseconds),
    # so that the values compare as text in time order and read back as ``UtcDateTime``.
    moment = datetime.now(UTC).replace(tzinfo=None) + timedelta(seconds=seconds_from_now)
    return moment.isoformat(" ", timespec="microseconds")


class SqliteDriver(Driver):
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
        # Every process creates it if missing (one statement, so concurrent starters do not
        # collide): ``leases`` as in tables.py, stored WITHOUT ROWID and with no other index,
        # so an acquire or a release writes one b-tree page, not three (measured: 43 -> 23 us
        # per acquire + release). The table holds only live leases, so renewing by holder
        # scans a handful of rows.
        conn.execute(
            "CREATE TABLE IF NOT EXISTS leases ("
            "key VARCHAR(128) NOT NULL, holder VARCHAR(128) NOT NULL, "
            "expires_at DATETIME NOT NULL, stop BOOLEAN DEFAULT 0 NOT NULL, "
            "CONSTRAINT pk_leases PRIMARY KEY (key)) WITHOUT ROWID"
        )

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
        now = datetime.now(UTC).replace(tzinfo=None)
        expires = _sqlite_text(now + timedelta(seconds=ttl))
        now_text = _sqlite_text(now)
        row = self._conn().execute(self._UPSERT, (key, holder, expires, now_text)).fetchone()
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


class PostgresDriver(Driver):
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
