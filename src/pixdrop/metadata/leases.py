"""The ``Leases`` port's backends, and ``open_leases``, which picks one for a metadata store.

* PostgreSQL (many nodes): ``SqlLeases``. A lease is a row of ``leases`` (see ``tables.py``):
  a key, its holder, when it expires, and a flag a newer request sets to ask the holder to
  stop. Every method is one short statement in its own transaction (autocommit), except a
  failed ``acquire``, which reads who holds the key and may then take it over with a
  compare-and-swap on the holder (only one of several takers can swap out the same holder).
  No connection is held between calls. Acquiring is one upsert, atomic::

      INSERT ... ON CONFLICT (key) DO UPDATE SET holder = excluded.holder, ...
      WHERE leases.expires_at <= now OR leases.holder = excluded.holder  RETURNING true

  A holder on this host whose process is gone counts as expired (``holders.holder_is_dead``),
  so after a ``kill -9`` and a restart nothing waits for a lease's time to live to run out;
  a holder on another node that died loses its leases when they lapse. Leases need no
  durability (after a crash their holders are dead anyway): the engine runs with
  ``synchronous_commit = off``, and times are the server's clock (``statement_timestamp()``),
  so nodes whose clocks disagree still agree on expiry. Calls run on worker threads.
* SQLite (one machine): ``FileLeases`` (``file_leases.py``): kernel file locks, with stop
  requests in a small table beside the database.
"""

from __future__ import annotations

from pathlib import Path

from anyio import to_thread
from sqlalchemy import URL, make_url

from pixdrop.holders import holder_is_dead, new_holder
from pixdrop.metadata.file_leases import MACHINE_TTL, FileLeases, other_machines
from pixdrop.metadata.lease_sql import PostgresDriver
from pixdrop.metadata.sql import SqlMetadataStore

__all__ = [
    "FileLeases",
    "SharedDatabaseError",
    "SqlLeases",
    "holder_is_dead",
    "leases_paths",
    "new_holder",
    "open_leases",
    "refuse_other_machines",
]


class SqlLeases:
    """``ports.Leases`` on PostgreSQL (see the module docstring).

    Build it with :func:`open_leases`. Besides the port: :meth:`renew_held` (every lease of a
    holder in one statement, for ``services.leases.LeaseKeeper``) and :meth:`purge` (rows
    left by holders that died, for the sweeper).
    """

    def __init__(self, driver: PostgresDriver) -> None:
        self._driver = driver

    @classmethod
    def postgres(cls, url: URL) -> SqlLeases:
        """Leases in the ``leases`` table (migration 0004) of the PostgreSQL at *url*."""
        return cls(PostgresDriver(url))

    async def acquire(self, key: str, holder: str, ttl: float) -> bool:
        """Take *key* for *holder* for *ttl* seconds; True if it was free, expired, held by a
        dead process of this host, or already *holder*'s (then renewed, stop flag cleared)."""
        return await to_thread.run_sync(self._driver.acquire, key, holder, ttl)

    async def renew(self, key: str, holder: str, ttl: float) -> bool:
        """Extend *holder*'s lease of *key* by *ttl* seconds from now; True if asked to stop.

        Raise ``LeaseBusy`` if *holder* does not hold *key* (it was released or taken).
        """
        return await to_thread.run_sync(self._driver.renew, key, holder, ttl)

    async def renew_held(self, holder: str, ttl: float) -> dict[str, bool]:
        """Extend every lease *holder* holds by *ttl* seconds, in one statement; answer each
        renewed key and whether someone asked its holder to stop. A key *holder* believes it
        holds but that is missing here was lost."""
        return await to_thread.run_sync(self._driver.renew_held, holder, ttl)

    async def ask_stop(self, key: str) -> None:
        """Set the stop flag of *key*'s lease, if there is one."""
        await to_thread.run_sync(self._driver.ask_stop, key)

    async def release(self, key: str, holder: str) -> None:
        """Delete *holder*'s lease of *key* (nothing if it holds none)."""
        await to_thread.run_sync(self._driver.release, key, holder)

    async def purge(self, grace: float = 60.0) -> int:
        """Delete leases expired more than *grace* seconds ago; return how many."""
        return await to_thread.run_sync(self._driver.purge, grace)

    async def close(self) -> None:
        """Close the connections; the leases must not be used afterwards."""
        await to_thread.run_sync(self._driver.close)


def leases_paths(database: str) -> tuple[Path, Path]:
    """The lock file and the stop-request database of ``FileLeases``, beside the SQLite
    metadata database file *database*."""
    path = Path(database)
    return path.with_name(f"{path.stem}-leases.lock"), path.with_name(f"{path.stem}-leases.db")


class SharedDatabaseError(Exception):
    """A SQLite database another machine serves too (see ``file_leases.other_machines``)."""


def refuse_other_machines(database_url: str) -> None:
    """Raise ``SharedDatabaseError`` if *database_url* is a SQLite file another machine
    served within the last ``MACHINE_TTL`` seconds: SQLite and the file leases beside it
    serve one machine; several nodes need PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database:
        return
    others = other_machines(leases_paths(url.database)[1])
    if others:
        seen = ", ".join(f"{m.host} ({m.seconds_ago:.0f} s ago)" for m in others)
        raise SharedDatabaseError(
            f"the SQLite database {url.database} is in use by another machine: {seen}. "
            "SQLite serves one machine only; to run several nodes, give them all one "
            "--database-url postgresql://... (see docs/deploy.md). If that machine has "
            f"stopped serving, start again after {MACHINE_TTL:.0f} s."
        )


def open_leases(store: SqlMetadataStore) -> SqlLeases | FileLeases:
    """The leases of *store*: kernel file locks beside its SQLite file (one machine), or rows
    in its PostgreSQL database (many nodes). Raise ``ValueError`` for any other backend."""
    url = store.engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database:
            raise ValueError("SQLite leases need a database file")
        return FileLeases(*leases_paths(url.database))
    if url.get_backend_name() == "postgresql":
        return SqlLeases.postgres(url)
    raise ValueError(f"unsupported database backend {url.get_backend_name()!r}")
