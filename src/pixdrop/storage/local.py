"""The blob store on a local directory: ``LocalStore``, with ``LocalStaging`` and ``LocalBlobs``.

The on-disk layout is described in ``storage.layout``; staging in ``storage.staging``.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path

from pixdrop.ports import Blobs, Observer, Staging
from pixdrop.storage.blobs import LocalBlobs
from pixdrop.storage.layout import Layout, staged_key
from pixdrop.storage.staging import LocalStaging

__all__ = ["LocalBlobStore", "LocalBlobs", "LocalStaging", "LocalStore"]


class LocalStore:
    """A ``BlobStore`` on the local directory *root*.

    With *sync* off, nothing is flushed to the disk (no ``fdatasync``/``fsync``): data
    survives a crash of pixdrop, which leaves the page cache intact, but not of the machine.
    """

    def __init__(self, root: Path, *, sync: bool = True) -> None:
        self.root = root
        layout = Layout(root, sync)
        #: The same objects as ``staging`` and ``blobs``, with their concrete types.
        self.local_staging = LocalStaging(layout)
        self.local_blobs = LocalBlobs(layout)
        self.staging: Staging = self.local_staging
        self.blobs: Blobs = self.local_blobs
        self._layout = layout

    async def close(self) -> None:
        """Nothing to release: files are opened per call."""


class LocalBlobStore(LocalStore):
    """Deprecated: the former file-shaped port, kept only until the services use ``staging``
    and ``blobs`` (then delete this class). Each method is a thin alias of the new ones.

    (No ``DeprecationWarning``: the test suite turns warnings into errors.)
    """

    def staging_path(self, upload_id: str) -> Path:
        return self._layout.staging(upload_id)

    def blob_path(self, key: str) -> Path:
        return self._layout.blob(key)

    async def create_staging(self, upload_id: str, *, durable: bool = True) -> None:
        await self.local_staging.begin(upload_id, durable=durable)

    async def write_at(
        self,
        upload_id: str,
        offset: int,
        data: AsyncIterable[bytes],
        observe: Observer | None = None,
    ) -> int:
        return await self.local_staging.write(upload_id, offset, data, observe)

    async def digest_staging(self, upload_id: str, size: int) -> str:
        return await self.local_blobs.sha256(staged_key(upload_id), size)

    def read_staging(self, upload_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.local_blobs.open_range(staged_key(upload_id), start, end)

    def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self.local_blobs.open_range(key, start, end)

    async def commit(self, upload_id: str, key: str) -> None:
        await self.local_staging.keep(upload_id, "", key)

    async def discard(self, upload_id: str) -> None:
        await self.local_staging.abort(upload_id, "")

    async def truncate_staging(self, upload_id: str, size: int) -> None:
        await self.local_staging.resize(upload_id, size, grow=True)

    async def concat_staging(self, target_id: str, sources: Sequence[tuple[str, int]]) -> None:
        await self.local_staging.concat(target_id, sources)

    async def blob_size(self, key: str) -> int:
        return await self.local_blobs.size(key)

    async def delete(self, key: str) -> None:
        await self.local_blobs.delete(key)

    async def put(self, key: str, data: bytes) -> None:
        await self.local_blobs.put_small(key, data)

    async def staging_ids(self, older_than: float) -> list[str]:
        return [upload_id for upload_id, _ in await self.local_staging.stale(older_than)]
