"""Local-disk blob store.

Layout under the root directory::

    staging/<upload id>            one sparse file per upload in progress, chunks pwritten in place
    blobs/<ab>/<cd>/<sha256 hex>   finished images, content-addressed, read-only
    derived/<ab>/<cd>/<sha256 hex>/<name>   renditions of that blob (variants, GPS-free copy)

Chunks are written at their final offset with ``pwritev`` and made durable with ``fdatasync``
before the call returns. ``commit`` hard-links the staging file into ``blobs/`` (no byte is
copied; a crash before the caller records the image leaves the staging file intact, so the
completion can simply run again) and the caller ``discard``s the staging name afterwards.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path

from anyio import to_thread

from pixdrop.models import is_valid_id
from pixdrop.ports import Observer

_KEY = re.compile(r"^[0-9a-f]{64}$")
#: ``<sha256>/<name>``: the name is one path segment that cannot be "." or ".." (it starts with
#: a letter or digit) and has no separator, so the key maps to exactly one file under derived/.
_DERIVED_KEY = re.compile(r"^([0-9a-f]{64})/([a-z0-9][a-z0-9._-]{0,99})$")
#: Gather this many bytes of request body before one pwritev: few syscalls and thread hops,
#: and no copy (pwritev takes the received buffers as they are).
WRITE_BATCH = 1024 * 1024
READ_BLOCK = 1024 * 1024
DIGEST_BLOCK = 4 * 1024 * 1024
_IOV_MAX = 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pwrite_all(fd: int, buffers: list[bytes], offset: int) -> int:
    """pwritev every byte of *buffers* at *offset* (pwritev may write less than asked)."""
    total = 0
    views = [memoryview(b) for b in buffers if b]
    while views:
        written = os.pwritev(fd, views[:_IOV_MAX], offset + total)
        total += written
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
    return total


def _copy_range(src: int, out: int, size: int, position: int) -> None:
    """Copy bytes ``[0, size)`` of *src* to *out* at *position*, inside the kernel."""
    copied = 0
    while copied < size:
        done = os.copy_file_range(src, out, size - copied, copied, position + copied)
        if done == 0:
            raise OSError(f"source file is shorter than {size} bytes")
        copied += done


class LocalBlobStore:
    """``BlobStore`` on a local directory (see the module docstring for the layout)."""

    def __init__(self, root: Path, *, sync: bool = True) -> None:
        """With *sync* off, nothing is flushed to the disk (no ``fdatasync``/``fsync``): data
        survives a crash of pixdrop, which leaves the page cache intact, but not of the
        machine."""
        self.root = root
        self._sync = sync
        self.staging_dir = root / "staging"
        self.blob_dir = root / "blobs"
        self.derived_dir = root / "derived"
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self.blob_dir.mkdir(parents=True, exist_ok=True)

    def _datasync(self, fd: int) -> None:
        if self._sync:
            os.fdatasync(fd)

    def _fsync_dir(self, path: Path) -> None:
        if self._sync:
            _fsync_dir(path)

    def _staging(self, upload_id: str) -> Path:
        # Only ids of our own shape reach the file system: no "..", no separators.
        if not is_valid_id(upload_id):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return self.staging_dir / upload_id

    def _blob(self, key: str) -> Path:
        if _KEY.fullmatch(key):
            return self.blob_dir / key[:2] / key[2:4] / key
        derived = _DERIVED_KEY.fullmatch(key)
        if derived is None:
            raise ValueError(f"not a blob key: {key!r}")
        return self._derived_dir(derived[1]) / derived[2]

    def _derived_dir(self, source: str) -> Path:
        return self.derived_dir / source[:2] / source[2:4] / source

    def staging_path(self, upload_id: str) -> Path:
        """``LocalFiles``: the staging file itself, for the image codec to read in place."""
        return self._staging(upload_id)

    def blob_path(self, key: str) -> Path:
        """``LocalFiles``: the blob's file."""
        return self._blob(key)

    async def create_staging(self, upload_id: str, *, durable: bool = True) -> None:
        path = self._staging(upload_id)

        def create() -> None:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            os.close(fd)
            if durable:  # the name must outlive a power cut once parts are recorded against it
                self._fsync_dir(self.staging_dir)

        await to_thread.run_sync(create)

    async def write_at(
        self,
        upload_id: str,
        offset: int,
        data: AsyncIterable[bytes],
        observe: Observer | None = None,
    ) -> int:
        path = self._staging(upload_id)
        fd: int | None = None

        def write(batch: list[bytes], position: int, last: bool) -> int:
            nonlocal fd
            if fd is None:
                # No O_CREAT: a chunk for an upload aborted meanwhile must not resurrect it.
                fd = os.open(path, os.O_WRONLY)
            if observe is not None:
                observe(batch)
            written = _pwrite_all(fd, batch, position)
            if last:
                # Durable before the caller records the range (DESIGN.md, durability rule 1).
                self._datasync(fd)
            return written

        # One thread hop per WRITE_BATCH bytes; a small body (open, write, sync) takes one.
        try:
            position = offset
            batch: list[bytes] = []
            pending = 0
            async for block in data:
                batch.append(block)
                pending += len(block)
                if pending >= WRITE_BATCH:
                    position += await to_thread.run_sync(write, batch, position, False)
                    batch, pending = [], 0
            position += await to_thread.run_sync(write, batch, position, True)
            return position - offset
        finally:
            if fd is not None:
                os.close(fd)

    async def digest_staging(self, upload_id: str, size: int) -> str:
        path = self._staging(upload_id)

        def digest() -> str:
            # One thread hop for the whole file, reading into one reused buffer. (mmap would
            # save the copy, but mapped pages count as the process's RSS and look like a leak.)
            hasher = hashlib.sha256()
            buffer = bytearray(DIGEST_BLOCK)
            view = memoryview(buffer)
            with open(path, "rb", buffering=0) as file:
                remaining = size
                while remaining > 0:
                    got = file.readinto(view[: min(DIGEST_BLOCK, remaining)])
                    if not got:
                        raise OSError(f"staging file of {upload_id} is shorter than {size}")
                    hasher.update(view[:got])
                    remaining -= got
            return hasher.hexdigest()

        return await to_thread.run_sync(digest)

    def read_staging(self, upload_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self._read(self._staging(upload_id), start, end)

    def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        return self._read(self._blob(key), start, end)

    async def _read(self, path: Path, start: int, end: int) -> AsyncIterator[bytes]:
        fd = await to_thread.run_sync(os.open, path, os.O_RDONLY)
        try:
            position = start
            while position < end:
                block = await to_thread.run_sync(
                    os.pread, fd, min(READ_BLOCK, end - position), position
                )
                if not block:
                    break
                position += len(block)
                yield block
        finally:
            os.close(fd)

    async def commit(self, upload_id: str, key: str) -> None:
        staging, blob = self._staging(upload_id), self._blob(key)

        def link() -> None:
            blob.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(staging, blob)
            except FileExistsError:
                return  # identical content already stored (content address)
            except FileNotFoundError:
                if blob.exists():
                    return
                raise
            os.chmod(blob, 0o444)
            self._fsync_dir(blob.parent)

        await to_thread.run_sync(link)

    async def discard(self, upload_id: str) -> None:
        path = self._staging(upload_id)
        await to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def truncate_staging(self, upload_id: str, size: int) -> None:
        path = self._staging(upload_id)

        def truncate() -> None:
            fd = os.open(path, os.O_WRONLY)
            try:
                if os.fstat(fd).st_size != size:
                    os.ftruncate(fd, size)
                    self._datasync(fd)
            finally:
                os.close(fd)

        await to_thread.run_sync(truncate)

    async def concat_staging(self, target_id: str, sources: Sequence[tuple[str, int]]) -> None:
        target = self._staging(target_id)
        paths = [(self._staging(source_id), size) for source_id, size in sources]

        def concat() -> None:
            out = os.open(target, os.O_WRONLY | os.O_TRUNC)
            try:
                position = 0
                for path, size in paths:
                    src = os.open(path, os.O_RDONLY)
                    try:
                        _copy_range(src, out, size, position)
                    finally:
                        os.close(src)
                    position += size
                self._datasync(out)
            finally:
                os.close(out)

        await to_thread.run_sync(concat)

    async def blob_size(self, key: str) -> int:
        path = self._blob(key)
        return (await to_thread.run_sync(os.stat, path)).st_size

    async def delete(self, key: str) -> None:
        path = self._blob(key)

        def remove() -> None:
            path.unlink(missing_ok=True)
            if _KEY.fullmatch(key):  # a source takes its renditions with it
                shutil.rmtree(self._derived_dir(key), ignore_errors=True)

        await to_thread.run_sync(remove)

    async def put(self, key: str, data: bytes) -> None:
        if not _DERIVED_KEY.fullmatch(key):
            raise ValueError(f"not a derived blob key: {key!r}")
        path = self._blob(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written aside, made durable, then renamed over: readers never see half a blob.
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                _pwrite_all(fd, [data], 0)
                self._datasync(fd)
                os.replace(temporary, path)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            finally:
                os.close(fd)
            self._fsync_dir(path.parent)

        await to_thread.run_sync(write)

    async def staging_ids(self, older_than: float) -> list[str]:
        def scan() -> list[str]:
            found = []
            cutoff = time.time() - older_than
            for entry in os.scandir(self.staging_dir):
                try:
                    if is_valid_id(entry.name) and entry.stat().st_mtime < cutoff:
                        found.append(entry.name)
                except OSError as exc:  # vanished while scanning
                    if exc.errno != errno.ENOENT:
                        raise
            return found

        return await to_thread.run_sync(scan)
