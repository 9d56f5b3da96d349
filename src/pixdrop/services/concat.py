"""tus concatenation: a final upload made of partial uploads, joined once all are complete.

The partial uploads are appended to like any upload; when the last byte of the last one
arrives (or the final upload is created after them), the staged pieces are joined by the store
(``Staging.join``: ``copy_file_range`` on disk, a reflink where the file system can) and the
final upload goes through the completion pipeline. The pieces are freed after the join, which
the tus concatenation extension allows.

A final upload is checked before anything is copied (its list of names before anything is
looked up): it names at most ``MAX_PARTIALS`` partial uploads, each once (a piece named twice
would be copied twice: one 64 KiB partial named 2,000 times staged 128 MiB), and their sizes
(for a deferred length, the bytes it holds so far) add up to at most ``max_image_size``. A
deferred length that grows later is checked again before the join. A partial upload belongs
to one final upload: a new final that names a piece of an unfinished earlier one replaces it
(a client's retry after a lost answer or a crash), unless that one is being completed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

from pixdrop.errors import Conflict, InvalidResumableRequest, UploadNotFound
from pixdrop.models import Opener, Upload, UploadProtocol, UploadState
from pixdrop.ports import LeaseBusy, MetadataStore, Staging
from pixdrop.services.completion import StoredImage
from pixdrop.services.lifecycle import Lifecycle, token
from pixdrop.services.locks import LeaseLocks

__all__ = ["MAX_PARTIALS", "Concatenator"]

#: The most partial uploads one final upload may name (docs/tus.md). tus sets no limit; each
#: piece costs a lookup and a copy, and clients split a file into a handful (tus-js-client's
#: ``parallelUploads``), so 128 is far past any honest use.
MAX_PARTIALS = 128

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
        self._check_names(partial_ids)
        partials = [await self._partial(pid) for pid in partial_ids]
        known = all(not p.length_deferred for p in partials)
        total = sum(p.size for p in partials) if known else None
        # Deferred lengths count with what they hold so far: a sum already over the limit
        # is refused now, not after every byte has arrived (the join checks again).
        self.lifecycle.check_size(
            total if total is not None else await self._least_total(partials), "final upload"
        )
        await self._replace_earlier_finals(partial_ids)
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

    @staticmethod
    def _check_names(partial_ids: list[str]) -> None:
        """Some partial uploads, at most ``MAX_PARTIALS``, none named twice."""
        if not partial_ids:
            raise InvalidResumableRequest("Upload-Concat: final names no partial uploads.")
        if len(partial_ids) > MAX_PARTIALS:
            raise InvalidResumableRequest(
                f"Upload-Concat: final names {len(partial_ids)} partial uploads; at most "
                f"{MAX_PARTIALS} are accepted.",
                limit="max_partials",
                value=len(partial_ids),
                allowed=MAX_PARTIALS,
            )
        seen: set[str] = set()
        for pid in partial_ids:
            if pid in seen:
                raise InvalidResumableRequest(
                    f"Upload-Concat names {pid!r} more than once; a partial upload is one "
                    "piece of one final upload. Upload each piece as its own partial upload.",
                    partial=pid,
                )
            seen.add(pid)

    async def _least_total(self, partials: list[Upload]) -> int:
        """The final upload's least possible size: the known lengths, plus the bytes each
        partial of deferred length holds so far."""
        total = 0
        for piece in partials:
            if piece.length_deferred:
                total += max((p.end for p in await self.meta.list_parts(piece.id)), default=0)
            else:
                total += piece.size
        return total

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

    async def _replace_earlier_finals(self, partial_ids: list[str]) -> None:
        """Free the unfinished final uploads that already name one of *partial_ids*.

        A partial upload belongs to one final upload: joined into two, the first join would
        free it and the second final wait forever. An earlier final that names it is a
        client's earlier attempt (the answer to its creation was lost, or a crash cut its
        completion short: a client then creates the final upload again), so the newest one
        replaces it. One being completed right now is not touched: ``Conflict``, ask again.
        """
        for pid in partial_ids:
            for final_id in await self.meta.finals_waiting_for(pid):
                try:
                    async with self.locks.hold(f"complete/{final_id}"):
                        earlier = await self.meta.get_upload(final_id)
                        if earlier.state is not UploadState.COMPLETED:
                            await self.lifecycle.free(earlier)
                except UploadNotFound:
                    continue
                except LeaseBusy:
                    raise Conflict(
                        f"Partial upload {pid} is a piece of final upload {final_id}, which is "
                        "being completed right now; ask again in a moment.",
                        partial=pid,
                        final=final_id,
                    ) from None

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
            # A deferred length grew past the budget: refused before a byte is copied, and
            # the final and its pieces are freed, as for any refused final upload.
            for upload in (final, *partials):
                await self.lifecycle.free(upload)
            self.lifecycle.check_size(total, "final upload")
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
