"""``SqlMetadataStore``: the metadata port on SQLite or PostgreSQL, through SQLAlchemy Core.

The store drives a *synchronous* SQLAlchemy engine: both drivers (sqlite3, psycopg) are
blocking. Every method is exactly one transaction, run on a worker thread
(``anyio.to_thread.run_sync``) with a pooled connection, so a commit's fsync or a wait for
another writer never stalls the event loop. One exception, measured: on SQLite, a lookup by
primary key (:meth:`SqlMetadataStore._lookup`) runs on the calling thread. A WAL reader takes
no lock that a writer holds, so it does not wait, and the lookup costs about 75 us there
against about 350 us through a thread (the hop, and the GIL handed back and forth), on the
path of every chunk (bench/peers/changes.md). Each thread that looks up keeps its connection
between lookups, as the group commit keeps its own: a pool checkout and return cost more
than a lookup's statement (a read transaction 58 -> 22 us of CPU, measured).

On SQLite, the writes of one process are committed in groups (``batching.py``). The SQL
itself, one function per method, is in ``statements.py``. SQLite connections are tuned when
opened (:func:`_tune_sqlite_connection`), and SQLAlchemy, not the sqlite3 module, emits
``BEGIN`` (:func:`_begin_sqlite_transaction`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from anyio import to_thread
from sqlalchemy import (
    URL,
    Connection,
    Engine,
    create_engine,
    event,
)
from sqlalchemy.pool import ConnectionPoolEntry, Pool, SingletonThreadPool

from pixdrop.metadata import quotas
from pixdrop.metadata import statements as q
from pixdrop.metadata.batching import GroupCommit
from pixdrop.models import ApiKey, Grant, Image, Part, Upload, UploadState

if TYPE_CHECKING:
    from pixdrop.webhooks.events import EventLog

__all__ = ["SQLITE_BEGIN_OPTION", "SqlMetadataStore", "make_engine"]

T = TypeVar("T")

#: Execution option naming the statement that opens a SQLite transaction (default ``BEGIN``).
#: Migrations ask for ``BEGIN IMMEDIATE`` so that concurrent starters queue up behind one writer.
SQLITE_BEGIN_OPTION = "pixdrop_sqlite_begin"

#: How long a SQLite connection waits for another writer before failing with "database is
#: locked". Writers hold the lock for one short transaction; 30 s only bites when stuck.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: URL, *, sync: bool = True, poolclass: type[Pool] | None = None) -> Engine:
    """A synchronous engine for *url* (``sqlite`` or ``postgresql+psycopg``), tuned per dialect.

    With *sync* off, commits are not flushed to the disk before they return (SQLite
    ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``): a crash of pixdrop loses
    nothing, a crash of the machine may lose the last commits. Raise ``ValueError`` for any
    other backend.
    """
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, poolclass=poolclass)
        event.listen(engine, "connect", partial(_tune_sqlite_connection, sync=sync))
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    if url.get_backend_name() == "postgresql":
        # pre_ping: a connection the server dropped (restart, failover, idle timeout) is replaced
        # instead of failing the next request.
        options: dict[str, str] = {}
        if not sync:
            # Added to (not replacing) any options the URL carries, such as a search_path.
            given = url.query.get("options", "")
            given = given if isinstance(given, str) else " ".join(given)
            options["options"] = f"{given} -c synchronous_commit=off".strip()
        return create_engine(url, pool_pre_ping=True, connect_args=options)
    raise ValueError(f"unsupported database backend {url.get_backend_name()!r}")


def _tune_sqlite_connection(
    dbapi_connection: Any, _record: ConnectionPoolEntry, *, sync: bool = True
) -> None:
    # Let SQLAlchemy emit BEGIN itself (see _begin_sqlite_transaction): the sqlite3 module's
    # legacy mode starts transactions only before INSERT/UPDATE/DELETE, so reads and DDL
    # would otherwise run outside the transaction they are written in.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # First, so that the pragmas below already wait for a lock rather than fail at once when
    # several processes open the file together.
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    # WAL: readers never block the writer nor the writer the readers, and a commit is one
    # append to the log. The mode is stored in the file; setting it again is a no-op.
    cursor.execute("PRAGMA journal_mode = WAL")
    # FULL syncs the log on every commit. WAL's usual NORMAL could lose the last commits on
    # power loss, and a record we acknowledged to a client must survive that.
    # With --no-fsync, NORMAL: WAL commits survive a crash of pixdrop, not of the machine.
    cursor.execute(f"PRAGMA synchronous = {'FULL' if sync else 'NORMAL'}")
    # SQLite ignores foreign keys unless asked, per connection; parts rely on ON DELETE CASCADE
    # and on the reference to their upload.
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _begin_sqlite_transaction(conn: Connection) -> None:
    # A deferred BEGIN takes no lock until the first statement. Store methods that write do so
    # in their first statement, which waits for the write lock (busy_timeout) instead of
    # failing: only a transaction that has already *read* cannot wait for it.
    # Straight to the driver: SQLAlchemy's statement machinery cost more than the BEGIN.
    begin = conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN")
    conn.connection.driver_connection.execute(begin)  # type: ignore[union-attr]


class SqlMetadataStore:
    """``MetadataStore`` on a SQLAlchemy engine (SQLite or PostgreSQL); see the module docstring.

    Build it with :func:`pixdrop.metadata.open_metadata_store`, which also migrates the schema.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        # Inline lookups get a connection of their own (one, for the event loop's thread):
        # taken from the shared pool, a lookup could wait, blocking the loop, for a connection
        # that a worker thread holds while it waits for the write lock.
        self._lookups: Engine | None = None
        # SQLite writes of this process are committed in groups (see batching.py).
        self._writes: GroupCommit | None = None
        if engine.dialect.name == "sqlite":
            self._writes = GroupCommit(engine)
            self._lookups = make_engine(engine.url, poolclass=SingletonThreadPool)
        # The lookup connection each thread holds (closed by close()).
        self._local = threading.local()
        self._held: list[Connection] = []
        #: Set by the composition root when webhooks are on: the changes below then write
        #: their events to the outbox in their own transaction (``webhooks/events.py``).
        self.events: EventLog | None = None

    @property
    def engine(self) -> Engine:
        """The engine, for components that share the database (e.g. PostgreSQL locks)."""
        return self._engine

    async def _run(self, operation: Callable[[Connection], T]) -> T:
        def in_transaction() -> T:
            with self._engine.begin() as conn:
                return operation(conn)

        # Not abandoned on cancellation: the caller waits for the thread, so it never walks
        # away from a transaction whose outcome (committed or not) it cannot know.
        return await to_thread.run_sync(in_transaction)

    async def _write(self, operation: Callable[[Connection], T]) -> T:
        """Run a write: with other writes of this process on SQLite, else as :meth:`_run`."""
        if self._writes is not None:
            return await self._writes.run(operation)
        return await self._run(operation)

    async def _lookup(self, operation: Callable[[Connection], T]) -> T:
        """Run a read of a few rows by primary key: inline on SQLite, else as :meth:`_run`."""
        if self._lookups is not None:
            conn = self._lookup_connection(self._lookups)
            with conn.begin():
                return operation(conn)
        return await self._run(operation)

    def _lookup_connection(self, lookups: Engine) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = self._local.conn = lookups.connect()
            self._held.append(conn)
        return conn

    async def create_upload(
        self, upload: Upload, *, parts: Sequence[Part] = (), image: Image | None = None
    ) -> None:
        """Record a new upload, with its *parts* and *image* if given, in one transaction;
        raise ``IntegrityError`` (recording nothing) if an id is taken."""
        operation = partial(
            q.create_upload, upload=upload, parts=parts, image=image, events=self.events
        )
        await self._write(operation)

    async def get_upload(self, upload_id: str) -> Upload:
        """Return the upload; raise ``UploadNotFound`` if there is none."""
        return await self._lookup(partial(q.get_upload, upload_id=upload_id))

    async def list_parts(self, upload_id: str) -> list[Part]:
        """The recorded parts of an upload, ordered by start offset (empty if none)."""
        return await self._run(partial(q.list_parts, upload_id=upload_id))

    async def chunk_slot(self, upload_id: str, index: int) -> tuple[Upload, Part | None]:
        """The upload and the part recorded for its chunk *index* (or ``None``), read together.

        Raise ``UploadNotFound`` if the upload does not exist.
        """
        return await self._lookup(partial(q.chunk_slot, upload_id=upload_id, index=index))

    async def add_part(self, upload_id: str, part: Part) -> bool:
        """Record *part*; False if one already starts there (kept as it was).

        Raise ``UploadNotFound`` if the upload does not exist.
        """
        return await self._write(partial(q.add_part, upload_id=upload_id, part=part))

    async def transition(
        self, upload_id: str, from_states: Collection[UploadState], to: UploadState
    ) -> bool:
        """Move the upload to *to* if it is in one of *from_states*; True if it moved."""
        operation = partial(q.transition, upload_id=upload_id, from_states=from_states, to=to)
        return await self._write(operation)

    async def complete_upload(self, upload_id: str, image: Image) -> None:
        """Record *image* and mark the upload completed with its id, in one transaction.

        Raise ``UploadNotFound`` (recording nothing) if the upload does not exist.
        """
        operation = partial(q.complete_upload, upload_id=upload_id, image=image, events=self.events)
        await self._write(operation)

    async def delete_upload(
        self,
        upload_id: str,
        *,
        ending: str | None = None,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        """Delete the upload and, by cascade, its parts (no error if absent).

        *ending* (``expired`` or ``refused``, with the *problem*) says why, for webhooks.
        """
        operation = partial(
            q.delete_upload,
            upload_id=upload_id,
            events=self.events,
            ending=ending,
            problem=problem,
        )
        await self._write(operation)

    async def received_end(self, upload_id: str) -> int:
        """The end of the last recorded part (0 if none): a resumable upload's offset."""
        return await self._lookup(partial(q.received_end, upload_id=upload_id))

    async def resume_point(self, upload_id: str) -> tuple[Upload, int]:
        """The upload and its ``received_end``, read together; ``UploadNotFound`` if none."""
        return await self._lookup(partial(q.resume_point, upload_id=upload_id))

    async def set_length(self, upload_id: str, size: int) -> bool:
        """Fix the size of an upload whose length was deferred; False if it was not deferred."""
        return await self._write(partial(q.set_length, upload_id=upload_id, size=size))

    async def create_final(self, upload: Upload, partial_ids: list[str]) -> None:
        """Record a final upload and the partial uploads it joins, in order, in one transaction."""
        operation = partial(
            q.create_final, upload=upload, partial_ids=partial_ids, events=self.events
        )
        await self._write(operation)

    async def concat_partials(self, final_id: str) -> list[str]:
        """The partial upload ids a final upload joins, in order."""
        return await self._run(partial(q.concat_partials, final_id=final_id))

    async def finals_waiting_for(self, partial_id: str) -> list[str]:
        """Ids of final uploads, still receiving, that join *partial_id*."""
        return await self._run(partial(q.finals_waiting_for, partial_id=partial_id))

    async def expired_uploads(self, now: datetime, limit: int) -> list[Upload]:
        """Uploads that expire before *now*, soonest first, at most *limit*.

        Raise ``ValueError`` if *now* is naive.
        """
        return await self._run(partial(q.expired_uploads, now=now, limit=limit))

    async def get_image(self, image_id: str) -> Image:
        """Return the image; raise ``ImageNotFound`` if there is none."""
        return await self._lookup(partial(q.get_image, image_id=image_id))

    async def create_image(self, image: Image) -> None:
        """Record a new image; raise ``IntegrityError`` if its id is taken."""
        await self._write(partial(q.create_image, image=image, events=self.events))

    async def delete_image(self, image_id: str) -> None:
        """Delete the image record (no error if absent)."""
        await self._write(partial(q.delete_image, image_id=image_id, events=self.events))

    async def list_images(
        self, limit: int, after: tuple[datetime, str] | None = None, owner: str | None = None
    ) -> list[Image]:
        """Images newest first, at most *limit*, those after *after* (``(created_at, id)``);
        only *owner*'s if given."""
        return await self._run(partial(q.list_images, limit=limit, after=after, owner=owner))

    async def create_key(self, key: ApiKey) -> None:
        """Record a new API key; raise ``IntegrityError`` if its id is taken."""
        await self._write(partial(quotas.create_key, key=key))

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this public id, revoked and expired ones included; None if none."""
        return await self._lookup(partial(quotas.get_key, key_id=key_id))

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""
        return await self._run(quotas.list_keys)

    async def revoke_key(self, key_id: str, now: datetime) -> bool:
        """Mark the key revoked at *now*; False if there is none or it was revoked already."""
        return await self._write(partial(quotas.revoke_key, key_id=key_id, now=now))

    async def count_images_with_sha256(self, sha256: str) -> int:
        """How many image records reference the blob *sha256*."""
        return await self._run(partial(q.count_images_with_sha256, sha256=sha256))

    async def create_grant(self, grant: Grant) -> None:
        """Record a new direct-upload grant; raise ``IntegrityError`` if its id is taken."""
        await self._write(partial(q.create_grant, grant=grant))

    async def get_grant(self, grant_id: str) -> Grant:
        """Return the grant; raise ``GrantNotFound`` if there is none."""
        return await self._run(partial(q.get_grant, grant_id=grant_id))

    async def claim_grant(self, grant_id: str, image_id: str, now: datetime) -> bool:
        """Mark the grant used by *image_id* unless it already made an image; True if this
        call claimed it (atomic: of racing callers, exactly one wins)."""
        operation = partial(q.claim_grant, grant_id=grant_id, image_id=image_id, now=now)
        return await self._write(operation)

    async def release_grant(self, grant_id: str, image_id: str) -> None:
        """Undo :meth:`claim_grant` by *image_id* (whose recording failed); else nothing."""
        await self._write(partial(q.release_grant, grant_id=grant_id, image_id=image_id))

    async def purge_grants(self, expired_before: datetime) -> int:
        """Delete the grants that expired before *expired_before*; return how many."""
        return await self._write(partial(q.purge_grants, expired_before=expired_before))

    async def count_open_uploads(self, client: str, now: datetime) -> int:
        """How many unfinished, unexpired uploads the client address *client* opened."""
        return await self._run(partial(q.count_open_uploads, client=client, now=now))

    async def ping(self) -> None:
        """Raise (``sqlalchemy.exc.OperationalError``) if the database cannot be reached."""
        await self._run(q.ping)

    async def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        if self._writes is not None:
            await to_thread.run_sync(self._writes.close)
        await to_thread.run_sync(self._engine.dispose)
        for conn in self._held:
            conn.close()
        self._held.clear()
        if self._lookups is not None:
            self._lookups.dispose()
