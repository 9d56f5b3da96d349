"""Events: what happened to an upload or an image, as rows of the outbox.

An :class:`EventLog` is handed to the metadata store, which asks it for the rows to insert in
the very transaction of the change (``metadata/statements.py``): a change and its events
commit together or not at all. It knows which endpoints want which event types from a cache
the sender refreshes every few seconds (:meth:`EventLog.subscribe`); with no endpoint
subscribed to an event type, no row is built and nothing is written.

Each event is ``{"id", "type", "timestamp", "data"}`` (Standard Webhooks' payload shape, plus
the id), where ``data`` is the resource as the API shows it (``http/views.py``), never with a
delete token. ``upload.refused`` also carries the ``problem`` the client got.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pixdrop import metrics, ranges
from pixdrop.http.views import image_json, upload_json
from pixdrop.models import Image, Part, Upload, UploadState, utcnow
from pixdrop.services import UploadStatus

__all__ = ["EVENT_TYPES", "EventLog", "Subscription", "new_event_id"]

UPLOAD_CREATED = "upload.created"
UPLOAD_COMPLETED = "upload.completed"
UPLOAD_EXPIRED = "upload.expired"
UPLOAD_REFUSED = "upload.refused"
IMAGE_CREATED = "image.created"
IMAGE_DELETED = "image.deleted"
EVENT_TYPES = (
    UPLOAD_CREATED,
    UPLOAD_COMPLETED,
    UPLOAD_EXPIRED,
    UPLOAD_REFUSED,
    IMAGE_CREATED,
    IMAGE_DELETED,
)
#: How an upload ended without an image: the event each ending is reported as.
ENDINGS = {"expired": UPLOAD_EXPIRED, "refused": UPLOAD_REFUSED}


def new_event_id() -> str:
    """A ``webhook-id``: ``msg_`` and 128 random bits (unique, the receivers' dedup key)."""
    return "msg_" + secrets.token_urlsafe(16)


@dataclass(frozen=True, slots=True)
class Subscription:
    """An endpoint and the event types it wants."""

    endpoint_id: str
    events: frozenset[str]


class EventLog:
    """Builds outbox rows for the subscribed endpoints; see the module docstring.

    *base_url* prefixes the links in payloads (``--public-url``; empty: links are paths).
    The rows built are counted in ``pixdrop_webhook_events`` (``metrics.WEBHOOK_EVENTS``).
    """

    def __init__(self, base_url: str = "", clock: Callable[[], datetime] = utcnow) -> None:
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self._subscriptions: tuple[Subscription, ...] = ()

    def subscribe(self, subscriptions: Iterable[Subscription]) -> None:
        """Replace the cached endpoint list (the sender's refresh)."""
        self._subscriptions = tuple(subscriptions)

    def wants(self, *types: str) -> bool:
        """Whether any endpoint wants any of *types* (False: skip the work entirely)."""
        return any(t in s.events for s in self._subscriptions for t in types)

    def rows(
        self, type_: str, resource: str, data: Mapping[str, Any], **extra: Any
    ) -> list[dict[str, Any]]:
        """One event, as a row for each endpoint that wants it (none: ``[]``)."""
        targets = [s.endpoint_id for s in self._subscriptions if type_ in s.events]
        if not targets:
            return []
        now = self.clock()
        event_id = new_event_id()
        body = {"id": event_id, "type": type_, "timestamp": now.isoformat(), "data": data}
        payload = json.dumps({**body, **extra}, separators=(",", ":"), default=str)
        # Counted when built, after the change's own statements succeeded: if its transaction
        # fails after all (at the outbox INSERT or the commit), they were counted, not written.
        metrics.WEBHOOK_EVENTS.labels(type_).inc(len(targets))
        return [
            {
                "event_id": event_id,
                "event_type": type_,
                "endpoint_id": endpoint,
                "resource": resource,
                "payload": payload,
                "state": "pending",
                "attempts": 0,
                "created_at": now,
                "next_attempt_at": now,
            }
            for endpoint in targets
        ]

    # --- the changes the metadata store reports -------------------------------------------

    def upload_created(
        self, upload: Upload, parts: Sequence[Part] = (), image: Image | None = None
    ) -> list[dict[str, Any]]:
        """A new upload; one complete on arrival (*image*) is also completed, with its image."""
        rows = self._upload(UPLOAD_CREATED, upload, parts)
        if image is not None and upload.state is UploadState.COMPLETED:
            rows += self.upload_completed(upload, image)
        return rows

    def upload_completed(self, upload: Upload, image: Image) -> list[dict[str, Any]]:
        """The upload made *image*: ``upload.completed``, then ``image.created``."""
        return self._upload(UPLOAD_COMPLETED, upload, ()) + self.image_created(image)

    def upload_ended(
        self,
        upload: Upload,
        parts: Sequence[Part],
        ending: str,
        problem: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """The upload went without an image: *ending* ``expired`` or ``refused`` (*problem*)."""
        if upload.state is UploadState.COMPLETED:
            return []  # a completed upload's record, swept: it made its image, nothing ended
        extra = {"problem": dict(problem)} if problem is not None else {}
        return self._upload(ENDINGS[ending], upload, parts, **extra)

    def image_created(self, image: Image) -> list[dict[str, Any]]:
        return self._image(IMAGE_CREATED, image)

    def image_deleted(self, image: Image) -> list[dict[str, Any]]:
        return self._image(IMAGE_DELETED, image)

    def _upload(
        self, type_: str, upload: Upload, parts: Sequence[Part], **extra: Any
    ) -> list[dict[str, Any]]:
        if not self.wants(type_):
            return []
        if upload.state is UploadState.COMPLETED:
            spans = [(0, upload.size)]
        else:
            spans = [(p.start, p.end) for p in parts]
        status = UploadStatus(
            upload,
            ranges.chunks_received(spans, upload.size, upload.chunk_size),
            ranges.chunks_missing(spans, upload.size, upload.chunk_size),
        )
        data = upload_json(status, self.base_url)
        return self.rows(type_, f"upload/{upload.id}", data, **extra)

    def _image(self, type_: str, image: Image) -> list[dict[str, Any]]:
        if not self.wants(type_):
            return []
        return self.rows(type_, f"image/{image.id}", image_json(image, self.base_url))
