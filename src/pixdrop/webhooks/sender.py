"""The sender: a background task of each server that works off the outbox.

* It refreshes the endpoint list every ``--webhook-refresh`` seconds into the
  :class:`~pixdrop.webhooks.events.EventLog` (so a new or removed endpoint is seen within that
  delay, and with no endpoint nothing is written nor polled).
* It claims due deliveries (``outbox.claim``), at most ``--webhook-concurrency`` in flight,
  POSTs each, signed (``signing.py``), with its own ``httpx.AsyncClient`` and a
  ``--webhook-timeout`` per attempt: a slow or dead receiver holds a slot, never a request.
* A 2xx settles the delivery. Anything else is retried with the same ``webhook-id`` after
  ``--webhook-retry-base`` x 2^(attempts-1) seconds (capped at an hour), times a random factor
  between 0.5 and 1.5, until ``--webhook-retry-for`` seconds (a day) after it was queued: then
  it is ``failed``, listed by ``pixdrop webhooks deliveries --failed`` and resendable.
* On PostgreSQL every node sends (claims skip rows another node locked); on SQLite, one process
  of the machine does, the holder of the ``webhook-sender`` lease.

A claimed row is held for the timeout plus :data:`HOLD_MARGIN`; if its sender dies meanwhile,
another sends it once the hold ends: delivery is at least once.

Metrics (``pixdrop.metrics``, ``pixdrop_webhook_*``): each attempt's time and settled outcome,
the attempts in flight, and the backlog, counted in the database with each refresh of the
endpoint list. Every process reads the backlog, sending or not: it is the database's, and it
must be reported even when no process can send.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import httpx
from anyio.abc import TaskGroup, TaskStatus

from pixdrop import __version__, metrics
from pixdrop.metadata.sql import SqlMetadataStore
from pixdrop.models import utcnow
from pixdrop.services.leases import LeaseKeeper
from pixdrop.webhooks import signing
from pixdrop.webhooks.events import EventLog
from pixdrop.webhooks.outbox import Delivery, Outbox
from pixdrop.webhooks.tls import client_context

__all__ = ["Sender", "SenderSettings", "open_sender", "retry_delay"]

log = logging.getLogger("pixdrop.webhooks")

#: How long a claimed delivery is held past its attempt's timeout before another may send it.
HOLD_MARGIN = 10.0
#: The longest wait between two attempts.
MAX_DELAY = 3600.0
#: Seconds between looks at the outbox when there was nothing to send.
POLL = 0.5
LEASE = "webhook-sender"


@dataclass(frozen=True, slots=True)
class SenderSettings:
    retry_base: float
    timeout: float
    retry_for: float
    concurrency: int
    refresh: float


def retry_delay(base: float, attempts: int, rand: random.Random | None = None) -> float:
    """Seconds before the next attempt after *attempts* failed ones: exponential, capped,
    with jitter (x 0.5 to 1.5) so that retries of many deliveries spread out."""
    factor: float = (rand or random).uniform(0.5, 1.5)
    return min(base * 2.0 ** max(attempts - 1, 0), MAX_DELAY) * factor


class Sender:
    """Deliver the outbox (see the module docstring)."""

    def __init__(
        self,
        outbox: Outbox,
        events: EventLog,
        settings: SenderSettings,
        *,
        keeper: LeaseKeeper | None = None,
    ) -> None:
        self.outbox = outbox
        self.events = events
        self.settings = settings
        self.keeper = keeper  # SQLite: elect one sender per machine
        self.busy = 0  # attempts in flight
        self._client = httpx.AsyncClient(
            timeout=settings.timeout,
            follow_redirects=False,
            headers={"user-agent": f"pixdrop/{__version__} webhooks"},
            limits=httpx.Limits(max_connections=settings.concurrency),
            verify=client_context(),
        )
        self._has_endpoints = False

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Load the endpoints (before the server takes requests), then send until cancelled."""
        try:
            await self.refresh()
            task_status.started()
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._refresh_forever)
                await self._send_forever(tasks)
        finally:
            with anyio.CancelScope(shield=True):
                await self._client.aclose()

    async def refresh(self) -> None:
        found, backlog = await self.outbox.survey()
        self.events.subscribe(found)
        self._has_endpoints = bool(found)
        metrics.WEBHOOK_BACKLOG.set(backlog)

    async def _refresh_forever(self) -> None:
        while True:
            await anyio.sleep(self.settings.refresh)
            try:
                await self.refresh()
            except Exception:  # the database may be away for a while; keep the last list
                log.exception("reading the webhook endpoints failed")

    async def _send_forever(self, tasks: TaskGroup) -> None:
        while True:
            try:
                claimed = await self._claim()
            except Exception:
                log.exception("reading the webhook outbox failed")
                claimed = []
            for delivery in claimed:
                self.busy += 1
                metrics.WEBHOOK_IN_FLIGHT.inc()
                tasks.start_soon(self._deliver, delivery)
            if not claimed:
                await anyio.sleep(POLL)

    async def _claim(self) -> list[Delivery]:
        free = self.settings.concurrency - self.busy
        if free <= 0 or not self._has_endpoints:
            return []
        if self.keeper is not None and not await self.keeper.lead(LEASE, ttl=10 + POLL * 4):
            return []
        now = utcnow()
        hold = now + timedelta(seconds=self.settings.timeout + HOLD_MARGIN)
        return await self.outbox.claim(now, free, hold)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            status, error = await self._attempt(delivery)
            await self._settle(delivery, status, error)
        except Exception:  # settling failed: the hold ends and the delivery is sent again
            log.exception("webhook delivery %d could not be settled", delivery.seq)
        finally:
            self.busy -= 1
            metrics.WEBHOOK_IN_FLIGHT.dec()

    async def _attempt(self, delivery: Delivery) -> tuple[int | None, str | None]:
        body = delivery.payload.encode()
        stamp = int(utcnow().timestamp())
        headers = signing.headers(delivery.secret, delivery.event_id, stamp, body)
        started = time.perf_counter()
        try:
            with anyio.fail_after(self.settings.timeout):
                response = await self._client.post(delivery.url, content=body, headers=headers)
        except TimeoutError:
            return None, f"no answer within {self.settings.timeout} s"
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"[:500]
        finally:
            metrics.WEBHOOK_ATTEMPT_SECONDS.observe(time.perf_counter() - started)
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"answered {response.status_code}"

    async def _settle(self, delivery: Delivery, status: int | None, error: str | None) -> None:
        now = utcnow()
        values: dict[str, Any] = {"last_status": status, "last_error": error}
        if error is None:
            outcome = "delivered"
            values.update(state="delivered", finished_at=now)
        else:
            delay = retry_delay(self.settings.retry_base, delivery.attempts + 1)
            next_at = now + timedelta(seconds=delay)
            if next_at > delivery.created_at + timedelta(seconds=self.settings.retry_for):
                outcome = "failed"
                values.update(state="failed", finished_at=now)
                log.warning(
                    "webhook %s to %s failed for good: %s", delivery.event_id, delivery.url, error
                )
            else:
                outcome = "retried"
                values.update(next_attempt_at=next_at)
        await self.outbox.settle(delivery.seq, **values)
        # Counted once settled: an attempt whose outcome was not recorded is made again.
        metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
        if outcome == "delivered":
            lag = (now - delivery.created_at).total_seconds()
            metrics.WEBHOOK_LAG_SECONDS.observe(max(lag, 0.0))


def open_sender(
    meta: SqlMetadataStore,
    keeper: LeaseKeeper,
    settings: SenderSettings,
    base_url: str = "",
) -> Sender:
    """A sender for the outbox in *meta*'s database, whose store then writes events.

    On SQLite the sender is elected per machine by *keeper*'s lease; on PostgreSQL every
    process sends, and row locks keep them apart.
    """
    events = EventLog(base_url)
    meta.events = events
    sqlite = meta.engine.dialect.name == "sqlite"
    return Sender(Outbox(meta.engine), events, settings, keeper=keeper if sqlite else None)
