"""tus concatenation: a final upload made of partial uploads, joined once all are complete.

Part of ``ResumableService`` (a mixin: the methods below are the service's own, kept in a file
of their own). The partial uploads are appended to like any upload; when the last byte of the
last one arrives (or the final upload is created after them), the staged pieces are joined in
the kernel (``BlobStore.concat_staging``: ``copy_file_range``, a reflink where the file system
can) and the final upload goes through image ingest. The pieces are freed after the join, which
the tus concatenation extension allows.
"""

from __future__ import annotations

from dataclasses import replace

from pixdrop.errors import InvalidResumableRequest, UploadNotFound
from pixdrop.models import Upload, UploadProtocol, UploadState
from pixdrop.ports import LockBusy
from pixdrop.services.core import ResumableCore
from pixdrop.services.images import StoredImage

__all__ = ["Concatenation"]


class Concatenation:
    """The concatenation methods of ``ResumableService``."""

    async def create_final(
        self: ResumableCore,
        *,
        protocol: UploadProtocol,
        partial_ids: list[str],
        concat: str,
        metadata: str | None = None,
        filename: str | None = None,
        content_type: str | None = None,
    ) -> tuple[Upload, StoredImage | None]:
        """Join *partial_ids*, in order, into a final upload.

        If every partial upload is complete the image is ingested now (and returned); else the
        final upload completes when the last partial upload receives its last byte.
        """
        if not partial_ids:
            raise InvalidResumableRequest("Upload-Concat: final names no partial uploads.")
        partials = [await self._partial(pid) for pid in partial_ids]
        known = all(not p.length_deferred for p in partials)
        total = sum(p.size for p in partials) if known else None
        if total is not None:
            self._check_length(total)
        upload = self._new_upload(
            protocol,
            total,
            metadata=metadata,
            filename=filename,
            content_type=content_type,
            concat=concat,
        )
        await self.blobs.create_staging(upload.id)
        await self.meta.create_final(upload, partial_ids)
        stored = await self._try_assemble(upload.id)
        return await self.meta.get_upload(upload.id) if stored else upload, stored

    async def _partial(self: ResumableCore, upload_id: str) -> Upload:
        try:
            upload = await self.get(upload_id)
        except UploadNotFound:
            raise InvalidResumableRequest(
                f"Upload-Concat names {upload_id!r}, which is not an upload on this server.",
                partial=upload_id,
            ) from None
        if not upload.is_partial:
            raise InvalidResumableRequest(
                f"Upload {upload_id} is not a partial upload; create the pieces of a final "
                "upload with 'Upload-Concat: partial'.",
                partial=upload_id,
            )
        return upload

    async def _partials_of(self: ResumableCore, final_id: str) -> list[Upload] | None:
        """The partial uploads of a final upload, or ``None`` if one of them is gone."""
        found = []
        for pid in await self.meta.concat_partials(final_id):
            try:
                found.append(await self.meta.get_upload(pid))
            except UploadNotFound:
                return None
        return found

    async def _try_assemble(self: ResumableCore, final_id: str) -> StoredImage | None:
        """Join the partial uploads of *final_id* and ingest the image, if all are complete."""
        try:
            async with self.locker.hold(f"complete/{final_id}"):
                final = await self.meta.get_upload(final_id)
                if final.state is UploadState.COMPLETED:
                    return None
                partials = await self._partials_of(final_id)
                if partials is None or any(p.state is not UploadState.COMPLETED for p in partials):
                    return None
                total = sum(p.size for p in partials)
                if total > self.max_size:
                    await self._free(final_id)
                    self._check_length(total)
                if final.length_deferred:
                    await self.meta.set_length(final_id, total)
                    final = replace(final, size=total, length_deferred=False)
                await self.blobs.concat_staging(final_id, [(p.id, p.size) for p in partials])
                try:
                    return await self._ingest(final)
                finally:
                    # The pieces are spent (tus allows freeing them after concatenation).
                    for piece in partials:
                        await self._free(piece.id)
        except LockBusy:
            return None  # another request is completing it right now
