"""ResumableService: uploads appended in order at a stated offset (tus 1.0, the IETF draft).

The protocol adapters (``http/tus.py``, ``http/ietf.py``) translate headers; the rules live here,
on the same staging files, parts and image ingest as the native chunk API:

* An append writes at the upload's current offset, makes the bytes durable, then records them
  as a part; the offset is the end of the recorded parts, so it is exact after any crash.
* An interrupted append (the client went away, or sent nothing for ``idle_timeout`` seconds)
  keeps what reached the disk, unless it carried a checksum, which can then not be verified.
* One writer per upload. A newer request does not wait for an older one whose client may be
  gone: it asks the older one to stop (it records what it has and answers 409), takes the lock
  and goes on (``writers.py``).
* When the last byte is in, the upload goes through image ingest before the answer is sent;
  a refused image frees the upload. tus partial uploads are never images by themselves: a final
  upload joins them once all are complete (``concat.py``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import replace

from pixdrop.errors import (
    Conflict,
    FinalUploadNotWritable,
    ImageNotFound,
    InconsistentUploadLength,
    OffsetMismatch,
    PayloadTooLarge,
    PixdropError,
    UnprocessableImage,
    UploadExpired,
    UploadNotFound,
    UploadNotReceiving,
    UploadTakenOver,
)
from pixdrop.models import Part, Upload, UploadProtocol, UploadState, is_valid_id, new_id
from pixdrop.services.appends import (
    CHECKSUM_ALGORITHMS,
    AppendBody,
    AppendResult,
    Checksum,
    Progress,
    checksum_algorithms,
)
from pixdrop.services.concat import Concatenation
from pixdrop.services.images import StoredImage
from pixdrop.services.uploads import UploadService
from pixdrop.services.whole import WholeCreation
from pixdrop.services.writers import Writers

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "AppendResult",
    "Checksum",
    "Progress",
    "ResumableService",
]

log = logging.getLogger("pixdrop.resumable")


class ResumableService(Concatenation, WholeCreation):
    """Create, resume, append to, concatenate and terminate resumable uploads."""

    def __init__(
        self, uploads: UploadService, *, lock_wait: float = 5.0, idle_timeout: float = 30.0
    ) -> None:
        self.uploads = uploads
        self.images = uploads.images
        self.meta = uploads.meta
        self.blobs = uploads.blobs
        self.locker = uploads.locker
        self.limits = uploads.limits
        self.clock = uploads.clock
        self.idle_timeout = idle_timeout
        self.writers = Writers(self.locker, lock_wait)

    @property
    def max_size(self) -> int:
        return self.limits.max_image_size

    # --- creation ---

    def _check_length(self, length: int) -> None:
        if length > self.max_size:
            raise PayloadTooLarge(
                f"The upload is {length} bytes; the largest accepted is {self.max_size} bytes.",
                limit="max_image_size",
                value=length,
                allowed=self.max_size,
            )

    def _new_upload(
        self,
        protocol: UploadProtocol,
        length: int | None,
        *,
        metadata: str | None,
        filename: str | None,
        content_type: str | None,
        concat: str | None,
    ) -> Upload:
        now = self.clock()
        return Upload(
            id=new_id(),
            size=length or 0,
            chunk_size=self.limits.default_chunk_size,
            state=UploadState.RECEIVING,
            created_at=now,
            expires_at=now + self.limits.ttl,
            filename=filename,
            content_type=content_type,
            protocol=protocol,
            length_deferred=length is None,
            upload_metadata=metadata,
            concat=concat,
        )

    async def create(
        self,
        *,
        protocol: UploadProtocol,
        length: int | None,
        metadata: str | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        partial: bool = False,
        sha256: str | None = None,
    ) -> Upload:
        """Start an upload of *length* bytes (``None``: told later).

        A *sha256* (hex) of the whole upload is checked once the last byte is in (a mismatch
        refuses the image like any other defect).
        """
        if length is not None:
            self._check_length(length)
        upload = self._new_upload(
            protocol,
            length,
            metadata=metadata,
            filename=filename,
            content_type=content_type,
            concat="partial" if partial else None,
        )
        if sha256:
            upload = replace(upload, sha256=sha256.lower())
        await self.blobs.create_staging(upload.id)
        await self.meta.create_upload(upload)
        if length == 0:
            # Complete on arrival: an empty piece is ready to join; an empty file is refused.
            await self._completed(upload)
            upload = replace(upload, state=UploadState.COMPLETED)
        return upload

    # --- reading ---

    async def get(self, upload_id: str) -> Upload:
        """The resumable upload *upload_id*; ``UploadNotFound`` for others (and native ones)."""
        if not is_valid_id(upload_id):
            raise UploadNotFound(f"There is no upload with id {upload_id!r}.")
        upload = await self.meta.get_upload(upload_id)
        self._check_resumable(upload)
        return upload

    @staticmethod
    def _check_resumable(upload: Upload) -> None:
        if upload.protocol == "native":
            raise UploadNotFound(
                f"Upload {upload.id} was made with the chunk API; use /v1/uploads/{upload.id}."
            )

    def _check_alive(self, upload: Upload) -> None:
        if upload.state is not UploadState.COMPLETED and upload.expires_at <= self.clock():
            raise UploadExpired(
                f"Upload {upload.id} expired at {upload.expires_at.isoformat()}; start a new one."
            )

    async def progress(self, upload_id: str, *, settle: bool = False) -> Progress:
        """Offset, length and (once complete) image of an upload.

        With *settle*, a request still writing the upload is stopped first (as a new append
        would stop it), so the offset answered is the one the next append must use.
        """
        upload = await self.get(upload_id)
        self._check_alive(upload)
        if settle and upload.state is UploadState.RECEIVING and not upload.is_final:
            async with self.writers.hold(upload.id):
                upload = await self.get(upload_id)
        # Normally the last partial's append completes a final upload; this catches a
        # completion that a crash interrupted.
        final_waiting = upload.is_final and upload.state is UploadState.RECEIVING
        if final_waiting and await self._try_assemble(upload.id):
            upload = await self.get(upload_id)
        return await self._progress(upload)

    async def _progress(self, upload: Upload) -> Progress:
        length = None if upload.length_deferred else upload.size
        if upload.state is UploadState.COMPLETED:
            image = None
            if upload.image_id:
                with suppress(ImageNotFound):
                    image = await self.meta.get_image(upload.image_id)
            return Progress(upload, upload.size, upload.size, image)
        if upload.is_final:
            if length is None:
                partials = await self._partials_of(upload.id)
                if partials is not None and all(not p.length_deferred for p in partials):
                    length = sum(p.size for p in partials)
            return Progress(upload, None, length, None)
        return Progress(upload, await self.meta.received_end(upload.id), length, None)

    # --- appending ---

    def _check_writable(self, upload: Upload) -> None:
        self._check_resumable(upload)
        self._check_alive(upload)
        if upload.is_final:
            raise FinalUploadNotWritable(
                f"Upload {upload.id} is a final upload: it is made of its partial uploads and "
                "takes no data itself. Send the data to the partial uploads."
            )

    async def append(
        self,
        upload_id: str,
        *,
        offset: int,
        body: AsyncIterator[bytes],
        content_length: int | None,
        length: int | None = None,
        complete: bool | None = None,
        checksum: Checksum | None = None,
        trailer_checksum: Callable[[], Checksum | None] | None = None,
    ) -> AppendResult:
        """Append *body* at *offset*, which must be the upload's offset.

        *length* declares the total size (once, for uploads created without it). *complete*:
        ``None`` completes the upload when its length is reached (tus); ``True`` says this body
        ends the upload (IETF ``Upload-Complete: ?1``; the length follows if unknown); ``False``
        says it does not. A *checksum* (or one read from the trailer after the body) must match
        the body, else nothing is kept (``ChecksumMismatch``). A *trailer_checksum* arrives
        after the body, so the body is hashed with every supported algorithm.
        """
        if not is_valid_id(upload_id):
            raise UploadNotFound(f"There is no upload with id {upload_id!r}.")
        async with self.writers.hold(upload_id) as slot:
            upload, current = await self.meta.resume_point(upload_id)
            self._check_writable(upload)
            if upload.state is not UploadState.RECEIVING:
                return await self._append_to_finished(upload, offset, content_length, complete)
            if offset != current:
                raise OffsetMismatch(
                    f"Upload-Offset is {offset}, but upload {upload.id} has {current} bytes; "
                    f"send from offset {current}.",
                    offset=current,
                    expected_offset=current,
                    provided_offset=offset,
                )
            upload = await self._declare_length(upload, current, length, content_length)
            known = None if upload.length_deferred else upload.size
            limit = (known if known is not None else self.max_size) - current
            if content_length is not None and content_length > limit:
                raise self._too_long(upload, current, known)()
            sent = None if content_length is None else current + content_length
            if complete and known is not None and sent is not None and sent != known:
                raise InconsistentUploadLength(
                    f"This request completes the upload, but {current} + {content_length} "
                    f"bytes is not its length of {known} bytes.",
                    offset=current,
                    length=known,
                )
            stream = AppendBody(
                body,
                limit=limit,
                too_long=self._too_long(upload, current, known),
                checksums=checksum_algorithms(checksum, trailer_checksum),
                idle_timeout=self.idle_timeout,
            )
            slot.body = stream
            try:
                written = await self.blobs.write_at(upload.id, current, stream, stream.observe)
            except FileNotFoundError:
                raise UploadNotFound(f"Upload {upload.id} was deleted.") from None
            written = stream.kept(written, checksum, trailer_checksum)
            if written:
                part = Part(current, current + written, stream.sha256)
                await self.meta.add_part(upload.id, part)
            new_offset = current + written
            if stream.taken_over:
                raise UploadTakenOver(
                    f"A newer request took over upload {upload.id}; {new_offset} bytes are "
                    "stored. Ask for the offset and go on from there.",
                    offset=new_offset,
                )
            if not stream.interrupted and complete and known is not None and new_offset != known:
                raise InconsistentUploadLength(
                    f"This request was to end upload {upload.id}, but it is {known} bytes long "
                    f"and has {new_offset}; the bytes are kept.",
                    offset=new_offset,
                    length=known,
                )
            if not stream.interrupted and complete and known is None:
                await self.meta.set_length(upload.id, new_offset)
                upload = replace(upload, size=new_offset, length_deferred=False)
                known = new_offset
            done = (
                not stream.interrupted
                and complete is not False
                and known is not None
                and new_offset == known
            )
            if not done:
                return AppendResult(
                    Progress(upload, new_offset, known, None), None, stream.interrupted
                )
            # (A partial upload may be gone once this returns: its final upload spent it.)
            stored = await self._completed(upload)
            image = stored.image if stored else None
            upload = replace(
                upload,
                state=UploadState.COMPLETED,
                image_id=image.id if image and not upload.is_partial else None,
            )
            progress = Progress(upload, new_offset, known, image)
            return AppendResult(progress, stored, stream.interrupted)

    async def _append_to_finished(
        self, upload: Upload, offset: int, content_length: int | None, complete: bool | None
    ) -> AppendResult:
        """An append to a complete upload: for tus, an empty one at its end is a harmless
        repeat; the IETF draft (*complete* given) refuses every one."""
        if complete is None and offset == upload.size and not content_length:
            return AppendResult(await self._progress(upload), None, False)
        raise UploadNotReceiving(
            f"Upload {upload.id} is complete ({upload.size} bytes) and takes no more data.",
            offset=upload.size,
        )

    async def _declare_length(
        self, upload: Upload, current: int, length: int | None, content_length: int | None
    ) -> Upload:
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
        if length < current + (content_length or 0):
            raise InconsistentUploadLength(
                f"Upload-Length {length} is less than the {current + (content_length or 0)} "
                "bytes the upload would then hold.",
                offset=current,
            )
        self._check_length(length)
        await self.meta.set_length(upload.id, length)
        return replace(upload, size=length, length_deferred=False)

    def _too_long(
        self, upload: Upload, current: int, known: int | None
    ) -> Callable[[], PixdropError]:
        if known is None:
            return lambda: PayloadTooLarge(
                f"Upload {upload.id} would grow past {self.max_size} bytes, the largest accepted.",
                limit="max_image_size",
                allowed=self.max_size,
            )
        return lambda: PayloadTooLarge(
            f"Upload {upload.id} is {known} bytes long and has {current}; this request sends "
            f"more than the {known - current} bytes that remain.",
            limit="upload_length",
            allowed=known - current,
        )

    # --- completion ---

    async def _completed(self, upload: Upload) -> StoredImage | None:
        """The upload has all its bytes: ingest it, or, for a partial, complete its finals."""
        if not upload.is_partial:
            return await self._ingest(upload)
        await self.meta.transition(upload.id, {UploadState.RECEIVING}, UploadState.COMPLETED)
        stored = None
        for final_id in await self.meta.finals_waiting_for(upload.id):
            stored = await self._try_assemble(final_id) or stored
        return stored

    async def _ingest(self, upload: Upload) -> StoredImage:
        # No "completing" state on the way, unlike the chunk API: nothing can write to the upload
        # meanwhile (its writer lock is held, or it is a final upload, which takes no data), so
        # that would be one more commit and fsync. After a crash here the upload is still
        # receiving and has all its bytes: the client's next append (an empty one at the end)
        # completes it.
        try:
            # Bytes past the end that were never recorded (a refused body) must not join in.
            await self.blobs.truncate_staging(upload.id, upload.size)
            return await self.uploads.finish_staged(upload)
        except UnprocessableImage:
            await self._free(upload.id)
            raise

    async def _free(self, upload_id: str) -> None:
        await self.uploads.free(upload_id)

    # --- termination ---

    async def terminate(self, upload_id: str) -> None:
        """Forget the upload and free its bytes (its image, if any, stays)."""
        upload = await self.get(upload_id)
        if upload.is_partial:
            waiting = await self.meta.finals_waiting_for(upload.id)
            if waiting:
                raise Conflict(
                    f"Upload {upload.id} is a part of final upload {waiting[0]}, which waits "
                    "for it; terminate the final upload first.",
                    final=waiting[0],
                )
        async with self.writers.hold(upload.id):
            await self._free(upload.id)
