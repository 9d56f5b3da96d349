"""An upload's life cycle, in one place, whichever protocol made it: its shape and limits,
opening it (staging first, then the record), freeing it (record first, then the bytes),
and sweeping what expired or was orphaned by a crash.

Order matters both ways (DESIGN.md, durability): bytes exist before any record names them,
and a record goes before its bytes, so a crash in between leaves at worst bytes without a
record, which the sweeper finds (``Staging.stale``), never a record without its bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pixdrop import metrics
from pixdrop.errors import PayloadTooLarge, TooManyOpenUploads, UploadExpired, UploadNotFound
from pixdrop.models import (
    ATTRIBUTION,
    Image,
    Opener,
    Part,
    Upload,
    UploadProtocol,
    UploadState,
    is_valid_id,
    new_id,
)
from pixdrop.ports import Blobs, ImageCodec, KeptContent, MetadataStore, Staging
from pixdrop.protocols import fields
from pixdrop.services.grants import GRANT_RETENTION, check_open
from pixdrop.services.locks import LeaseLocks

__all__ = ["Clock", "Lifecycle", "UploadLimits", "token"]

log = logging.getLogger("pixdrop.uploads")

Clock = Callable[[], datetime]
#: The pre-create hook (``webhooks/hook.py``): the upload as it may be created, or it raises.
#: The second argument names the way in when the upload's protocol does not.
Admission = Callable[[Upload, str | None], Awaitable[Upload]]


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """The bounds every upload must respect."""

    max_image_size: int
    default_chunk_size: int
    min_chunk_size: int
    max_chunk_size: int
    max_chunks: int
    ttl: timedelta
    #: Unfinished uploads one client address may hold (anonymous and grant traffic).
    max_open_per_client: int | None = None


def token(upload: Upload) -> str:
    """The staging token of *upload* (empty for uploads from before tokens, on local disk)."""
    return upload.store_token or ""


class Lifecycle:
    """Create, look up, expire, free and sweep uploads."""

    def __init__(
        self,
        *,
        staging: Staging,
        meta: MetadataStore,
        limits: UploadLimits,
        clock: Clock,
        hook: Admission | None = None,
        blobs: Blobs | None = None,
        locks: LeaseLocks | None = None,
        codec: ImageCodec | None = None,
    ) -> None:
        self.staging = staging
        self.meta = meta
        self.limits = limits
        self.clock = clock
        self.hook = hook
        #: With both, freeing an unfinished upload also removes the blob a completion that
        #: died between keeping and recording left for it (``_reclaim``).
        self.blobs = blobs
        self.locks = locks
        #: Told when an upload opens, so a decoder is ready by the time it completes.
        self.codec = codec

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
        opener: Opener | None = None,
    ) -> Upload:
        """A new upload record (not stored yet); *size* ``None`` means told later.

        What the client said about its file is cleaned and bounded here, for every way in
        (``protocols.fields``: ``FieldTooLong`` past a limit), and so is the *opener*'s grant
        (``grants.check_open``).
        """
        opener = opener or Opener()
        if opener.grant is not None:
            check_open(opener.grant, size, self.clock(), concat=concat is not None)
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
            client=opener.client if opener.counted else None,
            grant_id=opener.grant.id if opener.grant else None,
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
        a final tus upload, the *partial_ids* it joins); return it with its store token.
        The pre-create hook, if any, decides first (:meth:`admit`)."""
        await self._check_open_uploads(upload)
        upload = await self.admit(upload)
        stored = replace(upload, store_token=await self.staging.begin(upload.id))
        if partial_ids is not None:
            await self.meta.create_final(stored, list(partial_ids))
        else:
            await self.meta.create_upload(stored, parts=parts, image=image)
        metrics.UPLOADS_OPENED.inc()
        if self.codec is not None:
            self.codec.prepare()
        return stored

    async def admit(self, upload: Upload, way: str | None = None) -> Upload:
        """*upload* as the pre-create hook lets it be created (unchanged without a hook);
        ``HookRefused`` or ``HookUnavailable`` if it may not. Every way in passes here:
        :meth:`open`, and the one-request paths, which record no upload before the image."""
        return upload if self.hook is None else await self.hook(upload, way)

    async def _check_open_uploads(self, upload: Upload) -> None:
        """``TooManyOpenUploads`` if the client that opens *upload* holds the most it may.

        A count, then an insert: racing requests of one client may pass a few over the cap.
        """
        cap = self.limits.max_open_per_client
        if upload.client is None or cap is None:
            return
        holding = await self.meta.count_open_uploads(upload.client, self.clock())
        if holding >= cap:
            raise TooManyOpenUploads(
                f"This client already holds {holding} unfinished uploads; at most {cap} may be "
                "open at once. Finish or delete some (or wait until they expire).",
                limit="max_open_uploads_per_client",
                value=holding,
                allowed=cap,
            )

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

    async def free(
        self,
        upload: Upload,
        *,
        ending: str | None = None,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        """Forget the upload, then free its bytes (a crash in between leaves only bytes).
        *ending*: ``expired``, or ``refused`` with the client's *problem* (for webhooks)."""
        await self.meta.delete_upload(upload.id, ending=ending, problem=problem)
        if upload.state is not UploadState.COMPLETED:
            await self._reclaim(upload.id, token(upload))
        await self.staging.abort(upload.id, token(upload))

    async def _reclaim(self, upload_id: str, store_token: str) -> None:
        """Remove the blob an unfinished upload's staged object was kept as, unless an image
        names it: a completion killed between ``keep`` and recording the image left it."""
        if self.blobs is None or self.locks is None or not isinstance(self.staging, KeptContent):
            return
        key = await self.staging.kept_as(upload_id, store_token)
        if key is None:
            return
        # Under the blob's lease, as completions keep and record, and images are deleted.
        async with self.locks.hold_waiting(f"blob/{key}"):
            if await self.meta.count_images_with_sha256(key) == 0:
                log.warning(
                    "removing blob %s, kept for upload %s but named by no image", key, upload_id
                )
                await self.blobs.delete(key)

    async def sweep(self, now: datetime | None = None, batch: int = 100) -> int:
        """Remove expired uploads (records, then bytes) and staged bytes that no record names
        (a crash between staging and recording); return how many went."""
        now = now or self.clock()
        removed = 0
        for upload in await self.meta.expired_uploads(now, batch):
            await self.free(upload, ending="expired")
            removed += 1
        grace = self.limits.ttl.total_seconds()
        for upload_id, store_token in await self.staging.stale(older_than=grace):
            try:
                await self.meta.get_upload(upload_id)
            except UploadNotFound:
                await self._reclaim(upload_id, store_token)
                await self.staging.abort(upload_id, store_token)
                removed += 1
        if removed:
            log.info("swept %d expired or orphaned uploads", removed)
        await self.meta.purge_grants(now - GRANT_RETENTION)
        return removed
