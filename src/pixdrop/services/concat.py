"""tus concatenation: a final upload made of partial uploads, joined once all are complete.

The partial uploads are appended to like any upload; when the last byte of the last one
arrives (or the final upload is created after them), the staged pieces are joined by the store
(``Staging.join``: ``copy_file_range`` on disk, a reflink where the file system can) and the
final upload goes through the completion pipeline. The pieces are freed after the join, which
the tus concatenation extension allows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from pixdrop.errors import InvalidResumableRequest, UploadNotFound
from pixdrop.models import Opener, Upload, UploadProtocol, UploadState
from pixdrop.ports import LeaseBusy, MetadataStore, Staging
from pixdrop.services.completion import StoredImage
from pixdrop.services.lifecycle import Lifecycle, token
from pixdrop.services.locks import LeaseLocks

__all__ = ["Concatenator"]

#: Ingests a final upload from the key its joined object is read by.
IngestJoined = Callable[[Upload, str], Awaitable[StoredImage]]


class Concatenator:
    """Create final uploads and assemble them (see the module docstring)."""

    def __init__(
        self,
        *,
        lifecycle: Lifecycle,
        staging: Staging,
        meta: MetadataStore,
        locks: LeaseLocks,
        ingest: IngestJoined,
    ) -> None:
        self.lifecycle = lifecycle
        self.staging = staging
        self.meta = meta
        self.locks = locks
        self.ingest = ingest

    async def create_final(
        self,
        *,
        protocol: UploadProtocol,
        partial_ids: list[str],
        concat: str,
        metadata: str | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        opener: Opener | None = None,
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
            self.lifecycle.check_size(total)
        upload = self.lifecycle.new(
            protocol,
            total,
            metadata=metadata,
            filename=filename,
            content_type=content_type,
            concat=concat,
            opener=opener,
        )
        upload = await self.lifecycle.open(upload, partial_ids=partial_ids)
        stored = await self.assemble(upload.id)
        return await self.meta.get_upload(upload.id) if stored else upload, stored

    async def _partial(self, upload_id: str) -> Upload:
        try:
            upload = await self.lifecycle.get(upload_id)
            if upload.protocol == "native":
                raise UploadNotFound(upload_id)
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

    async def partials_of(self, final_id: str) -> list[Upload] | None:
        """The partial uploads of a final upload, or ``None`` if one of them is gone."""
        found = []
        for pid in await self.meta.concat_partials(final_id):
            try:
                found.append(await self.meta.get_upload(pid))
            except UploadNotFound:
                return None
        return found

    async def partial_completed(self, upload: Upload) -> StoredImage | None:
        """A partial upload got its last byte: mark it complete and assemble the final
        uploads waiting for it; the image, if one was made."""
        await self.meta.transition(upload.id, {UploadState.RECEIVING}, UploadState.COMPLETED)
        stored = None
        for final_id in await self.meta.finals_waiting_for(upload.id):
            stored = await self.assemble(final_id) or stored
        return stored

    async def assemble(self, final_id: str) -> StoredImage | None:
        """Join the partial uploads of *final_id* and ingest the image, if all are complete."""
        try:
            async with self.locks.hold(f"complete/{final_id}"):
                final = await self.meta.get_upload(final_id)
                if final.state is UploadState.COMPLETED:
                    return None
                partials = await self.partials_of(final_id)
                if partials is None or any(p.state is not UploadState.COMPLETED for p in partials):
                    return None
                return await self._join(final, partials)
        except LeaseBusy:
            return None  # another request is completing it right now

    async def _join(self, final: Upload, partials: list[Upload]) -> StoredImage:
        total = sum(p.size for p in partials)
        if total > self.lifecycle.max_size:
            await self.lifecycle.free(final)
            self.lifecycle.check_size(total)
        if final.length_deferred:
            await self.meta.set_length(final.id, total)
            final = replace(final, size=total, length_deferred=False)
        sources = [(p.id, token(p), await self.meta.list_parts(p.id)) for p in partials]
        key = await self.staging.join(final.id, token(final), sources)
        try:
            return await self.ingest(final, key)
        finally:
            # The pieces are spent (tus allows freeing them after concatenation).
            for piece in partials:
                await self.lifecycle.free(piece)
