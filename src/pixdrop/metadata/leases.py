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
from pathlib import Path

from anyio import to_thread
from sqlalchemy import URL

from pixdrop.holders import holder_is_dead, new_holder
from pixdrop.metadata.lease_sql import Driver, PostgresDriver, SqliteDriver
from pixdrop.metadata.sql import SqlMetadataStore

__all__ = [
    "SqlLeases",
    "holder_is_dead",
    "leases_path",
    "new_holder",
    "open_leases",
]

log = logging.getLogger("pixdrop.leases")


class SqlLeases:
    """``ports.Leases`` on SQLite or PostgreSQL (see the module docstring).

    Build it with :func:`open_leases`. Besides the port: :meth:`renew_held` (every lease of a
    holder in one statement, for ``services.leases.LeaseKeeper``) and :meth:`purge` (rows
    left by holders that died, for the sweeper).
    """

    def __init__(self, driver: Driver, *, inline: bool) -> None:
        self._driver = driver
        self._inline = inline

    @classmethod
    def sqlite(cls, path: Path) -> SqlLeases:
        """Leases in the SQLite file *path* (created if missing), run inline."""
        return cls(SqliteDriver(path), inline=True)

    @classmethod
    def postgres(cls, url: URL) -> SqlLeases:
        """Leases in the ``leases`` table (migration 0004) of the PostgreSQL at *url*."""
        return cls(PostgresDriver(url), inline=False)

    @property
    def dialect(self) -> str:
        return "sqlite" if isinstance(self._driver, SqliteDriver) else "postgresql"

    @property
    def sync(self) -> Driver:
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
