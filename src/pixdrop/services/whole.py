"""A resumable upload whose creation request carries all of its bytes (tus creation-with-upload).

Part of ``ResumableService`` (a mixin, like ``concat.py``). Created and appended to as two steps,
such an upload would cost a commit for the upload, one for its part and one for its image, each
with its fsync, plus a pass over the staged file to hash it. Here the body is hashed on its way to
the disk (as a one-request upload is), and the upload, its one part and its image are recorded
in one transaction once the image is stored: before that, nothing refers to the staging file, so
it needs no durable name.

A body that stops early (the client went silent, or away) is kept as the upload's first part,
so a client that gets the answer can resume at its offset. A refused one (not an image, a wrong
checksum) leaves nothing behind: the client never learned the upload's URL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace

import anyio

from pixdrop.models import Image, Part, UploadProtocol, UploadState
from pixdrop.services.appends import (
    AppendBody,
    AppendResult,
    Checksum,
    Progress,
    checksum_algorithms,
)
from pixdrop.services.core import ResumableCore

__all__ = ["WholeCreation"]


class WholeCreation:
    async def create_whole(
        self: ResumableCore,
        *,
        protocol: UploadProtocol,
        length: int,
        body: AsyncIterator[bytes],
        metadata: str | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        checksum: Checksum | None = None,
        trailer_checksum: Callable[[], Checksum | None] | None = None,
    ) -> AppendResult:
        """Create an upload of *length* (> 0) bytes from a request whose *body* holds them all.

        Answers like ``create`` followed by ``append`` at offset 0 (see the module docstring).
        """
        self._check_length(length)
        upload = self._new_upload(
            protocol,
            length,
            metadata=metadata,
            filename=filename,
            content_type=content_type,
            concat=None,
        )
        stream = AppendBody(
            body,
            limit=length,
            too_long=self._too_long(upload, 0, length),
            checksums=checksum_algorithms(checksum, trailer_checksum),
            idle_timeout=self.idle_timeout,
            head_size=self.images.prober.head_size,
        )
        await self.blobs.create_staging(upload.id, durable=False)
        try:
            written = await self.blobs.write_at(upload.id, 0, stream, stream.observe)
            written = stream.kept(written, checksum, trailer_checksum)
            if written != length:  # interrupted: keep what arrived, resumable from there
                await self.blobs.create_staging(upload.id)  # its name now outlives a crash
                parts = [Part(0, written, stream.sha256)] if written else []
                await self.meta.create_upload(upload, parts=parts)
                progress = Progress(upload, written, length, None)
                return AppendResult(progress, None, stream.interrupted)

            completed = replace(upload, state=UploadState.COMPLETED)
            part = Part(0, length, stream.sha256)

            async def record(image: Image) -> None:
                done = replace(completed, image_id=image.id)
                await self.meta.create_upload(done, parts=[part], image=image)

            stored = await self.images.ingest(
                upload.id,
                sha256=stream.sha256,
                size=length,
                head=stream.head,
                filename=filename,
                record=record,
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.blobs.discard(upload.id)
            raise
        completed = replace(completed, image_id=stored.image.id)
        return AppendResult(Progress(completed, length, length, stored.image), stored, False)
