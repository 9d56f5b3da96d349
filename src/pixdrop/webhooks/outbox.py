"""The SQL of webhooks: endpoints, and the outbox of deliveries (``webhook_deliveries``).

The rows are written by the metadata store with the changes they report
(``metadata/statements.py``, ``announce``); this module reads and settles them. Claiming
(:func:`claim`) marks the rows it returns as held until *hold_until*, so no other sender takes
them meanwhile; on PostgreSQL it locks them ``FOR UPDATE SKIP LOCKED`` while it does, so that
senders on several nodes pass each other by. A row whose resource has an earlier pending row
for the same endpoint waits: the events of one upload or image arrive in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from anyio import to_thread
from sqlalchemy import Connection, Engine, and_, delete, exists, func, insert, select, update
from sqlalchemy.orm import aliased

from pixdrop.metadata.sql import SQLITE_BEGIN_OPTION
from pixdrop.metadata.tables import webhook_deliveries as deliveries
from pixdrop.metadata.tables import webhook_endpoints as endpoints
from pixdrop.models import new_id
from pixdrop.webhooks.events import EVENT_TYPES, Subscription
from pixdrop.webhooks.signing import check_secret, new_secret

__all__ = ["STATES", "Delivery", "Endpoint", "InvalidEndpoint", "Outbox", "new_endpoint"]

#: A delivery's states (the ``state`` check of ``webhook_deliveries``).
STATES = ("pending", "delivered", "failed")
#: An endpoint's URL: http or https, a host, printable ASCII only, at most 2000 characters
#: (``new_endpoint`` checks it, the published schema states it: ``http/schemas.py``).
URL_PATTERN = r"^[hH][tT][tT][pP][sS]?://[!-.0-~][!-~]{0,1990}$"
#: A signing secret as ``signing.check_secret`` takes it: base64 of 24 to 64 bytes.
_B64 = "[A-Za-z0-9+/]"
SECRET_PATTERN = (
    rf"^whsec_((?:{_B64}{{4}}){{8,20}}(?:{_B64}{{2}}==|{_B64}{{3}}=|{_B64}{{4}})?"
    rf"|(?:{_B64}{{4}}){{21}}{_B64}{{2}}==)$"
)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    url: str
    events: tuple[str, ...]
    secret: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Delivery:
    """One event for one endpoint: what the sender needs, and what the CLI shows."""

    seq: int
    event_id: str
    event_type: str
    endpoint_id: str
    url: str
    secret: str
    resource: str
    payload: str
    state: str
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None


class InvalidEndpoint(ValueError):
    """What :func:`new_endpoint` refuses: *field* (``url``, ``events``, ``secret``) and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def new_endpoint(url: str, events: Sequence[str], secret: str | None, now: datetime) -> Endpoint:
    """An endpoint to add (``pixdrop webhooks add`` and ``POST /v1/webhooks`` both): *events*
    are known event types (``*`` among them: all); *url* is http(s); *secret* is a valid
    ``whsec_`` one, or ``None`` for a new random one. Raise :class:`InvalidEndpoint`."""
    wanted = list(EVENT_TYPES) if "*" in events else list(events)
    unknown = [e for e in wanted if e not in EVENT_TYPES]
    if not wanted or unknown:
        raise InvalidEndpoint(
            "events",
            f"unknown event type(s) {', '.join(unknown) or '(none given)'}; "
            f"known: {', '.join(EVENT_TYPES)}, or '*' for all",
        )
    if re.fullmatch(URL_PATTERN, url) is None:
        raise InvalidEndpoint("url", "the URL must be http:// or https:// and a host (ASCII)")
    try:
        secret = check_secret(secret) if secret is not None else new_secret()
    except ValueError as exc:
        raise InvalidEndpoint("secret", str(exc)) from None
    return Endpoint(new_id(), url, tuple(dict.fromkeys(wanted)), secret, now)


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(row.id, row.url, tuple(row.events.split(",")), row.secret, row.created_at)


_DELIVERY_COLUMNS = (*deliveries.c, endpoints.c.url, endpoints.c.secret)


def _delivery(row: Any) -> Delivery:
    return Delivery(
        seq=row.seq,
        event_id=row.event_id,
        event_type=row.event_type,
        endpoint_id=row.endpoint_id,
        url=row.url,
        secret=row.secret,
        resource=row.resource,
        payload=row.payload,
        state=row.state,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at,
        last_status=row.last_status,
        last_error=row.last_error,
    )


def _joined() -> Any:
    return select(*_DELIVERY_COLUMNS).join(endpoints, endpoints.c.id == deliveries.c.endpoint_id)


# --- one function per operation, each inside the transaction it is given ---------------------


def add_endpoint(conn: Connection, endpoint: Endpoint) -> None:
    values = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": ",".join(endpoint.events),
        "secret": endpoint.secret,
        "created_at": endpoint.created_at,
    }
    conn.execute(insert(endpoints).values(values))


def list_endpoints(conn: Connection) -> list[Endpoint]:
    rows = conn.execute(select(endpoints).order_by(endpoints.c.created_at, endpoints.c.id))
    return [_endpoint(row) for row in rows]


def get_endpoint(conn: Connection, endpoint_id: str) -> Endpoint | None:
    row = conn.execute(select(endpoints).where(endpoints.c.id == endpoint_id)).first()
    return _endpoint(row) if row is not None else None


def remove_endpoint(conn: Connection, endpoint_id: str) -> bool:
    # The deliveries go with it (ON DELETE CASCADE); SQLite needs the foreign keys pragma,
    # which every pixdrop connection sets.
    return conn.execute(delete(endpoints).where(endpoints.c.id == endpoint_id)).rowcount == 1


def claim(conn: Connection, now: datetime, limit: int, hold_until: datetime) -> list[Delivery]:
    earlier = aliased(deliveries)
    waits = exists().where(
        and_(
            earlier.c.endpoint_id == deliveries.c.endpoint_id,
            earlier.c.resource == deliveries.c.resource,
            earlier.c.state == "pending",
            earlier.c.seq < deliveries.c.seq,
        )
    )
    due = (
        select(deliveries.c.seq)
        .where(deliveries.c.state == "pending", deliveries.c.next_attempt_at <= now, ~waits)
        .order_by(deliveries.c.seq)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True, of=deliveries)
    seqs = list(conn.execute(due).scalars())
    if not seqs:
        return []
    held = update(deliveries).where(deliveries.c.seq.in_(seqs)).values(next_attempt_at=hold_until)
    conn.execute(held)
    rows = conn.execute(_joined().where(deliveries.c.seq.in_(seqs)).order_by(deliveries.c.seq))
    return [_delivery(row) for row in rows]


def settle(conn: Connection, seq: int, values: dict[str, Any]) -> None:
    statement = (
        update(deliveries)
        .where(deliveries.c.seq == seq)
        .values(attempts=deliveries.c.attempts + 1, **values)
    )
    conn.execute(statement)


def list_deliveries(
    conn: Connection,
    failed_only: bool = False,
    limit: int = 50,
    *,
    state: str | None = None,
    before: int | None = None,
) -> list[Delivery]:
    """Deliveries newest first: of *state* (``failed_only``: ``failed``), those before
    delivery *before* (the last of the previous page) if given."""
    query = _joined().order_by(deliveries.c.seq.desc()).limit(limit)
    state = "failed" if failed_only else state
    if state is not None:
        query = query.where(deliveries.c.state == state)
    if before is not None:
        query = query.where(deliveries.c.seq < before)
    return [_delivery(row) for row in conn.execute(query)]


def resend(conn: Connection, seq: int, now: datetime) -> bool:
    """Queue delivery *seq* again, with a fresh retry window (``created_at`` is when queued)."""
    statement = (
        update(deliveries)
        .where(deliveries.c.seq == seq)
        .values(
            state="pending",
            attempts=0,
            created_at=now,
            next_attempt_at=now,
            finished_at=None,
        )
    )
    return conn.execute(statement).rowcount == 1


def subscriptions(conn: Connection) -> list[Subscription]:
    return [Subscription(e.id, frozenset(e.events)) for e in list_endpoints(conn)]


def pending(conn: Connection) -> int:
    """The backlog: deliveries neither delivered nor given up. The index on ``(state,
    next_attempt_at)`` answers it from the pending rows alone, however many are settled."""
    query = select(func.count()).select_from(deliveries).where(deliveries.c.state == "pending")
    return int(conn.execute(query).scalar_one())


def survey(conn: Connection) -> tuple[list[Subscription], int]:
    """What the sender reads every ``--webhook-refresh``: the endpoints and the backlog."""
    return subscriptions(conn), pending(conn)


class Outbox:
    """The functions above on *engine*, each one transaction on a worker thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def run_sync(self, operation: Callable[[Connection], T], *, writes: bool = True) -> T:
        with self.engine.connect() as conn:
            if writes and conn.dialect.name == "sqlite":
                # Claims read, then write: take the write lock up front, so that the wait for
                # it (busy_timeout) happens before the read instead of failing after it.
                conn = conn.execution_options(**{SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
            with conn.begin():
                return operation(conn)

    async def _run(self, operation: Callable[[Connection], T]) -> T:
        return await to_thread.run_sync(self.run_sync, operation)

    async def run(self, operation: Callable[[Connection], T], *, writes: bool = True) -> T:
        """:meth:`run_sync` on a worker thread (the admin API's operations)."""
        return await to_thread.run_sync(partial(self.run_sync, operation, writes=writes))

    async def survey(self) -> tuple[list[Subscription], int]:
        # Only reads: on SQLite (WAL) it takes no lock, and waits for no writer.
        return await to_thread.run_sync(partial(self.run_sync, survey, writes=False))

    async def claim(self, now: datetime, limit: int, hold_until: datetime) -> list[Delivery]:
        return await self._run(partial(claim, now=now, limit=limit, hold_until=hold_until))

    async def settle(self, seq: int, **values: Any) -> None:
        await self._run(partial(settle, seq=seq, values=values))
