"""UploadService: chunked, resumable uploads as a byte range ``[0, size)`` being filled.

The rules (DESIGN.md, durability): a chunk's bytes are written at their final offset and made
durable, then the range is recorded, then the client is told. A request that dies midway
records nothing, so the chunk is simply missing and can be sent again. What is received is
derived from the recorded parts alone, so it is exact after any crash.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass

from pixdrop import ranges
from pixdrop.errors import (
    ChunkBusy,
    ChunkConflict,
    ChunkNotFound,
    ChunkSizeMismatch,
    Conflict,
    GrantTooLarge,
    GrantUsed,
    InvalidUploadRequest,
    UnprocessableImage,
    UploadExpired,
    UploadIncomplete,
    UploadNotFound,
    UploadNotReceiving,
)
from pixdrop.models import Image, Opener, Part, Upload, UploadState, is_valid_id
from pixdrop.ports import LeaseBusy, MetadataStore, Staging
from pixdrop.protocols.digest import ExpectedDigests
from pixdrop.protocols.problem import problem_body
from pixdrop.services.completion import Completion, StoredImage
from pixdrop.services.lifecycle import Lifecycle, token
from pixdrop.services.locks import LeaseLocks
from pixdrop.services.metering import Body

__all__ = ["ChunkReceipt", "UploadService", "UploadStatus"]


def _index_number(text: str) -> int:
    """*text* as a chunk index if it is ASCII digits of a number below 2**31, else -1
    (``str.isdigit`` takes ``¹``; ``int`` refuses strings of more than 4300 digits)."""
    significant = text.lstrip("0") or "0"
    if not (text.isascii() and text.isdigit() and len(significant) <= 10):
        return -1
    number = int(significant)
    return number if number < 2**31 else -1


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

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        completion: Completion,
        staging: Staging,
        meta: MetadataStore,
        locks: LeaseLocks,
    ) -> None:
        self.lifecycle = lifecycle
        self.completion = completion
        self.staging = staging
        self.meta = meta
        self.locks = locks
        self.limits = lifecycle.limits
        self.clock = lifecycle.clock

    async def create(
        self,
        *,
        size: int,
        chunk_size: int | None = None,
        sha256: str | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        opener: Opener | None = None,
    ) -> UploadStatus:
        """Start an upload of *size* bytes; raise ``InvalidUploadRequest``/``PayloadTooLarge``."""
        chunk_size = self._check_shape(size, chunk_size)
        upload = self.lifecycle.new(
            "native",
            size,
            chunk_size=chunk_size,
            sha256=sha256,
            filename=filename,
            content_type=content_type,
            opener=opener,
        )
        upload = await self.lifecycle.open(upload)
        return UploadStatus(upload, [], list(range(upload.chunk_count)))

    @property
    def min_chunk_size(self) -> int:
        """The smallest chunk size a client may ask for: the setting, or the blob store's
        smallest part if that is larger (S3: 5 MiB), since a native chunk is a part."""
        return max(self.limits.min_chunk_size, self.staging.min_part_size)

    def _check_shape(self, size: int, chunk_size: int | None) -> int:
        lim = self.limits
        self.lifecycle.check_size(size, "image")
        smallest = self.min_chunk_size
        if chunk_size is None:
            chunk_size = max(lim.default_chunk_size, smallest)
        elif not smallest <= chunk_size <= lim.max_chunk_size:
            raise InvalidUploadRequest(
                f"chunk_size must be between {smallest} and {lim.max_chunk_size} bytes.",
                limit="chunk_size",
                value=chunk_size,
                allowed=[smallest, lim.max_chunk_size],
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
        return self._status_of(upload, await self.meta.list_parts(upload_id))

    @staticmethod
    def _status_of(upload: Upload, parts: list[Part]) -> UploadStatus:
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
        number = _index_number(index_text)
        if number < 0:  # refused without taking a lock: _chunk_index raises ChunkNotFound
            upload, _ = await self.meta.chunk_slot(upload_id, number)
            self._check_native(upload)
            self._chunk_index(upload, index_text)
        try:
            async with self.locks.hold(f"chunk/{upload_id}/{number}"):
                upload, stored = await self.meta.chunk_slot(upload_id, number)
                self._check_native(upload)
                index = self._chunk_index(upload, index_text)
                self._check_receiving(upload)
                start, end = upload.chunk_range(index)
                if content_length is not None and content_length != end - start:
                    raise self._wrong_length(index, end - start, content_length)
                stream = Body(
                    body,
                    limit=end - start,
                    too_long=lambda: self._wrong_length(index, end - start, None),
                    expected=expected,
                )
                if stored is None:
                    return await self._write_chunk(upload, index, stream)
        except LeaseBusy:
            error = ChunkBusy(
                f"Chunk {number} is being written by another request; retry shortly.",
                index=number,
            )
            error.headers["Retry-After"] = "1"
            raise error from None
        # Already stored: compared outside the lock, since a recorded part never changes.
        return await self._compare_chunk(upload, index, stored, stream)

    def _chunk_index(self, upload: Upload, text: str) -> int:
        number = _index_number(text)
        if 0 <= number < upload.chunk_count:
            return number
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

    async def _write_chunk(self, upload: Upload, index: int, stream: Body) -> ChunkReceipt:
        start, end = upload.chunk_range(index)
        try:
            stream.store_hashes_sha256()  # the part's receipt is the chunk's sha256
            part = await self.staging.put_part(
                upload.id,
                token(upload),
                number=index + 1,
                offset=start,
                data=stream,
                observe=stream.observe,
            )
        except FileNotFoundError:
            raise UploadNotFound(f"Upload {upload.id} was deleted.") from None
        if part.length != end - start:
            raise self._wrong_length(index, end - start, part.length)
        stream.verify_digests(f"chunk {index}", sha256=part.sha256)
        await self.meta.add_part(upload.id, part)
        return ChunkReceipt(upload.id, index, part, created=True)

    async def _compare_chunk(
        self, upload: Upload, index: int, stored: Part, stream: Body
    ) -> ChunkReceipt:
        """A chunk that is already stored: hash the re-sent bytes, store nothing."""
        sha256 = await stream.drain()
        if stream.length != stored.length:
            raise self._wrong_length(index, stored.length, stream.length)
        stream.verify_digests(f"chunk {index}")
        if sha256 != stored.sha256:
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
        # Read once: a chunk's recorded part never changes, so with none missing these are
        # the upload's final parts, whatever arrives meanwhile.
        parts = await self.meta.list_parts(upload_id)
        state = self._status_of(upload, parts)
        if state.missing:
            raise UploadIncomplete(
                f"Upload {upload.id} is missing {len(state.missing)} of "
                f"{upload.chunk_count} chunks; send them, then complete again.",
                missing=state.missing,
            )
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(self.locks.hold(f"complete/{upload.id}"))
            except LeaseBusy:
                raise Conflict(
                    f"Upload {upload.id} is being completed or deleted by another request; "
                    "ask GET /v1/uploads/{id} for the result in a moment."
                ) from None
            upload = await self.get(upload_id)
            if upload.state is UploadState.COMPLETED and upload.image_id:
                return StoredImage(await self.meta.get_image(upload.image_id), None)
            # Chunks are refused from here on, so the bytes hashed below stay as they are.
            await self.meta.transition(
                upload.id, {UploadState.RECEIVING, UploadState.COMPLETING}, UploadState.COMPLETING
            )
            try:
                return await self._ingest(upload, parts)
            except (UnprocessableImage, GrantUsed, GrantTooLarge) as exc:  # never an image
                await self.lifecycle.free(upload, ending="refused", problem=problem_body(exc))
                raise
        raise AssertionError("unreachable")

    async def _ingest(self, upload: Upload, parts: list[Part]) -> StoredImage:
        staged = await self.completion.stage(upload, parts)

        async def record(image: Image) -> None:
            await self.meta.complete_upload(upload.id, image)

        return await self.completion.ingest(staged, filename=upload.filename, record=record)

    async def abort(self, upload_id: str) -> None:
        """Forget the upload, then free its bytes (a crash in between leaves only bytes).

        Under the upload's completion lease, so that an abort and a completion never
        interleave: one of them wins whole. While a completion runs: ``Conflict``; once it
        made the image: ``UploadNotReceiving`` (the image stays; delete it with its token).
        """
        upload = await self.get(upload_id)
        try:
            async with self.locks.hold(f"complete/{upload.id}"):
                upload = await self.get(upload_id)  # as the last completion left it
                if upload.state is UploadState.COMPLETED:
                    raise UploadNotReceiving(
                        f"Upload {upload.id} is completed: it made image {upload.image_id}, "
                        "which stays. Delete the image with its delete token instead.",
                        image_id=upload.image_id,
                    )
                await self.lifecycle.free(upload)
        except LeaseBusy:
            raise Conflict(
                f"Upload {upload.id} is being completed by another request; ask "
                "GET /v1/uploads/{id} for the result in a moment."
            ) from None
