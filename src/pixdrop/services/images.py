"""ImageService: stored images' life after ingest: lookup, streaming, deletion.

Images are made by the completion pipeline (``completion.py``) whichever way their bytes
came. Identical bytes share one blob; the blob (and every rendition derived from it) is
removed when the last image using it is deleted. Deletion runs under the blob's lease, as the
pipeline's keep-and-record step does, so a delete and an ingest of the same bytes cannot
interleave, on any node.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path

from pixdrop import metrics
from pixdrop.errors import Forbidden, ImageNotFound, Unauthorized
from pixdrop.models import Image, is_valid_id
from pixdrop.ports import Blobs, MetadataStore
from pixdrop.services.completion import StoredImage, clean_filename, token_hash
from pixdrop.services.locks import LeaseLocks

__all__ = ["ImageService", "StoredImage", "clean_filename", "token_hash"]


class ImageService:
    """Look up, stream and delete images."""

    def __init__(self, *, blobs: Blobs, meta: MetadataStore, locks: LeaseLocks) -> None:
        self.blobs = blobs
        self.meta = meta
        self.locks = locks

    async def get(self, image_id: str) -> Image:
        """The image; raise ``ImageNotFound`` (also for strings that cannot be ids)."""
        if not is_valid_id(image_id):
            raise ImageNotFound(f"There is no image with id {image_id!r}.")
        return await self.meta.get_image(image_id)

    async def list(
        self, limit: int, after: tuple[datetime, str] | None = None, *, owner: str | None = None
    ) -> tuple[Sequence[Image], tuple[datetime, str] | None]:
        """Up to *limit* images newest first, after the key *after* (``(created_at, id)``), and
        the key to continue from (``None`` on the last page); only *owner*'s if given."""
        found = await self.meta.list_images(limit + 1, after, owner)
        page = found[:limit]
        more = len(found) > limit and bool(page)
        return page, (page[-1].created_at, page[-1].id) if more else None

    def read(self, image: Image, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of the image's original."""
        return self.blobs.open_range(image.blob_key, start, end)

    def original_file(self, image: Image) -> AbstractAsyncContextManager[Path]:
        """The image's original as a local file, for the codec (``Blobs.materialize``)."""
        return self.blobs.materialize(image.blob_key)

    async def blob_size(self, sha256: str) -> int | None:
        """Size of the stored bytes with this sha256, if an image uses them; else ``None``."""
        if await self.meta.count_images_with_sha256(sha256) == 0:
            return None
        try:
            return await self.blobs.size(sha256)
        except FileNotFoundError:
            return None

    @staticmethod
    def is_uploader(image: Image, token: str | None) -> bool:
        """Whether *token* is the image's delete token: the mark of whoever uploaded it."""
        return bool(token) and hmac.compare_digest(token_hash(token or ""), image.delete_token_hash)

    async def delete(self, image_id: str, token: str | None) -> None:
        """Delete an image given its delete token; the blob goes with its last image."""
        image = await self.get(image_id)
        if not token:
            raise Unauthorized(
                "Deleting an image needs its delete token ('Pixdrop-Delete-Token: <token>') or "
                "a delete key of its owner ('Authorization: Bearer <key>')."
            )
        if not hmac.compare_digest(token_hash(token), image.delete_token_hash):
            raise Forbidden("That delete token does not belong to this image.")
        await self.remove(image)

    async def remove(self, image: Image) -> None:
        """Delete *image*, whose deletion the caller has authorised; its blob goes with the
        last image using it."""
        async with self.locks.hold_waiting(f"blob/{image.sha256}"):
            await self.meta.delete_image(image.id)
            if await self.meta.count_images_with_sha256(image.sha256) == 0:
                await self.blobs.delete(image.blob_key)
        metrics.IMAGES_DELETED.inc()
