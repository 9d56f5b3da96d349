"""The blob store on a local directory: ``LocalStore``, with ``LocalStaging`` and ``LocalBlobs``.

The on-disk layout is described in ``storage.layout``; staging in ``storage.staging``.
"""

from __future__ import annotations

from pathlib import Path

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

    async def close(self) -> None:
        """Nothing to release: files are opened per call."""
