"""ResumableService: uploads appended in order at a stated offset (tus 1.0, the IETF draft).

The protocol adapters (``http/tus.py``, ``http/ietf.py``) parse headers and make one call
here. This service is the face of small parts, composed, not inherited:

* ``appends.Appender``: an append at the upload's offset, under the upload's writer lease;
* ``concat.Concatenator``: tus final uploads made of partial ones;
* ``oneshot.OneShot``: a creation request that carries the whole file;
* ``lifecycle.Lifecycle`` and ``completion.Completion``: shared with the native chunk API, so
  every upload is created, freed and completed the same way.

When the last byte is in, the upload goes through the completion pipeline before the answer
is sent; a refused image frees the upload. tus partial uploads are never images by themselves:
a final upload joins them once all are complete.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import replace

from pixdrop.errors import (
    Conflict,
    FinalUploadNotWritable,
    GrantTooLarge,
    GrantUsed,
    ImageNotFound,
    UnprocessableImage,
    UploadNotFound,
)
from pixdrop.models import Image, Opener, Upload, UploadProtocol, UploadState, is_valid_id
from pixdrop.ports import MetadataStore, Staging
from pixdrop.protocols.problem import problem_body
from pixdrop.services.appends import (
    Appender,
    AppendRequest,
    AppendResult,
    Checkpoints,
    Progress,
)
from pixdrop.services.completion import Completion, Staged, StoredImage, staged_upload
from pixdrop.services.concat import Concatenator
from pixdrop.services.lifecycle import Lifecycle
from pixdrop.services.locks import LeaseLocks
from pixdrop.services.metering import CHECKSUM_ALGORITHMS, Checksum
from pixdrop.services.oneshot import OneShot

__all__ = [
    "CHECKSUM_ALGORITHMS",
    "AppendResult",
    "Checksum",
    "Progress",
    "ResumableService",
]


class ResumableService:
    """Create, resume, append to, concatenate and terminate resumable uploads."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        completion: Completion,
        staging: Staging,
        meta: MetadataStore,
        locks: LeaseLocks,
        max_request_size: int,
        lock_wait: float = 5.0,
        idle_timeout: float = 30.0,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self.lifecycle = lifecycle
        self.clock = lifecycle.clock
        self.completion = completion
        self.staging = staging
        self.meta = meta
        self.appender = Appender(
            lifecycle=lifecycle,
            staging=staging,
            meta=meta,
            locks=locks,
            idle_timeout=idle_timeout,
            lock_wait=lock_wait,
            on_complete=self._completed,
            checkpoints=checkpoints,
        )
        self.concat = Concatenator(
            lifecycle=lifecycle, staging=staging, meta=meta, locks=locks, ingest=self._ingest_key
        )
        self.oneshot = OneShot(
            lifecycle=lifecycle,
            completion=completion,
            staging=staging,
            meta=meta,
            appender=self.appender,
            max_request_size=max_request_size,
        )
        self.create_whole = self.oneshot.create_whole
        self.create_final = self.concat.create_final

    @property
    def max_size(self) -> int:
        return self.lifecycle.max_size

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
        opener: Opener | None = None,
    ) -> Upload:
        """Start an upload of *length* bytes (``None``: told later).

        A *sha256* (hex) of the whole upload is checked once the last byte is in (a mismatch
        refuses the image like any other defect).
        """
        if length is not None:
            self.lifecycle.check_size(length)
        upload = self.lifecycle.new(
            protocol,
            length,
            sha256=sha256,
            metadata=metadata,
            filename=filename,
            content_type=content_type,
            concat="partial" if partial else None,
            opener=opener,
        )
        upload = await self.lifecycle.open(upload)
        if length == 0:
            # Complete on arrival: an empty piece is ready to join; an empty file is refused.
            await self._completed(upload)
            upload = replace(upload, state=UploadState.COMPLETED)
        return upload

    async def get(self, upload_id: str) -> Upload:
        """The resumable upload *upload_id*; ``UploadNotFound`` for others (and native ones)."""
        upload = await self.lifecycle.get(upload_id)
        self._check_resumable(upload)
        return upload

    @staticmethod
    def _check_resumable(upload: Upload) -> None:
        if upload.protocol == "native":
            raise UploadNotFound(
                f"Upload {upload.id} was made with the chunk API; use /v1/uploads/{upload.id}."
            )

    async def progress(self, upload_id: str, *, settle: bool = False) -> Progress:
        """Offset, length and (once complete) image of an upload.

        With *settle*, a request still writing the upload is stopped first (as a new append
        would stop it), so the offset answered is the one the next append must use.
        """
        upload = await self.get(upload_id)
        self.lifecycle.check_alive(upload)
        if settle and upload.state is UploadState.RECEIVING and not upload.is_final:
            async with self.appender.writing(upload.id):
                upload = await self.get(upload_id)
        # Normally the last partial's append completes a final upload; this catches a
        # completion that a crash interrupted.
        final_waiting = upload.is_final and upload.state is UploadState.RECEIVING
        if final_waiting and await self.concat.assemble(upload.id):
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
                partials = await self.concat.partials_of(upload.id)
                if partials is not None and all(not p.length_deferred for p in partials):
                    length = sum(p.size for p in partials)
            return Progress(upload, None, length, None)
        return Progress(upload, await self.meta.received_end(upload.id), length, None)

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
        request = AppendRequest(
            offset, body, content_length, length, complete, checksum, trailer_checksum
        )
        return await self.appender.append(upload_id, request, self._check_writable)

    def _check_writable(self, upload: Upload) -> None:
        self._check_resumable(upload)
        self.lifecycle.check_alive(upload)
        if upload.is_final:
            raise FinalUploadNotWritable(
                f"Upload {upload.id} is a final upload: it is made of its partial uploads and "
                "takes no data itself. Send the data to the partial uploads."
            )

    async def _completed(self, upload: Upload) -> StoredImage | None:
        """The upload has all its bytes: ingest it, or, for a partial, complete its finals."""
        if upload.is_partial:
            return await self.concat.partial_completed(upload)
        # No "completing" state on the way, unlike the chunk API: nothing can write to the
        # upload meanwhile (its writer lease is held, or it is a final upload, which takes no
        # data), so that would be one more commit and fsync. After a crash here the upload is
        # still receiving and has all its bytes: the client's next (empty) append completes it.
        staged = await self.completion.stage(upload, await self.meta.list_parts(upload.id))
        return await self._ingest(upload, staged)

    async def _ingest_key(self, upload: Upload, key: str) -> StoredImage:
        """Ingest a final upload from its joined object."""
        staged = staged_upload(upload, key)
        return await self._ingest(upload, staged)

    async def _ingest(self, upload: Upload, staged: Staged) -> StoredImage:

        async def record(image: Image) -> None:
            await self.meta.complete_upload(upload.id, image)

        try:
            return await self.completion.ingest(staged, filename=upload.filename, record=record)
        except (UnprocessableImage, GrantUsed, GrantTooLarge) as exc:  # never an image
            await self.lifecycle.free(upload, ending="refused", problem=problem_body(exc))
            raise

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
        async with self.appender.writing(upload.id):
            await self.lifecycle.free(upload)
