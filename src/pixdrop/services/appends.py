"""Appends: a resumable upload (tus 1.0, the IETF draft) grows by bodies sent at its offset.

* An append writes at the upload's current offset (``Staging.put_part``), then records the
  part; the offset is the end of the recorded parts, so it is exact after any crash.
* A long body is written as a run of parts, one per *checkpoint* (``Checkpoints``: every so
  many bytes or seconds): each is made durable and recorded before the next begins, so a
  crash in the middle of a large PATCH loses at most the bytes since the last checkpoint
  (tus-js-client and Uppy send a whole file in one PATCH). A body with a checksum is one
  part: it is kept whole or not at all, as the tus checksum extension wants.
* An interrupted append (the client went away, or sent nothing for ``idle_timeout`` seconds)
  keeps what reached the store, unless it carried a checksum, which can then not be verified.
* One writer per upload, on any process or node: the writer holds the upload's lease. A newer
  request does not wait for an older one whose client may be gone: it asks it to stop (through
  the lease), the older one records what it has and answers 409, and the newer one goes on.
* When the last byte is in, ``on_complete`` (the resumable service) completes the upload
  before the answer is sent.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace

from pixdrop.errors import (
    InconsistentUploadLength,
    OffsetMismatch,
    PayloadTooLarge,
    PixdropError,
    UploadLocked,
    UploadNotFound,
    UploadNotReceiving,
    UploadTakenOver,
)
from pixdrop.models import Image, Part, Upload, UploadState
from pixdrop.ports import LeaseBusy, MetadataStore, Staging
from pixdrop.services.completion import StoredImage
from pixdrop.services.lifecycle import Lifecycle, token
from pixdrop.services.locks import LeaseLocks
from pixdrop.services.metering import Body, Checksum, checksum_algorithms

__all__ = ["AppendRequest", "AppendResult", "Appender", "Checkpoints", "Progress", "writer_key"]


@dataclass(frozen=True, slots=True)
class Progress:
    """What a client resuming an upload needs to know."""

    upload: Upload
    #: Bytes received; ``None`` for a final upload whose partial uploads are not all complete.
    offset: int | None
    #: The total size, once known.
    length: int | None
    #: The stored image, once the upload completed (``None`` if it was deleted since).
    image: Image | None


@dataclass(frozen=True, slots=True)
class AppendResult:
    """The outcome of one append: the new progress and, if it completed an image, the image."""

    progress: Progress
    #: Set when this request completed the upload (the delete token is only here, once).
    stored: StoredImage | None
    #: The body ended early (client gone or idle); what arrived is kept.
    interrupted: bool


@dataclass(frozen=True, slots=True)
class AppendRequest:
    """One append, as the protocol adapter parsed it (see ``ResumableService.append``)."""

    offset: int
    body: AsyncIterator[bytes]
    content_length: int | None
    length: int | None = None
    complete: bool | None = None
    checksum: Checksum | None = None
    trailer_checksum: Callable[[], Checksum | None] | None = None


@dataclass(frozen=True, slots=True)
class Checkpoints:
    """When a long append records what it has received so far: after *size* bytes or
    *seconds* since its last checkpoint, whichever comes first (0 turns either off; both 0:
    one part per request). A checkpoint costs one flush and one metadata write (on S3, the
    write of the tail under a part's size)."""

    size: int = 8 * 1024 * 1024
    seconds: float = 1.0


class _Segments:
    """A body cut at checkpoints: ``next`` answers the part to write next, ``None`` at the
    end. Bytes are never held back: a part ends after the block that reaches a checkpoint
    (the clock is read as blocks arrive)."""

    def __init__(self, body: AsyncIterator[bytes], every: Checkpoints) -> None:
        self._body = body
        self._every = every
        self._next: bytes | None = None
        self._ended = False

    async def next(self) -> AsyncIterator[bytes] | None:
        """The next part's bytes (it has at least one); ``None`` once the body is spent."""
        if self._ended:
            return None
        try:  # read ahead: a body that ends at a checkpoint makes no empty part
            self._next = await anext(self._body)
        except StopAsyncIteration:
            self._ended = True
            return None
        return self._part()

    async def _part(self) -> AsyncIterator[bytes]:
        size, seconds = self._every.size, self._every.seconds
        deadline = time.monotonic() + seconds if seconds else None
        block, sent = self._next, 0
        while block is not None:
            yield block
            sent += len(block)
            if (size and sent >= size) or (deadline and time.monotonic() >= deadline):
                return
            try:
                block = await anext(self._body)
            except StopAsyncIteration:
                self._ended = True
                return


def writer_key(upload_id: str) -> str:
    """The lease of the request writing a resumable upload."""
    return f"upload/{upload_id}"


class _Writer:
    """The body being written under a writer lease: what a newer request asks to stop."""

    def __init__(self) -> None:
        self.body: Body | None = None
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True
        if self.body is not None:
            self.body.stop()


OnComplete = Callable[[Upload], Awaitable[StoredImage | None]]


class Appender:
    """Append bodies to resumable uploads (see the module docstring)."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        staging: Staging,
        meta: MetadataStore,
        locks: LeaseLocks,
        idle_timeout: float,
        lock_wait: float,
        on_complete: OnComplete,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.staging = staging
        self.meta = meta
        self.locks = locks
        self.idle_timeout = idle_timeout
        self.lock_wait = lock_wait
        self.on_complete = on_complete
        self.checkpoints = checkpoints or Checkpoints()

    @asynccontextmanager
    async def writing(self, upload_id: str, writer: _Writer | None = None) -> AsyncIterator[None]:
        """Hold the upload's writer lease, taken over from an older request if need be;
        ``UploadLocked`` (423) if that request does not yield within ``lock_wait``."""
        writer = writer or _Writer()
        async with AsyncExitStack() as stack:
            try:
                await stack.enter_async_context(
                    self.locks.take_over(writer_key(upload_id), writer.stop)
                )
            except LeaseBusy:
                error = UploadLocked(
                    f"Upload {upload_id} is being written by another request that did "
                    f"not yield within {self.lock_wait:g} s; retry shortly."
                )
                error.headers["Retry-After"] = "1"
                raise error from None
            yield

    async def append(
        self, upload_id: str, request: AppendRequest, check: Callable[[Upload], None]
    ) -> AppendResult:
        """Append *request* to the upload under its writer lease; *check* refuses uploads
        this request may not write (read under the lease, in the same lookup as the offset)."""
        writer = _Writer()
        async with self.writing(upload_id, writer):
            upload, current = await self.meta.resume_point(upload_id)
            check(upload)
            if upload.state is not UploadState.RECEIVING:
                return await self._to_finished(upload, request)
            self._check_offset(upload, current, request.offset)
            upload = await self._declare_length(upload, current, request)
            body = self._body(upload, current, request)
            writer.body = body
            if writer.stopped:
                body.stop()
            written = await self._write(upload, current, body, request)
            return await self._conclude(upload, current + written, body, request)

    async def _to_finished(self, upload: Upload, request: AppendRequest) -> AppendResult:
        """An append to a complete upload: for tus, an empty one at its end is a harmless
        repeat; the IETF draft (*complete* given) refuses every one."""
        harmless = request.complete is None and not request.content_length
        if harmless and request.offset == upload.size:
            return AppendResult(Progress(upload, upload.size, upload.size, None), None, False)
        raise UploadNotReceiving(
            f"Upload {upload.id} is complete ({upload.size} bytes) and takes no more data.",
            offset=upload.size,
        )

    @staticmethod
    def _check_offset(upload: Upload, current: int, offset: int) -> None:
        if offset != current:
            raise OffsetMismatch(
                f"Upload-Offset is {offset}, but upload {upload.id} has {current} bytes; "
                f"send from offset {current}.",
                offset=current,
                expected_offset=current,
                provided_offset=offset,
            )

    async def _declare_length(self, upload: Upload, current: int, request: AppendRequest) -> Upload:
        length, sending = request.length, current + (request.content_length or 0)
        if length is None:
            return upload
        if not upload.length_deferred:
            if length != upload.size:
                raise InconsistentUploadLength(
                    f"Upload {upload.id} is {upload.size} bytes long; its length cannot change "
                    f"to {length}.",
                    length=upload.size,
                )
            return upload
        if length < sending:
            raise InconsistentUploadLength(
                f"Upload-Length {length} is less than the {sending} bytes the upload would "
                "then hold.",
                offset=current,
            )
        self.lifecycle.check_size(length)
        await self.meta.set_length(upload.id, length)
        return replace(upload, size=length, length_deferred=False)

    def _body(self, upload: Upload, current: int, request: AppendRequest) -> Body:
        known = None if upload.length_deferred else upload.size
        limit = (known if known is not None else self.lifecycle.max_size) - current
        too_long = self.too_long(upload, current, known)
        if request.content_length is not None and request.content_length > limit:
            raise too_long()
        sent = None if request.content_length is None else current + request.content_length
        if request.complete and known is not None and sent is not None and sent != known:
            raise InconsistentUploadLength(
                f"This request completes the upload, but {current} + {request.content_length} "
                f"bytes is not its length of {known} bytes.",
                offset=current,
                length=known,
            )
        return Body(
            request.body,
            limit=limit,
            too_long=too_long,
            checksums=checksum_algorithms(request.checksum, request.trailer_checksum),
            idle_timeout=self.idle_timeout,
        )

    def too_long(
        self, upload: Upload, current: int, known: int | None
    ) -> Callable[[], PixdropError]:
        """The error for a body that would carry the upload past its length."""
        max_size = self.lifecycle.max_size
        if known is None:
            return lambda: PayloadTooLarge(
                f"Upload {upload.id} would grow past {max_size} bytes, the largest accepted.",
                limit="max_image_size",
                allowed=max_size,
            )
        return lambda: PayloadTooLarge(
            f"Upload {upload.id} is {known} bytes long and has {current}; this request sends "
            f"more than the {known - current} bytes that remain.",
            limit="upload_length",
            allowed=known - current,
        )

    async def _write(self, upload: Upload, current: int, body: Body, request: AppendRequest) -> int:
        """Store the body at *current* and record what is kept, a checkpoint at a time;
        return its length."""
        if request.checksum is not None or request.trailer_checksum is not None:
            return await self._write_whole(upload, current, body, request)
        segments, offset = _Segments(body, self.checkpoints), current
        while (segment := await segments.next()) is not None:
            part = await self._put(upload, offset, segment, body)
            if part.length:
                await self.meta.add_part(upload.id, part)
            offset = part.end
        return offset - current

    async def _write_whole(
        self, upload: Upload, current: int, body: Body, request: AppendRequest
    ) -> int:
        """A body with a checksum: one part, recorded only once the checksum holds."""
        part = await self._put(upload, current, body, body)
        written = body.kept(part.length, request.checksum, request.trailer_checksum)
        if written:
            await self.meta.add_part(upload.id, part)
        return written

    async def _put(
        self, upload: Upload, offset: int, data: AsyncIterator[bytes], body: Body
    ) -> Part:
        try:
            return await self.staging.put_part(
                upload.id, token(upload), number=0, offset=offset, data=data, observe=body.observe
            )
        except FileNotFoundError:
            raise UploadNotFound(f"Upload {upload.id} was deleted.") from None

    async def _conclude(
        self, upload: Upload, offset: int, body: Body, request: AppendRequest
    ) -> AppendResult:
        """After the bytes are recorded: say so, or complete the upload."""
        if body.taken_over:
            raise UploadTakenOver(
                f"A newer request took over upload {upload.id}; {offset} bytes are "
                "stored. Ask for the offset and go on from there.",
                offset=offset,
            )
        known = None if upload.length_deferred else upload.size
        ended = not body.interrupted and request.complete
        if ended and known is not None and offset != known:
            raise InconsistentUploadLength(
                f"This request was to end upload {upload.id}, but it is {known} bytes long "
                f"and has {offset}; the bytes are kept.",
                offset=offset,
                length=known,
            )
        if ended and known is None:
            await self.meta.set_length(upload.id, offset)
            upload = replace(upload, size=offset, length_deferred=False)
            known = offset
        done = not body.interrupted and request.complete is not False and offset == known
        if not done:
            return AppendResult(Progress(upload, offset, known, None), None, body.interrupted)
        # (A partial upload may be gone once this returns: its final upload spent it.)
        stored = await self.on_complete(upload)
        image = stored.image if stored else None
        upload = replace(
            upload,
            state=UploadState.COMPLETED,
            image_id=image.id if image and not upload.is_partial else None,
        )
        return AppendResult(Progress(upload, offset, known, image), stored, body.interrupted)
