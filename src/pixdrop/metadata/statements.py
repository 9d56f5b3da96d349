"""The SQL behind ``SqlMetadataStore``: one function per store method, rows to models and back.

Each function runs inside the transaction it is given (the store decides on which thread, and
whether with other writes: see ``sql.py``). The dialect differences are kept here and
commented where they matter: "insert unless present" is spelled per dialect
(``_INSERT_PART_UNLESS_PRESENT``), and foreign key violations are recognised per driver
(:func:`_is_foreign_key_violation`).

The statements on the path of every chunk are built once, at import, with bound parameters:
SQLAlchemy then only looks up their compiled form, which halves the cost of a small query.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Insert,
    Row,
    and_,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from pixdrop.errors import GrantNotFound, ImageNotFound, UploadNotFound
from pixdrop.metadata.quotas import adjust, reserve
from pixdrop.metadata.tables import (
    grants,
    images,
    upload_concat,
    upload_parts,
    uploads,
    webhook_deliveries,
    webhook_endpoints,
)
from pixdrop.models import Grant, Image, Part, Upload, UploadState

if TYPE_CHECKING:
    from pixdrop.webhooks.events import EventLog


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
        store_token=row.store_token,
        client=row.client,
        grant_id=row.grant_id,
        owner=row.owner,
        private=bool(row.private),
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
        owner=row.owner,
        private=bool(row.private),
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
        "store_token": upload.store_token,
        "client": upload.client,
        "grant_id": upload.grant_id,
        "owner": upload.owner,
        "private": upload.private,
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
        "owner": image.owner,
        "private": image.private,
    }


def _part_from_row(row: Row[Any]) -> Part:
    return Part(start=row.start, end=row.end, sha256=row.sha256, number=row.number, etag=row.etag)


# --- Statements on the path of every chunk, built once (see the module docstring). ---

_SELECT_UPLOAD = select(uploads).where(uploads.c.id == bindparam("upload_id"))
#: An upload and the part recorded for one of its chunks, if any, in one statement.
_SELECT_CHUNK_SLOT = (
    select(
        uploads,
        upload_parts.c.end.label("part_end"),
        upload_parts.c.sha256.label("part_sha256"),
        upload_parts.c.number.label("part_number"),
        upload_parts.c.etag.label("part_etag"),
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
#: Insert a part unless one starts at the same offset. A plain INSERT would raise on the
#: duplicate key, and on PostgreSQL that error aborts the whole transaction, so "insert, catch,
#: carry on" cannot work. ``ON CONFLICT DO NOTHING`` (the same SQL on both dialects, but each
#: SQLAlchemy dialect has its own ``insert``) skips the row inside the statement instead, and
#: the row count tells which way it went. Any other constraint (a foreign key) still raises.
#: The values come as parameters.
_INSERT_PART_UNLESS_PRESENT: dict[str, Insert] = {
    "sqlite": sqlite.insert(upload_parts).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(upload_parts).on_conflict_do_nothing(),
}


# --- One function per store method: each runs inside the transaction it is given. ---


def get_upload(conn: Connection, upload_id: str) -> Upload:
    row = conn.execute(_SELECT_UPLOAD, {"upload_id": upload_id}).one_or_none()
    if row is None:
        raise UploadNotFound(f"No upload {upload_id}")
    return _upload_from_row(row)


def chunk_slot(conn: Connection, upload_id: str, index: int) -> tuple[Upload, Part | None]:
    row = conn.execute(_SELECT_CHUNK_SLOT, {"upload_id": upload_id, "index": index}).one_or_none()
    if row is None:
        raise UploadNotFound(f"No upload {upload_id}")
    upload = _upload_from_row(row)
    if row.part_end is None:
        return upload, None
    start = index * upload.chunk_size
    return upload, Part(start, row.part_end, row.part_sha256, row.part_number, row.part_etag)


def list_parts(conn: Connection, upload_id: str) -> list[Part]:
    query = (
        select(upload_parts)
        .where(upload_parts.c.upload_id == upload_id)
        .order_by(upload_parts.c.start)
    )
    return [_part_from_row(row) for row in conn.execute(query)]


def _part_values(upload_id: str, part: Part) -> dict[str, Any]:
    return {
        "upload_id": upload_id,
        "start": part.start,
        "end": part.end,
        "sha256": part.sha256,
        "number": part.number,
        "etag": part.etag,
    }


def add_part(conn: Connection, upload_id: str, part: Part) -> bool:
    values = _part_values(upload_id, part)
    # Insert first, without checking that the upload exists: on SQLite a transaction that reads
    # before it writes cannot wait for the write lock. The foreign key does the check, and on
    # PostgreSQL it also locks the upload row against a concurrent delete until we commit.
    statement = _INSERT_PART_UNLESS_PRESENT[conn.dialect.name]
    try:
        # SQLAlchemy keeps the row count of an INSERT only when asked (psycopg's would be lost).
        result = conn.execute(statement.execution_options(preserve_rowcount=True), values)
        return result.rowcount == 1
    except IntegrityError as exc:
        if _is_foreign_key_violation(exc):
            raise UploadNotFound(f"No upload {upload_id}") from exc
        raise


def transition(
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


def complete_upload(
    conn: Connection, upload_id: str, image: Image, events: EventLog | None = None
) -> None:
    conn.execute(insert(images), _image_values(image))
    # The upload's reservation becomes the image's: one open upload fewer, and the image's
    # size in place of the declared one (the same but for a tus final upload, which held none).
    was = conn.execute(_SELECT_UPLOAD, {"upload_id": upload_id}).one_or_none()
    statement = (
        update(uploads)
        .where(uploads.c.id == upload_id)
        .values(state=UploadState.COMPLETED.value, image_id=image.id)
    )
    if was is None:
        raise UploadNotFound(f"No upload {upload_id}")
    if events is not None and events.wants("upload.completed", "image.created"):
        # The event shows the upload as it now is: read back by the UPDATE itself.
        row = conn.execute(statement.returning(*uploads.c)).one_or_none()
        if row is None:
            raise UploadNotFound(f"No upload {upload_id}")
        announce(conn, events.upload_completed(_upload_from_row(row), image))
    elif conn.execute(statement).rowcount != 1:
        # Raising rolls the image insert back: no image is recorded for a vanished upload.
        raise UploadNotFound(f"No upload {upload_id}")
    upload = _upload_from_row(was)
    if upload.state is not UploadState.COMPLETED:
        adjust(conn, upload.owner, image.size - upload.reserved_bytes, -1)


def received_end(conn: Connection, upload_id: str) -> int:
    return int(conn.execute(_SELECT_RECEIVED_END, {"upload_id": upload_id}).scalar_one())


def resume_point(conn: Connection, upload_id: str) -> tuple[Upload, int]:
    return get_upload(conn, upload_id), received_end(conn, upload_id)


def set_length(conn: Connection, upload_id: str, size: int) -> bool:
    statement = (
        update(uploads)
        .where(uploads.c.id == upload_id, uploads.c.length_deferred.is_(True))
        .values(size=size, length_deferred=False)
        .returning(uploads.c.owner, uploads.c.concat)
    )
    row = conn.execute(statement).one_or_none()
    if row is None:
        return False
    # A deferred upload reserved no bytes: it does now (QuotaExceeded rolls the size back).
    if not (row.concat or "").startswith("final"):
        reserve(conn, row.owner, size, 0)
    return True


def create_final(
    conn: Connection, upload: Upload, partial_ids: list[str], events: EventLog | None = None
) -> None:
    reserve(conn, upload.owner, upload.reserved_bytes, 1)
    conn.execute(insert(uploads), _upload_values(upload))
    if events is not None:
        announce(conn, events.upload_created(upload))
    rows = [
        {"final_id": upload.id, "position": i, "partial_id": p} for i, p in enumerate(partial_ids)
    ]
    if rows:
        conn.execute(insert(upload_concat), rows)


def concat_partials(conn: Connection, final_id: str) -> list[str]:
    query = (
        select(upload_concat.c.partial_id)
        .where(upload_concat.c.final_id == final_id)
        .order_by(upload_concat.c.position)
    )
    return [row.partial_id for row in conn.execute(query)]


def finals_waiting_for(conn: Connection, partial_id: str) -> list[str]:
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


def expired_uploads(conn: Connection, now: datetime, limit: int) -> list[Upload]:
    query = (
        select(uploads)
        .where(uploads.c.expires_at < now)
        .order_by(uploads.c.expires_at, uploads.c.id)
        .limit(limit)
    )
    return [_upload_from_row(row) for row in conn.execute(query)]


def get_image(conn: Connection, image_id: str) -> Image:
    row = conn.execute(_SELECT_IMAGE, {"image_id": image_id}).one_or_none()
    if row is None:
        raise ImageNotFound(f"No image {image_id}")
    return _image_from_row(row)


def list_images(
    conn: Connection, limit: int, after: tuple[datetime, str] | None, owner: str | None = None
) -> list[Image]:
    # Newest first, ties broken by id: (created_at, id) is unique, so a page that ends with a
    # row continues exactly after it, whatever is inserted or deleted meanwhile. The index
    # on (created_at, id) serves both the order and the seek.
    query = select(images).order_by(images.c.created_at.desc(), images.c.id.desc()).limit(limit)
    if owner is not None:  # served by the index on (owner, created_at, id)
        query = query.where(images.c.owner == owner)
    if after is not None:
        created_at, image_id = after
        query = query.where(
            or_(
                images.c.created_at < created_at,
                and_(images.c.created_at == created_at, images.c.id < image_id),
            )
        )
    return [_image_from_row(row) for row in conn.execute(query)]


def count_images_with_sha256(conn: Connection, sha256: str) -> int:
    query = select(func.count()).select_from(images).where(images.c.sha256 == sha256)
    return int(conn.execute(query).scalar_one())


def create_upload(
    conn: Connection,
    upload: Upload,
    parts: Sequence[Part] = (),
    image: Image | None = None,
    events: EventLog | None = None,
) -> None:
    # First (a write, so SQLite takes its lock before any read): the owner's quota.
    if image is not None:
        reserve(conn, upload.owner, image.size, 0)
    elif upload.state is not UploadState.COMPLETED:
        reserve(conn, upload.owner, upload.reserved_bytes, 1)
    if image is not None:
        conn.execute(insert(images), _image_values(image))
    conn.execute(insert(uploads), _upload_values(upload))
    if parts:
        conn.execute(insert(upload_parts), [_part_values(upload.id, part) for part in parts])
    if events is not None:
        announce(conn, events.upload_created(upload, parts, image))


def delete_upload(
    conn: Connection,
    upload_id: str,
    events: EventLog | None = None,
    ending: str | None = None,
    problem: Mapping[str, Any] | None = None,
) -> None:
    wanted = (
        events
        if ending is not None and events is not None and events.wants(f"upload.{ending}")
        else None
    )
    # Reported as the API showed it last: with the chunks it had, read before they go.
    parts = list_parts(conn, upload_id) if wanted is not None else []
    row = conn.execute(
        delete(uploads).where(uploads.c.id == upload_id).returning(*uploads.c)
    ).one_or_none()
    if row is None:
        return
    upload = _upload_from_row(row)
    # An open upload gives its reservation back; a completed one handed it to its image.
    if upload.state is not UploadState.COMPLETED:
        adjust(conn, upload.owner, -upload.reserved_bytes, -1)
    if wanted is not None and ending is not None:
        announce(conn, wanted.upload_ended(upload, parts, ending, problem))


def create_image(conn: Connection, image: Image, events: EventLog | None = None) -> None:
    reserve(conn, image.owner, image.size, 0)
    conn.execute(insert(images), _image_values(image))
    if events is not None:
        announce(conn, events.image_created(image))


def delete_image(conn: Connection, image_id: str, events: EventLog | None = None) -> None:
    statement = delete(images).where(images.c.id == image_id).returning(*images.c)
    row = conn.execute(statement).one_or_none()
    if row is None:
        return
    adjust(conn, row.owner, -row.size, 0)
    if events is not None and events.wants("image.deleted"):
        announce(conn, events.image_deleted(_image_from_row(row)))


def announce(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write events to the outbox (``webhooks/events.py``), in the caller's transaction: one
    INSERT, and none when no endpoint wants them.

    The rows name the endpoints a server knew of at its last refresh; one removed since then
    (``pixdrop webhooks remove``) is left out here, rather than failing the change reported
    on its foreign key."""
    if not rows:
        return
    named = {row["endpoint_id"] for row in rows}
    still = set(
        conn.execute(
            select(webhook_endpoints.c.id).where(webhook_endpoints.c.id.in_(named))
        ).scalars()
    )
    kept = [row for row in rows if row["endpoint_id"] in still]
    if kept:
        conn.execute(insert(webhook_deliveries), kept)


def _grant_from_row(row: Row[Any]) -> Grant:
    return Grant(
        id=row.id,
        token_hash=row.token_hash,
        created_at=row.created_at,
        expires_at=row.expires_at,
        owner=row.owner,
        max_size=row.max_size,
        formats=tuple(row.formats.split(",")) if row.formats else None,
        metadata=row.metadata,
        private=bool(row.private),
        image_id=row.image_id,
        used_at=row.used_at,
    )


def create_grant(conn: Connection, grant: Grant) -> None:
    values = {
        "id": grant.id,
        "token_hash": grant.token_hash,
        "owner": grant.owner,
        "created_at": grant.created_at,
        "expires_at": grant.expires_at,
        "max_size": grant.max_size,
        "formats": ",".join(grant.formats) if grant.formats is not None else None,
        "metadata": grant.metadata,
        "private": grant.private,
        "image_id": grant.image_id,
        "used_at": grant.used_at,
    }
    conn.execute(insert(grants), values)


def get_grant(conn: Connection, grant_id: str) -> Grant:
    row = conn.execute(select(grants).where(grants.c.id == grant_id)).one_or_none()
    if row is None:
        raise GrantNotFound(f"No grant {grant_id}")
    return _grant_from_row(row)


def claim_grant(conn: Connection, grant_id: str, image_id: str, now: datetime) -> bool:
    # One conditional UPDATE: of two uploads racing to use one grant, on any nodes, exactly
    # one sees its row change.
    statement = (
        update(grants)
        .where(grants.c.id == grant_id, grants.c.image_id.is_(None))
        .values(image_id=image_id, used_at=now)
    )
    return conn.execute(statement).rowcount == 1


def release_grant(conn: Connection, grant_id: str, image_id: str) -> None:
    statement = (
        update(grants)
        .where(grants.c.id == grant_id, grants.c.image_id == image_id)
        .values(image_id=None, used_at=None)
    )
    conn.execute(statement)


def purge_grants(conn: Connection, expired_before: datetime) -> int:
    statement = delete(grants).where(grants.c.expires_at < expired_before)
    return int(conn.execute(statement).rowcount)


def count_open_uploads(conn: Connection, client: str, now: datetime) -> int:
    query = (
        select(func.count())
        .select_from(uploads)
        .where(
            uploads.c.client == client,
            uploads.c.state != UploadState.COMPLETED.value,
            uploads.c.expires_at > now,
        )
    )
    return int(conn.execute(query).scalar_one())


def ping(conn: Connection) -> None:
    conn.execute(text("SELECT 1"))
