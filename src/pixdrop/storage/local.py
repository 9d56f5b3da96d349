"""The blob store on a local directory: ``LocalStore``, with ``LocalStaging`` and ``LocalBlobs``.

The on-disk layout is described in ``storage.layout``; staging in ``storage.staging``.
"""

from __future__ import annotations

import os
from pathlib import Path

from anyio import to_thread

from pixdrop.ports import Blobs, Staging
from pixdrop.storage.blobs import LocalBlobs
from pixdrop.storage.layout import Layout
from pixdrop.storage.staging import LocalStaging

__all__ = ["LocalBlobs", "LocalStaging", "LocalStore"]


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

    async def ping(self) -> None:
        """``OSError`` unless the staging and blob directories are there and writable."""
        await to_thread.run_sync(self._check_directories)

    def _check_directories(self) -> None:
        for directory in (self._layout.staging_dir, self._layout.blob_dir):
            if not directory.is_dir():
                raise FileNotFoundError(f"blob store: {directory} is not a directory")
            if not os.access(directory, os.W_OK | os.X_OK):
                raise PermissionError(f"blob store: {directory} is not writable")

    async def close(self) -> None:
        """Nothing to release: files are opened per call."""
