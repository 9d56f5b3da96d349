"""The statements of ``SqlLeases`` (PostgreSQL), as blocking calls (see ``leases.py`` for the
design: one upsert to acquire, a compare-and-swap to take over from a dead holder, autocommit,
no durability needed)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import ConnectionPoolEntry

from pixdrop.holders import holder_is_dead
from pixdrop.ports import LeaseBusy

__all__ = ["PostgresDriver"]


def _postgres_session(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # For this session only: a commit returns before its WAL is flushed to the disk.
    dbapi_connection.execute("SET synchronous_commit = off")
    dbapi_connection.commit()


class PostgresDriver:
    """The lease statements on a pool of autocommit connections of its own; each method is
    synchronous and thread-safe (see the module docstring)."""

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

    def acquire(self, key: str, holder: str, ttl: float) -> bool:
        if self._upsert(key, holder, ttl):
            return True
        current = self._holder_of(key)
        if current is None:  # released in between: one more try
            return self._upsert(key, holder, ttl)
        if holder_is_dead(current):
            return self._replace(key, current, holder, ttl)
        return False

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
