"""``SqlMetadataStore``: the metadata port on SQLite or PostgreSQL, through SQLAlchemy Core.

The store drives a *synchronous* SQLAlchemy engine: both drivers (sqlite3, psycopg) are
blocking. Every method is exactly one transaction, run on a worker thread
(``anyio.to_thread.run_sync``) with a pooled connection, so a commit's fsync or a wait for
another writer never stalls the event loop. One exception, measured: on SQLite, a lookup by
primary key (:meth:`SqlMetadataStore._lookup`) runs on the calling thread. A WAL reader takes
no lock that a writer holds, so it does not wait, and the lookup costs about 75 us there
against about 350 us through a thread (the hop, and the GIL handed back and forth), on the
path of every chunk (bench/peers/changes.md).

The statements on that path are built once, at import, with bound parameters: SQLAlchemy then
only looks up their compiled form, which halves the cost of a small query.

The dialect differences are kept here and commented where they matter:

* SQLite connections are tuned when opened (:func:`_tune_sqlite_connection`), and SQLAlchemy,
  not the sqlite3 module, emits ``BEGIN`` (:func:`_begin_sqlite_transaction`).
* "Insert unless present" is spelled per dialect (:func:`_insert_unless_present`).
* Foreign key violations are recognised per driver (:func:`_is_foreign_key_violation`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from anyio import to_thread
from sqlalchemy import (
    URL,
    Connection,
    Engine,
    Insert,
    Row,
    Table,
    and_,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.pool import ConnectionPoolEntry, SingletonThreadPool

from pixdrop.errors import ImageNotFound, UploadNotFound
from pixdrop.metadata.batching import GroupCommit
from pixdrop.metadata.tables import images, upload_concat, upload_parts, uploads
from pixdrop.models import Image, Part, Upload, UploadState

__all__ = ["SQLITE_BEGIN_OPTION", "SqlMetadataStore", "make_engine"]

T = TypeVar("T")

#: Execution option naming the statement that opens a SQLite transaction (default ``BEGIN``).
#: Migrations ask for ``BEGIN IMMEDIATE`` so that concurrent starters queue up behind one writer.
SQLITE_BEGIN_OPTION = "pixdrop_sqlite_begin"

#: How long a SQLite connection waits for another writer before failing with "database is
#: locked". Writers hold the lock for one short transaction; 30 s only bites when stuck.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def make_engine(url: URL, *, sync: bool = True) -> Engine:
    """A synchronous engine for *url* (``sqlite`` or ``postgresql+psycopg``), tuned per dialect.

    With *sync* off, commits are not flushed to the disk before they return (SQLite
    ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``): a crash of pixdrop loses
    nothing, a crash of the machine may lose the last commits. Raise ``ValueError`` for any
    other backend.
    """
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url)
        event.listen(engine, "connect", partial(_tune_sqlite_connection, sync=sync))
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    if url.get_backend_name() == "postgresql":
        # pre_ping: a connection the server dropped (restart, failover, idle timeout) is replaced
        # instead of failing the next request.
        options = {} if sync else {"options": "-c synchronous_commit=off"}
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
    conn.exec_driver_sql(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN"))


def _insert_unless_present(conn: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert *values* unless a row with the same primary key exists; True if inserted.

    A plain INSERT would raise on the duplicate key, and on PostgreSQL that error aborts the
    whole transaction, so "insert, catch, carry on" cannot work. ``ON CONFLICT DO NOTHING``
    (same SQL on both dialects, but each SQLAlchemy dialect has its own ``insert``) skips the
    row inside the statement instead, and the row count tells which way it went. Any other
    constraint (such as a foreign key) still raises.
    """
    statement: Insert
    if conn.dialect.name == "postgresql":
        statement = postgresql.insert(table).values(values).on_conflict_do_nothing()
    elif conn.dialect.name == "sqlite":
        statement = sqlite.insert(table).values(values).on_conflict_do_nothing()
    else:
        raise NotImplementedError(conn.dialect.name)
    # SQLAlchemy keeps the row count of an INSERT only when asked (psycopg's would be lost).
    return conn.execute(statement.execution_options(preserve_rowcount=True)).rowcount == 1


def _is_foreign_key_violation(exc: IntegrityError) -> bool:
    # psycopg exposes the SQLSTATE (23503 = foreign_key_violation); sqlite3 (Python >= 3.11)
    # the extended result code name.
    return (
        getattr(exc.orig, "sqlstate", None) == "23503"
        or getattr(exc.orig, "sqlite_errorname", None) == "SQLITE_CONSTRAINT_FOREIGNKEY"
    )


def _upload_from_row(row: Row[Any]) -> Upload:
    return Upload(
        id=row.id,
        size=row.size,
        chunk_size=row.chunk_size,
        state=UploadState(row.state),
        created_at=row.created_at,
        expires_at=row.expires_at,
        sha256=row.sha256,
        filename=row.filename,
        content_type=row.content_type,
        image_id=row.image_id,
        protocol=row.protocol,
        length_deferred=bool(row.length_deferred),
        upload_metadata=row.upload_metadata,
        concat=row.concat,
    )


def _image_from_row(row: Row[Any]) -> Image:
    return Image(
        id=row.id,
        sha256=row.sha256,
        size=row.size,
        content_type=row.content_type,
        format=row.format,
        width=row.width,
        height=row.height,
        created_at=row.created_at,
        delete_token_hash=row.delete_token_hash,
        filename=row.filename,
        frames=row.frames,
        orientation=row.orientation,
        has_alpha=bool(row.has_alpha),
        placeholder=row.placeholder,
        has_gps=bool(row.has_gps),
    )


def _upload_values(upload: Upload) -> dict[str, Any]:
    return {
        "id": upload.id,
        "size": upload.size,
        "chunk_size": upload.chunk_size,
        "state": upload.state.value,
        "created_at": upload.created_at,
        "expires_at": upload.expires_at,
        "sha256": upload.sha256,
        "filename": upload.filename,
        "content_type": upload.content_type,
        "image_id": upload.image_id,
        "protocol": upload.protocol,
        "length_deferred": upload.length_deferred,
        "upload_metadata": upload.upload_metadata,
        "concat": upload.concat,
    }


def _image_values(image: Image) -> dict[str, Any]:
    return {
        "id": image.id,
        "sha256": image.sha256,
        "size": image.size,
        "content_type": image.content_type,
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "created_at": image.created_at,
        "delete_token_hash": image.delete_token_hash,
        "filename": image.filename,
        "frames": image.frames,
        "orientation": image.orientation,
        "has_alpha": image.has_alpha,
        "placeholder": image.placeholder,
        "has_gps": image.has_gps,
    }


def _part_from_row(row: Row[Any]) -> Part:
    return Part(start=row.start, end=row.end, sha256=row.sha256)


# --- Statements on the path of every chunk, built once (see the module docstring). ---

_SELECT_UPLOAD = select(uploads).where(uploads.c.id == bindparam("upload_id"))
#: An upload and the part recorded for one of its chunks, if any, in one statement.
_SELECT_CHUNK_SLOT = (
    select(
        uploads,
        upload_parts.c.end.label("part_end"),
        upload_parts.c.sha256.label("part_sha256"),
    )
    .select_from(
        uploads.outerjoin(
            upload_parts,
            and_(
                upload_parts.c.upload_id == uploads.c.id,
                upload_parts.c.start == uploads.c.chunk_size * bindparam("index"),
            ),
        )
    )
    .where(uploads.c.id == bindparam("upload_id"))
)
_SELECT_RECEIVED_END = select(func.coalesce(func.max(upload_parts.c.end), 0)).where(
    upload_parts.c.upload_id == bindparam("upload_id")
)
_SELECT_IMAGE = select(images).where(images.c.id == bindparam("image_id"))
#: "Insert unless present" per dialect (see _insert_unless_present); values come as parameters.
_INSERT_PART_UNLESS_PRESENT = {
    "sqlite": sqlite.insert(upload_parts).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(upload_parts).on_conflict_do_nothing(),
}


# --- One function per store method: each runs inside the transaction it is given. ---


def _get_upload(conn: Connection, upload_id: str) -> Upload:
    row = conn.execute(_SELECT_UPLOAD, {"upload_id": upload_id}).one_or_none()
    if row is None:
        raise UploadNotFound(f"No upload {upload_id}")
    return _upload_from_row(row)


def _chunk_slot(conn: Connection, upload_id: str, index: int) -> tuple[Upload, Part | None]:
    row = conn.execute(_SELECT_CHUNK_SLOT, {"upload_id": upload_id, "index": index}).one_or_none()
    if row is None:
        raise UploadNotFound(f"No upload {upload_id}")
    upload = _upload_from_row(row)
    if row.part_end is None:
        return upload, None
    return upload, Part(index * upload.chunk_size, row.part_end, row.part_sha256)


def _list_parts(conn: Connection, upload_id: str) -> list[Part]:
    query = (
        select(upload_parts)
        .where(upload_parts.c.upload_id == upload_id)
        .order_by(upload_parts.c.start)
    )
    return [_part_from_row(row) for row in conn.execute(query)]


def _add_part(conn: Connection, upload_id: str, part: Part) -> bool:
    values = {"upload_id": upload_id, "start": part.start, "end": part.end, "sha256": part.sha256}
    # Insert first, without checking that the upload exists: on SQLite a transaction that reads
    # before it writes cannot wait for the write lock. The foreign key does the check, and on
    # PostgreSQL it also locks the upload row against a concurrent delete until we commit.
    statement = _INSERT_PART_UNLESS_PRESENT[conn.dialect.name]
    try:
        # The row count tells whether it was inserted (see _insert_unless_present).
        result = conn.execute(statement.execution_options(preserve_rowcount=True), values)
        return result.rowcount == 1
    except IntegrityError as exc:
        if _is_foreign_key_violation(exc):
            raise UploadNotFound(f"No upload {upload_id}") from exc
        raise


def _transition(
    conn: Connection, upload_id: str, from_states: Collection[UploadState], to: UploadState
) -> bool:
    # One conditional UPDATE: the check and the move are atomic, so of two racing callers
    # exactly one sees its row change.
    statement = (
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.state.in_([s.value for s in from_states]))
        .values(state=to.value)
    )
    return conn.execute(statement).rowcount == 1


def _complete_upload(conn: Connection, upload_id: str, image: Image) -> None:
    conn.execute(insert(images).values(_image_values(image)))
    statement = (
        update(uploads)
        .where(uploads.c.id == upload_id)
        .values(state=UploadState.COMPLETED.value, image_id=image.id)
    )
    if conn.execute(statement).rowcount != 1:
        # Raising rolls the image insert back: no image is recorded for a vanished upload.
        raise UploadNotFound(f"No upload {upload_id}")


def _received_end(conn: Connection, upload_id: str) -> int:
    return int(conn.execute(_SELECT_RECEIVED_END, {"upload_id": upload_id}).scalar_one())


def _resume_point(conn: Connection, upload_id: str) -> tuple[Upload, int]:
    return _get_upload(conn, upload_id), _received_end(conn, upload_id)


def _set_length(conn: Connection, upload_id: str, size: int) -> bool:
    statement = (
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.length_deferred.is_(True))
        .values(size=size, length_deferred=False)
    )
    return conn.execute(statement).rowcount == 1


def _create_final(conn: Connection, upload: Upload, partial_ids: list[str]) -> None:
    conn.execute(insert(uploads).values(_upload_values(upload)))
    rows = [
        {"final_id": upload.id, "position": i, "partial_id": p} for i, p in enumerate(partial_ids)
    ]
    if rows:
        conn.execute(insert(upload_concat), rows)


def _concat_partials(conn: Connection, final_id: str) -> list[str]:
    query = (
        select(upload_concat.c.partial_id)
        .where(upload_concat.c.final_id == final_id)
        .order_by(upload_concat.c.position)
    )
    return [row.partial_id for row in conn.execute(query)]


def _finals_waiting_for(conn: Connection, partial_id: str) -> list[str]:
    query = (
        select(upload_concat.c.final_id)
        .join(uploads, uploads.c.id == upload_concat.c.final_id)
        .where(
            upload_concat.c.partial_id == partial_id,
            uploads.c.state == UploadState.RECEIVING.value,
        )
        .distinct()
    )
    return [row.final_id for row in conn.execute(query)]


def _expired_uploads(conn: Connection, now: datetime, limit: int) -> list[Upload]:
    query = (
        select(uploads)
        .where(uploads.c.expires_at < now)
        .order_by(uploads.c.expires_at, uploads.c.id)
        .limit(limit)
    )
    return [_upload_from_row(row) for row in conn.execute(query)]


def _get_image(conn: Connection, image_id: str) -> Image:
    row = conn.execute(_SELECT_IMAGE, {"image_id": image_id}).one_or_none()
    if row is None:
        raise ImageNotFound(f"No image {image_id}")
    return _image_from_row(row)


def _count_images_with_sha256(conn: Connection, sha256: str) -> int:
    query = select(func.count()).select_from(images).where(images.c.sha256 == sha256)
    return int(conn.execute(query).scalar_one())


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
            self._lookups = create_engine(engine.url, poolclass=SingletonThreadPool)
            event.listen(self._lookups, "connect", _tune_sqlite_connection)
            event.listen(self._lookups, "begin", _begin_sqlite_transaction)

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
            with self._lookups.begin() as conn:
                return operation(conn)
        return await self._run(operation)

    async def create_upload(self, upload: Upload) -> None:
        """Record a new upload; raise ``IntegrityError`` if its id is taken."""
        await self._write(lambda conn: conn.execute(insert(uploads).values(_upload_values(upload))))

    async def get_upload(self, upload_id: str) -> Upload:
        """Return the upload; raise ``UploadNotFound`` if there is none."""
        return await self._lookup(partial(_get_upload, upload_id=upload_id))

    async def list_parts(self, upload_id: str) -> list[Part]:
        """The recorded parts of an upload, ordered by start offset (empty if none)."""
        return await self._run(partial(_list_parts, upload_id=upload_id))

    async def chunk_slot(self, upload_id: str, index: int) -> tuple[Upload, Part | None]:
        """The upload and the part recorded for its chunk *index* (or ``None``), read together.

        Raise ``UploadNotFound`` if the upload does not exist.
        """
        return await self._lookup(partial(_chunk_slot, upload_id=upload_id, index=index))

    async def add_part(self, upload_id: str, part: Part) -> bool:
        """Record *part*; False if one already starts there (kept as it was).

        Raise ``UploadNotFound`` if the upload does not exist.
        """
        return await self._write(partial(_add_part, upload_id=upload_id, part=part))

    async def transition(
        self, upload_id: str, from_states: Collection[UploadState], to: UploadState
    ) -> bool:
        """Move the upload to *to* if it is in one of *from_states*; True if it moved."""
        operation = partial(_transition, upload_id=upload_id, from_states=from_states, to=to)
        return await self._write(operation)

    async def complete_upload(self, upload_id: str, image: Image) -> None:
        """Record *image* and mark the upload completed with its id, in one transaction.

        Raise ``UploadNotFound`` (recording nothing) if the upload does not exist.
        """
        await self._write(partial(_complete_upload, upload_id=upload_id, image=image))

    async def delete_upload(self, upload_id: str) -> None:
        """Delete the upload and, by cascade, its parts (no error if absent)."""
        statement = delete(uploads).where(uploads.c.id == upload_id)
        await self._write(lambda conn: conn.execute(statement))

    async def received_end(self, upload_id: str) -> int:
        """The end of the last recorded part (0 if none): a resumable upload's offset."""
        return await self._lookup(partial(_received_end, upload_id=upload_id))

    async def resume_point(self, upload_id: str) -> tuple[Upload, int]:
        """The upload and its ``received_end``, read together; ``UploadNotFound`` if none."""
        return await self._lookup(partial(_resume_point, upload_id=upload_id))

    async def set_length(self, upload_id: str, size: int) -> bool:
        """Fix the size of an upload whose length was deferred; False if it was not deferred."""
        return await self._write(partial(_set_length, upload_id=upload_id, size=size))

    async def create_final(self, upload: Upload, partial_ids: list[str]) -> None:
        """Record a final upload and the partial uploads it joins, in order, in one transaction."""
        await self._write(partial(_create_final, upload=upload, partial_ids=partial_ids))

    async def concat_partials(self, final_id: str) -> list[str]:
        """The partial upload ids a final upload joins, in order."""
        return await self._run(partial(_concat_partials, final_id=final_id))

    async def finals_waiting_for(self, partial_id: str) -> list[str]:
        """Ids of final uploads, still receiving, that join *partial_id*."""
        return await self._run(partial(_finals_waiting_for, partial_id=partial_id))

    async def expired_uploads(self, now: datetime, limit: int) -> list[Upload]:
        """Uploads that expire before *now*, soonest first, at most *limit*.

        Raise ``ValueError`` if *now* is naive.
        """
        return await self._run(partial(_expired_uploads, now=now, limit=limit))

    async def get_image(self, image_id: str) -> Image:
        """Return the image; raise ``ImageNotFound`` if there is none."""
        return await self._lookup(partial(_get_image, image_id=image_id))

    async def create_image(self, image: Image) -> None:
        """Record a new image; raise ``IntegrityError`` if its id is taken."""
        await self._write(lambda conn: conn.execute(insert(images).values(_image_values(image))))

    async def delete_image(self, image_id: str) -> None:
        """Delete the image record (no error if absent)."""
        await self._write(lambda conn: conn.execute(delete(images).where(images.c.id == image_id)))

    async def count_images_with_sha256(self, sha256: str) -> int:
        """How many image records reference the blob *sha256*."""
        return await self._run(partial(_count_images_with_sha256, sha256=sha256))

    async def ping(self) -> None:
        """Raise (``sqlalchemy.exc.OperationalError``) if the database cannot be reached."""
        await self._run(lambda conn: conn.execute(text("SELECT 1")))

    async def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        await to_thread.run_sync(self._engine.dispose)
        if self._lookups is not None:
            self._lookups.dispose()
