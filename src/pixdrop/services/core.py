"""What the mixins of ``ResumableService`` (``concat.py``, ``whole.py``) use of the service they
belong to: one Protocol, so each mixin's methods are type-checked against the same face."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pixdrop.errors import PixdropError
from pixdrop.models import Upload, UploadProtocol
from pixdrop.ports import BlobStore, Locker, MetadataStore
from pixdrop.services.images import ImageService, StoredImage

__all__ = ["ResumableCore"]


class ResumableCore(Protocol):
    meta: MetadataStore
    blobs: BlobStore
    locker: Locker
    images: ImageService
    idle_timeout: float

    @property
    def max_size(self) -> int: ...

    def _check_length(self, length: int) -> None: ...

    def _new_upload(
        self,
        protocol: UploadProtocol,
        length: int | None,
        *,
        metadata: str | None,
        filename: str | None,
        content_type: str | None,
        concat: str | None,
    ) -> Upload: ...

    def _too_long(
        self, upload: Upload, current: int, known: int | None
    ) -> Callable[[], PixdropError]: ...

    async def get(self, upload_id: str) -> Upload: ...

    async def _ingest(self, upload: Upload) -> StoredImage: ...

    async def _free(self, upload_id: str) -> None: ...

    async def _partial(self, upload_id: str) -> Upload: ...

    async def _partials_of(self, final_id: str) -> list[Upload] | None: ...

    async def _try_assemble(self, final_id: str) -> StoredImage | None: ...
