"""Where the local store keeps each id and key under its root, and whether it flushes.

Layout under the root directory (unchanged since the first release, so old data directories
keep working)::

    staging/<upload id>            one sparse file per upload in progress, parts pwritten in place
    blobs/<ab>/<cd>/<sha256 hex>   finished images, content-addressed, read-only
    derived/<ab>/<cd>/<sha256 hex>/<name>   renditions of that blob (variants, GPS-free copy)
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pixdrop.models import is_valid_id
from pixdrop.storage import files

CONTENT_KEY = re.compile(r"^[0-9a-f]{64}$")
#: ``<sha256>/<name>``: the name is one path segment that cannot be "." or ".." (it starts with
#: a letter or digit) and has no separator, so the key maps to exactly one file under derived/.
DERIVED_KEY = re.compile(r"^([0-9a-f]{64})/([a-z0-9][a-z0-9._-]{0,99})$")
#: What ``finish`` and ``join`` answer: the staging file, readable through ``Blobs``.
STAGED_PREFIX = "staging/"


def staged_key(upload_id: str) -> str:
    """The ``Blobs`` key of a finished upload still in staging."""
    return STAGED_PREFIX + upload_id


class Layout:
    """Where each id and key lives under the root, and whether anything is flushed.

    Only ids and keys of our own shapes reach the file system (no "..", no separators), so
    nothing outside the root is reachable.
    """

    def __init__(self, root: Path, sync: bool) -> None:
        self.root = root
        self.sync = sync
        self.staging_dir = root / "staging"
        self.blob_dir = root / "blobs"
        self.derived_dir = root / "derived"
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        self.blob_dir.mkdir(parents=True, exist_ok=True)

    def datasync(self, fd: int) -> None:
        if self.sync:
            os.fdatasync(fd)

    def start_writeback(self, fd: int, offset: int, length: int) -> None:
        """Start writing a range just written to the disk (``files.start_writeback``), for
        the ``datasync`` that comes after it."""
        if self.sync:
            files.start_writeback(fd, offset, length)

    def fsync_dir(self, path: Path) -> None:
        if self.sync:
            files.fsync_dir(path)

    def staging(self, upload_id: str) -> Path:
        if not is_valid_id(upload_id):
            raise ValueError(f"not an upload id: {upload_id!r}")
        return self.staging_dir / upload_id

    def content(self, key: str) -> Path:
        if not CONTENT_KEY.fullmatch(key):
            raise ValueError(f"not a content blob key (sha256 hex): {key!r}")
        return self.blob_dir / key[:2] / key[2:4] / key

    def derived(self, key: str) -> Path:
        match = DERIVED_KEY.fullmatch(key)
        if match is None:
            raise ValueError(f"not a derived blob key (<sha256>/<name>): {key!r}")
        return self.derived_of(match[1]) / match[2]

    def derived_of(self, source: str) -> Path:
        return self.derived_dir / source[:2] / source[2:4] / source

    def blob(self, key: str) -> Path:
        """The file of any ``Blobs`` key: content, derived, or staged."""
        if CONTENT_KEY.fullmatch(key):
            return self.content(key)
        if key.startswith(STAGED_PREFIX) and is_valid_id(key[len(STAGED_PREFIX) :]):
            return self.staging_dir / key[len(STAGED_PREFIX) :]
        if DERIVED_KEY.fullmatch(key):
            return self.derived(key)
        raise ValueError(f"not a blob key: {key!r}")
