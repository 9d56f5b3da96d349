"""UploadService: chunked, resumable uploads as a byte range ``[0, size)`` being filled.

The rules (DESIGN.md, durability): a chunk's bytes are written at their final offset and made
durable, then the range is recorded, then the client is told. A request that dies midway
records nothing, so the chunk is simply missing and can be sent again. What is received is
derived from the recorded parts alone, so it is exact after any crash.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta

from pixdrop import ranges
from pixdrop.errors import (
    ChunkBusy,
    ChunkConflict,
    ChunkNotFound,
    ChunkSizeMismatch,
    Conflict,
    InvalidUploadRequest,
    PayloadTooLarge,
    UnprocessableImage,
    UploadExpired,
    UploadIncomplete,
    UploadNotFound,
    UploadNotReceiving,
)
from pixdrop.models import Image, Part, Upload, UploadState, is_valid_id, new_id
from pixdrop.ports import DigestsStaging, LockBusy
from pixdrop.protocols.digest import ExpectedDigests
from pixdrop.services.images import ImageService, StoredImage
from pixdrop.services.streams import MeteredStream, collect

log = logging.getLogger("pixdrop.uploads")


@dataclass(frozen=True, slots=True)
class UploadLimits:
    """The bounds a chunked upload must respect."""

    max_image_size: int
    default_chunk_size: int
    min_chunk_size: int
    max_chunk_size: int
    max_chunks: int
    ttl: timedelta


@dataclass(frozen=True, slots=True)
class UploadStatus:
    """An upload and exactly which of its chunks are stored."""

    upload: Upload
    received: list[int]
    missing: list[int]


@dataclass(frozen=True, slots=True)
class ChunkReceipt:
    """Acknowledges one durable chunk; ``created`` is False for an identical re-send."""

    upload_id: str
    index: int
    part: Part
    created: bool


class UploadService:
    """Create uploads, take chunks in any order, report what is missing, complete, abort."""

    def __init__(self, *, images: ImageService, limits: UploadLimits) -> None:
        self.images = images
        self.blobs = images.blobs
        self.meta = images.meta
        self.locker = images.locker
        self.limits = limits
        self.clock = images.clock

    async def create(
        self,
        *,
        size: int,
        chunk_size: int | None = None,
        sha256: str | None = None,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> UploadStatus:
        """Start an upload of *size* bytes; raise ``InvalidUploadRequest``/``PayloadTooLarge``."""
        chunk_size = self._check_shape(size, chunk_size)
        now = self.clock()
        upload = Upload(
            id=new_id(),
            size=size,
            chunk_size=chunk_size,
            state=UploadState.RECEIVING,
            created_at=now,
            expires_at=now + self.limits.ttl,
            sha256=sha256.lower() if sha256 else None,
            filename=filename,
            content_type=content_type,
        )
        # Bytes before records: the staging object exists before anyone can name the upload.
        await self.blobs.create_staging(upload.id)
        await self.meta.create_upload(upload)
        return UploadStatus(upload, [], list(range(upload.chunk_count)))

    def _check_shape(self, size: int, chunk_size: int | None) -> int:
        lim = self.limits
        if size > lim.max_image_size:
            raise PayloadTooLarge(
                f"The image is {size} bytes; the largest accepted is {lim.max_image_size} bytes.",
                limit="max_image_size",
                value=size,
                allowed=lim.max_image_size,
            )
        if chunk_size is None:
            chunk_size = lim.default_chunk_size
        elif not lim.min_chunk_size <= chunk_size <= lim.max_chunk_size:
            raise InvalidUploadRequest(
                f"chunk_size must be between {lim.min_chunk_size} and {lim.max_chunk_size} bytes.",
                limit="chunk_size",
                value=chunk_size,
                allowed=[lim.min_chunk_size, lim.max_chunk_size],
            )
        count = -(-size // chunk_size)
        if count > lim.max_chunks:
            raise InvalidUploadRequest(
                f"{size} bytes in chunks of {chunk_size} makes {count} chunks; at most "
                f"{lim.max_chunks} are allowed. Use a larger chunk_size.",
                limit="max_chunks",
                value=count,
                allowed=lim.max_chunks,
            )
        return chunk_size

    async def get(self, upload_id: str) -> Upload:
        """The upload; raise ``UploadNotFound`` (also for strings that cannot be ids, and for
        uploads made through tus or the IETF draft, which this API cannot drive)."""
        if not is_valid_id(upload_id):
            raise UploadNotFound(f"There is no upload with id {upload_id!r}.")
        upload = await self.meta.get_upload(upload_id)
        self._check_native(upload)
        return upload

    @staticmethod
    def _check_native(upload: Upload) -> None:
        if upload.protocol != "native":
            raise UploadNotFound(
                f"Upload {upload.id} was made with {upload.protocol}; continue it there."
            )

    async def status(self, upload_id: str) -> UploadStatus:
        """The upload with exact ``received`` and ``missing`` chunk lists."""
        upload = await self.get(upload_id)
        if upload.state is UploadState.COMPLETED:
            return UploadStatus(upload, list(range(upload.chunk_count)), [])
        parts = await self.meta.list_parts(upload_id)
        spans = [(p.start, p.end) for p in parts]
        return UploadStatus(
            upload,
            ranges.chunks_received(spans, upload.size, upload.chunk_size),
            ranges.chunks_missing(spans, upload.size, upload.chunk_size),
        )

    def _check_receiving(self, upload: Upload) -> None:
        if upload.state is not UploadState.RECEIVING:
            raise UploadNotReceiving(
                f"Upload {upload.id} is {upload.state.value} and takes no more chunks."
            )
        if upload.expires_at <= self.clock():
            raise UploadExpired(
                f"Upload {upload.id} expired at {upload.expires_at.isoformat()}; start a new one."
            )

    async def put_chunk(
        self,
        upload_id: str,
        index_text: str,
        body: AsyncIterator[bytes],
        *,
        content_length: int | None,
        expected: ExpectedDigests,
    ) -> ChunkReceipt:
        """Store chunk *index_text* of the upload from *body* at its final offset.

        Two metadata calls: one read of the upload and of the part at the chunk's offset, under
        the chunk's lock (so nobody records that part meanwhile), and one write of the part.
        """
        if not is_valid_id(upload_id):
            raise UploadNotFound(f"There is no upload with id {upload_id!r}.")
        # Digits only, and short enough for a 64-bit column; anything else is refused below,
        # once the upload says how many chunks it has.
        number = int(index_text) if index_text.isascii() and index_text.isdigit() else -1
        number = number if number < 2**31 else -1
        if number < 0:  # refused without taking a lock: _chunk_index raises ChunkNotFound
            upload, _ = await self.meta.chunk_slot(upload_id, number)
            self._check_native(upload)
            self._chunk_index(upload, index_text)
        try:
            async with self.locker.hold(f"chunk/{upload_id}/{number}"):
                upload, stored = await self.meta.chunk_slot(upload_id, number)
                self._check_native(upload)
                index = self._chunk_index(upload, index_text)
                self._check_receiving(upload)
                start, end = upload.chunk_range(index)
                if content_length is not None and content_length != end - start:
                    raise self._wrong_length(index, end - start, content_length)
                stream = MeteredStream(
                    body,
                    limit=end - start,
                    too_long=lambda: self._wrong_length(index, end - start, None),
                    expected=expected,
                )
                if stored is None:
                    return await self._write_chunk(upload, index, stream)
        except LockBusy:
            error = ChunkBusy(
                f"Chunk {number} is being written by another request; retry shortly.",
                index=number,
            )
            error.headers["Retry-After"] = "1"
            raise error from None
        # Already stored: compared outside the lock, since a recorded part never changes.
        return await self._compare_chunk(upload, index, stored, stream)

    def _chunk_index(self, upload: Upload, text: str) -> int:
        if text.isascii() and text.isdigit() and int(text) < upload.chunk_count:
            return int(text)
        raise ChunkNotFound(
            f"Chunk {text!r} does not exist: upload {upload.id} has chunks "
            f"0 to {upload.chunk_count - 1}.",
            chunk_count=upload.chunk_count,
        )

    @staticmethod
    def _wrong_length(index: int, want: int, got: int | None) -> ChunkSizeMismatch:
        said = "more" if got is None else str(got)
        return ChunkSizeMismatch(
            f"Chunk {index} must be exactly {want} bytes; the request sent {said}.",
            index=index,
            expected_size=want,
        )

    async def _write_chunk(self, upload: Upload, index: int, stream: MeteredStream) -> ChunkReceipt:
        start, end = upload.chunk_range(index)
        try:
            await self.blobs.write_at(upload.id, start, stream, stream.observe)
        except FileNotFoundError:
            raise UploadNotFound(f"Upload {upload.id} was deleted.") from None
        if stream.length != end - start:
            raise self._wrong_length(index, end - start, stream.length)
        stream.verify(f"chunk {index}")
        part = Part(start, end, stream.sha256)
        await self.meta.add_part(upload.id, part)
        return ChunkReceipt(upload.id, index, part, created=True)

    async def _compare_chunk(
        self, upload: Upload, index: int, stored: Part, stream: MeteredStream
    ) -> ChunkReceipt:
        """A chunk that is already stored: hash the re-sent bytes, store nothing."""
        await stream.drain()
        if stream.length != stored.length:
            raise self._wrong_length(index, stored.length, stream.length)
        stream.verify(f"chunk {index}")
        if stream.sha256 != stored.sha256:
            raise ChunkConflict(
                f"Chunk {index} is already stored with different bytes (sha256 "
                f"{stored.sha256}); an upload's chunks cannot change. Start a new upload "
                "if the file changed.",
                index=index,
                stored_sha256=stored.sha256,
            )
        return ChunkReceipt(upload.id, index, stored, created=False)

    async def complete(self, upload_id: str) -> StoredImage:
        """Verify and store the image once every chunk is in.

        Raise ``UploadIncomplete`` (with ``missing``) while chunks are missing. A whole-file
        sha256 mismatch or bytes that are not an image raise ``UnprocessableImage`` and free
        the upload. An upload completed before returns its image without a delete token.
        """
        upload = await self.get(upload_id)
        if upload.state is UploadState.COMPLETED and upload.image_id:
            return StoredImage(await self.meta.get_image(upload.image_id), None)
        if upload.expires_at <= self.clock():
            raise UploadExpired(f"Upload {upload.id} expired; start a new one.")
        state = await self.status(upload_id)
        if state.missing:
            raise UploadIncomplete(
                f"Upload {upload.id} is missing {len(state.missing)} of "
                f"{upload.chunk_count} chunks; send them, then complete again.",
                missing=state.missing,
            )
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self.locker.hold(f"complete/{upload.id}"))
            except LockBusy:
                raise Conflict(
                    f"Upload {upload.id} is being completed by another request; ask "
                    "GET /v1/uploads/{id} for the result in a moment."
                ) from None
            upload = await self.get(upload_id)
            if upload.state is UploadState.COMPLETED and upload.image_id:
                return StoredImage(await self.meta.get_image(upload.image_id), None)
            # Chunks are refused from here on, so the bytes hashed below stay as they are.
            await self.meta.transition(
                upload.id, {UploadState.RECEIVING, UploadState.COMPLETING}, UploadState.COMPLETING
            )
            try:
                return await self.finish_staged(upload)
            except UnprocessableImage:
                await self.free(upload.id)
                raise
        raise AssertionError("unreachable")

    async def finish_staged(self, upload: Upload) -> StoredImage:
        """Hash the staged bytes, check them against the announced sha256, ingest the image.

        The caller has stopped further writes (state ``completing``) and frees the upload if
        this raises ``UnprocessableImage``.
        """

        async def checked_sha256() -> str:
            sha = await self._hash_staged(upload)
            if upload.sha256 and sha != upload.sha256:
                raise UnprocessableImage(
                    f"The assembled bytes have sha256 {sha}, not the {upload.sha256} given when "
                    "the upload was created. The upload was discarded; upload the file again.",
                    reason="sha256-mismatch",
                    expected_sha256=upload.sha256,
                    actual_sha256=sha,
                )
            return sha

        async def record(image: Image) -> None:
            await self.meta.complete_upload(upload.id, image)

        # The whole-file hash (one pass over the staged file, in a thread) runs while the codec
        # decodes in its worker process: two cores busy instead of one after another.
        return await self.images.ingest(
            upload.id,
            sha256=checked_sha256(),
            size=upload.size,
            head=await self._staged_head(upload),
            filename=upload.filename,
            record=record,
        )

    async def _staged_head(self, upload: Upload) -> bytes:
        want = min(self.images.prober.head_size, upload.size)
        return await collect(self.blobs.read_staging(upload.id, 0, want))

    async def _hash_staged(self, upload: Upload) -> str:
        if isinstance(self.blobs, DigestsStaging):
            return await self.blobs.digest_staging(upload.id, upload.size)
        hasher = hashlib.sha256()
        async for block in self.blobs.read_staging(upload.id, 0, upload.size):
            hasher.update(block)
        return hasher.hexdigest()

    async def abort(self, upload_id: str) -> None:
        """Forget the upload, then free its bytes (a crash in between leaves only bytes)."""
        upload = await self.get(upload_id)
        await self.free(upload.id)

    async def free(self, upload_id: str) -> None:
        """Delete the upload record, then its bytes (any protocol; no error if absent)."""
        await self.meta.delete_upload(upload_id)
        await self.blobs.discard(upload_id)

    async def sweep(self, now: datetime | None = None, batch: int = 100) -> int:
        """Remove expired uploads (records, then bytes) and orphaned staging objects."""
        now = now or self.clock()
        removed = 0
        for upload in await self.meta.expired_uploads(now, batch):
            await self.meta.delete_upload(upload.id)
            await self.blobs.discard(upload.id)
            removed += 1
        grace = self.limits.ttl.total_seconds()
        for staging_id in await self.blobs.staging_ids(older_than=grace):
            try:
                await self.meta.get_upload(staging_id)
            except UploadNotFound:
                await self.blobs.discard(staging_id)
                removed += 1
        if removed:
            log.info("swept %d expired or orphaned uploads", removed)
        return removed
