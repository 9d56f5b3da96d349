"""An upload's life cycle, in one place, whichever protocol made it: its shape and limits,
opening it (staging first, then the record), freeing it (record first, then the bytes),
and sweeping what expired or was orphaned by a crash.

Order matters both ways (DESIGN.md, durability): bytes exist before any record names them,
and a record goes before its bytes, so a crash in between leaves at worst bytes without a
record, which the sweeper finds (``Staging.stale``), never a record without its bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from pixdrop.errors import PayloadTooLarge, UploadExpired, UploadNotFound
from pixdrop.models import (
    ATTRIBUTION,
    Image,
    Part,
    Upload,
    UploadProtocol,
    UploadState,
    is_valid_id,
    new_id,
)
from pixdrop.ports import MetadataStore, Staging
from pixdrop.protocols import fields

__all__ = ["Clock", "Lifecycle", "UploadLimits", "token"]

log = logging.getLogger("pixdrop.uploads")

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """The bounds every upload must respect."""

    max_image_size: int
    default_chunk_size: int
    min_chunk_size: int
    max_chunk_size: int
    max_chunks: int
    ttl: timedelta


def token(upload: Upload) -> str:
    """The staging token of *upload* (empty for uploads from before tokens, on local disk)."""
    return upload.store_token or ""


class Lifecycle:
    """Create, look up, expire, free and sweep uploads."""

    def __init__(
        self, *, staging: Staging, meta: MetadataStore, limits: UploadLimits, clock: Clock
    ) -> None:
        self.staging = staging
        self.meta = meta
        self.limits = limits
        self.clock = clock

    @property
    def max_size(self) -> int:
        return self.limits.max_image_size

    def check_size(self, size: int, what: str = "upload") -> None:
        """Raise ``PayloadTooLarge`` if *size* is over ``max_image_size``."""
        if size > self.max_size:
            raise PayloadTooLarge(
                f"The {what} is {size} bytes; the largest accepted is {self.max_size} bytes.",
                limit="max_image_size",
                value=size,
                allowed=self.max_size,
            )

    def new(
        self,
        protocol: UploadProtocol,
        size: int | None,
        *,
        chunk_size: int | None = None,
        sha256: str | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        metadata: str | None = None,
        concat: str | None = None,
    ) -> Upload:
        """A new upload record (not stored yet); *size* ``None`` means told later.

        What the client said about its file is cleaned and bounded here, for every way in
        (``protocols.fields``: ``FieldTooLong`` past a limit).
        """
        fields.check_upload_metadata(metadata)
        if concat != "partial":
            fields.check_upload_concat(concat)
        filename = fields.checked_filename(filename)
        content_type = fields.checked_content_type(content_type)
        now = self.clock()
        # Who the request speaks for (set by the HTTP layer): the owner whose quota it uses.
        who = ATTRIBUTION.get()
        return Upload(
            id=new_id(),
            size=size or 0,
            chunk_size=chunk_size or self.limits.default_chunk_size,
            state=UploadState.RECEIVING,
            created_at=now,
            expires_at=now + self.limits.ttl,
            sha256=sha256.lower() if sha256 else None,
            filename=filename,
            content_type=content_type,
            protocol=protocol,
            length_deferred=size is None,
            upload_metadata=metadata,
            concat=concat,
            owner=who.owner,
            private=who.private,
        )

    async def open(
        self,
        upload: Upload,
        *,
        partial_ids: Sequence[str] | None = None,
        parts: Sequence[Part] = (),
        image: Image | None = None,
    ) -> Upload:
        """Begin staging *upload*, then record it (with its first *parts* and *image*, or, for
        a final tus upload, the *partial_ids* it joins); return it with its store token."""
        stored = replace(upload, store_token=await self.staging.begin(upload.id))
        if partial_ids is not None:
            await self.meta.create_final(stored, list(partial_ids))
        else:
            await self.meta.create_upload(stored, parts=parts, image=image)
        return stored

    async def get(self, upload_id: str) -> Upload:
        """The upload; ``UploadNotFound`` (also for strings that cannot be ids)."""
        if not is_valid_id(upload_id):
            raise UploadNotFound(f"There is no upload with id {upload_id!r}.")
        return await self.meta.get_upload(upload_id)

    def check_alive(self, upload: Upload) -> None:
        """Raise ``UploadExpired`` for an unfinished upload past its expiry."""
        if upload.state is not UploadState.COMPLETED and upload.expires_at <= self.clock():
            raise UploadExpired(
                f"Upload {upload.id} expired at {upload.expires_at.isoformat()}; start a new one."
            )

    async def free(self, upload: Upload) -> None:
        """Forget the upload, then free its bytes (a crash in between leaves only bytes)."""
        await self.meta.delete_upload(upload.id)
        await self.staging.abort(upload.id, token(upload))

    async def sweep(self, now: datetime | None = None, batch: int = 100) -> int:
        """Remove expired uploads (records, then bytes) and staged bytes that no record names
        (a crash between staging and recording); return how many went."""
        now = now or self.clock()
        removed = 0
        for upload in await self.meta.expired_uploads(now, batch):
            await self.free(upload)
            removed += 1
        grace = self.limits.ttl.total_seconds()
        for upload_id, store_token in await self.staging.stale(older_than=grace):
            try:
                await self.meta.get_upload(upload_id)
            except UploadNotFound:
                await self.staging.abort(upload_id, store_token)
                removed += 1
        if removed:
            log.info("swept %d expired or orphaned uploads", removed)
        return removed
