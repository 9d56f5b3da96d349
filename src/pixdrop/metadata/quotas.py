"""API keys and their quota accounting, in SQL: the statements behind the keys methods of
``SqlMetadataStore``, and the reservations the upload and image statements make.

A key's usage is two counters on its row (``used_bytes``, ``open_uploads``). Taking from
them is one conditional ``UPDATE ... WHERE used_bytes + :n <= quota``: the check and the
reservation are a single statement, atomic on both dialects, so two nodes racing for the last
bytes of a quota cannot both win (PostgreSQL re-evaluates the condition on the row version the
first writer committed; SQLite has one writer at a time). It is the first statement of its
transaction, so on SQLite the transaction takes the write lock before it reads anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Row,
    and_,
    bindparam,
    case,
    func,
    insert,
    or_,
    select,
    update,
)

from pixdrop.errors import QuotaExceeded
from pixdrop.metadata.tables import api_keys, images, uploads
from pixdrop.models import ApiKey, UploadState

#: A key by id: on the path of every request that carries a key.
_SELECT_KEY = select(api_keys).where(api_keys.c.id == bindparam("key_id"))

_RESERVE = (
    update(api_keys)
    .where(
        api_keys.c.id == bindparam("owner"),
        or_(
            api_keys.c.quota.is_(None),
            api_keys.c.used_bytes + bindparam("nbytes") <= api_keys.c.quota,
        ),
        or_(
            api_keys.c.max_open_uploads.is_(None),
            bindparam("nuploads") <= 0,
            api_keys.c.open_uploads + bindparam("nuploads") <= api_keys.c.max_open_uploads,
        ),
    )
    .values(
        used_bytes=api_keys.c.used_bytes + bindparam("nbytes"),
        open_uploads=api_keys.c.open_uploads + bindparam("nuploads"),
    )
)


def _floored(column: Any, name: str) -> Any:
    """``column + :name``, never below zero (a CASE: SQLite and PostgreSQL spell max apart)."""
    more = column + bindparam(name)
    return case((more < 0, 0), else_=more)


#: An unchecked change of a key's usage (giving back, or moving a reservation).
_ADJUST = (
    update(api_keys)
    .where(api_keys.c.id == bindparam("owner"))
    .values(
        used_bytes=_floored(api_keys.c.used_bytes, "nbytes"),
        open_uploads=_floored(api_keys.c.open_uploads, "nuploads"),
    )
)


def _key_from_row(row: Row[Any]) -> ApiKey:
    return ApiKey(
        id=row.id,
        name=row.name,
        secret_hash=row.secret_hash,
        scopes=tuple(s for s in row.scopes.split(",") if s),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        quota=row.quota,
        max_open_uploads=row.max_open_uploads,
        rate=row.rate,
        used_bytes=row.used_bytes,
        open_uploads=row.open_uploads,
    )


def reserve(conn: Connection, owner: str | None, nbytes: int, nuploads: int) -> None:
    """Take *nbytes* and *nuploads* from *owner*'s quota, or raise ``QuotaExceeded``
    (nothing taken). No owner, or an owner with no key row, has no quota."""
    if owner is None or (nbytes == 0 and nuploads == 0):
        return
    params = {"owner": owner, "nbytes": nbytes, "nuploads": nuploads}
    if conn.execute(_RESERVE, params).rowcount == 1:
        return
    row = conn.execute(_SELECT_KEY, {"key_id": owner}).one_or_none()
    if row is None:
        return
    key = _key_from_row(row)
    if key.quota is not None and key.used_bytes + nbytes > key.quota:
        raise QuotaExceeded(
            f"Key {owner} may hold {key.quota} bytes; it holds {key.used_bytes} (stored images "
            f"and open uploads) and this asks for {nbytes} more.",
            limit="quota",
            allowed=key.quota,
            usage=key.used_bytes,
            requested=nbytes,
        )
    raise QuotaExceeded(
        f"Key {owner} may have {key.max_open_uploads} open uploads; it has "
        f"{key.open_uploads} and this asks for {nuploads} more. Finish or abort one first.",
        limit="max_open_uploads",
        allowed=key.max_open_uploads,
        usage=key.open_uploads,
        requested=nuploads,
    )


def adjust(conn: Connection, owner: str | None, nbytes: int, nuploads: int) -> None:
    """Change *owner*'s usage by *nbytes* and *nuploads* without a check (never below zero):
    negative to give back what expired, was aborted or deleted."""
    if owner is None or (nbytes == 0 and nuploads == 0):
        return
    conn.execute(_ADJUST, {"owner": owner, "nbytes": nbytes, "nuploads": nuploads})


def _key_values(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "secret_hash": key.secret_hash,
        "scopes": ",".join(key.scopes),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "quota": key.quota,
        "max_open_uploads": key.max_open_uploads,
        "rate": key.rate,
        "used_bytes": key.used_bytes,
        "open_uploads": key.open_uploads,
    }


def create_key(conn: Connection, key: ApiKey) -> None:
    conn.execute(insert(api_keys), _key_values(key))


def get_key(conn: Connection, key_id: str) -> ApiKey | None:
    row = conn.execute(_SELECT_KEY, {"key_id": key_id}).one_or_none()
    return None if row is None else _key_from_row(row)


def list_keys(conn: Connection) -> list[ApiKey]:
    query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
    return [_key_from_row(row) for row in conn.execute(query)]


def revoke_key(conn: Connection, key_id: str, now: datetime) -> bool:
    statement = (
        update(api_keys)
        .where(and_(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)))
        .values(revoked_at=now)
    )
    return conn.execute(statement).rowcount == 1


def recount_usage(conn: Connection) -> None:
    """Set every key's usage to what the database holds: its images' sizes plus the declared
    sizes of its open uploads, and their number. For a copy that left uploads behind."""
    open_ = and_(
        uploads.c.owner == api_keys.c.id,
        uploads.c.state != UploadState.COMPLETED.value,
    )
    stored = select(func.coalesce(func.sum(images.c.size), 0)).where(
        images.c.owner == api_keys.c.id
    )
    reserved = select(func.coalesce(func.sum(uploads.c.size), 0)).where(
        open_, or_(uploads.c.concat.is_(None), ~uploads.c.concat.startswith("final"))
    )
    count = select(func.count()).select_from(uploads).where(open_)
    conn.execute(
        update(api_keys).values(
            used_bytes=stored.scalar_subquery() + reserved.scalar_subquery(),
            open_uploads=count.scalar_subquery(),
        )
    )
