"""``Blobs`` on local disk: files under ``blobs/``, ``derived/`` and (finished uploads not yet
kept) ``staging/``. ``put_small`` on a full file system is ``InsufficientStorage``."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from anyio import to_thread

from pixdrop.ports import Blobs
from pixdrop.storage import files
from pixdrop.storage.layout import CONTENT_KEY, Layout


class LocalBlobs(Blobs):
    """``Blobs`` (and ``DigestsInPlace``) as files under ``blobs/``, ``derived/`` and, for
    finished uploads not yet kept, ``staging/``."""

    def __init__(self, layout: Layout) -> None:
        self._at = layout

    def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        return files.read_range(self._at.blob(key), start, end)

    async def size(self, key: str) -> int:
        path = self._at.blob(key)
        return (await to_thread.run_sync(os.stat, path)).st_size

    async def delete(self, key: str) -> None:
        path = self._at.blob(key)
        derived = self._at.derived_of(key) if CONTENT_KEY.fullmatch(key) else None

        def remove() -> None:
            path.unlink(missing_ok=True)
            if derived is not None:  # a source takes its renditions with it
                shutil.rmtree(derived, ignore_errors=True)

        await to_thread.run_sync(remove)

    async def put_small(self, key: str, data: bytes) -> None:
        path = self._at.derived(key)

        def write() -> None:
            files.make_dirs(path.parent, self._at.fsync_dir)
            # Written aside, made durable, then renamed over: readers never see half a blob.
            temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
            try:
                files.pwrite_all(fd, [data], 0)
                self._at.datasync(fd)
                os.replace(temporary, path)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
            finally:
                os.close(fd)
            self._at.fsync_dir(path.parent)

        with files.room(key):
            await to_thread.run_sync(write)

    @asynccontextmanager
    async def materialize(self, key: str) -> AsyncIterator[Path]:
        path = self._at.blob(key)
        # FileNotFoundError if there is none; inline, as a stat is answered from the inode
        # cache and a thread hop would cost more than it (on the path of every image).
        os.stat(path)
        yield path  # the file itself: no copy

    async def sha256(self, key: str, size: int) -> str:
        return await to_thread.run_sync(files.digest, self._at.blob(key), size)
