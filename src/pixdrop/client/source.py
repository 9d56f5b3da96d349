"""What is being uploaded: a path, an open binary file or bytes, read by offset.

Chunks are read at their offset, from worker threads, so reads must not share a file position:
a path is read with ``os.pread`` on one descriptor; an open file object is read under a lock
(seek, then read). A file object that cannot seek is read into memory first.

The fingerprint (size, ``mtime_ns`` and sha256) names the content: the resume state of an
upload is only used while the fingerprint of the file is still the one it was made for.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

HASH_BLOCK = 1024 * 1024
#: What ``Client.upload`` accepts.
Uploadable = str | os.PathLike[str] | BinaryIO | bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """Size, modification time (``None`` for bytes and file objects) and sha256 of a file."""

    size: int
    mtime_ns: int | None
    sha256: str


class Source:
    """Random-access reads of the bytes to upload; a context manager that closes what it opened."""

    def __init__(self, what: Uploadable, filename: str | None = None) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._file: BinaryIO | None = None
        self._data: memoryview | None = None
        #: The file's resolved path, when the source is a path (it keys the resume state).
        self.path: Path | None = None
        self.mtime_ns: int | None = None
        if isinstance(what, bytes | bytearray | memoryview):
            self._data = memoryview(bytes(what))
            self.size = len(self._data)
        elif isinstance(what, str | os.PathLike):
            self.path = Path(what).resolve()
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            stat = os.fstat(self._fd)
            self.size, self.mtime_ns = stat.st_size, stat.st_mtime_ns
        else:
            self._open_file(what)
        self.filename = filename or self._default_name(what)

    def _open_file(self, file: BinaryIO) -> None:
        if not file.seekable():
            self._data = memoryview(file.read())
            self.size = len(self._data)
            return
        self._file = file
        self.size = file.seek(0, io.SEEK_END)

    def _default_name(self, what: Uploadable) -> str | None:
        if self.path is not None:
            return self.path.name
        name = getattr(what, "name", None)
        return os.path.basename(name) if isinstance(name, str) and name else None

    @property
    def in_memory(self) -> bool:
        """Reads cost no I/O (bytes, or a file object that could not seek)."""
        return self._data is not None

    def read_at(self, offset: int, length: int) -> bytes:
        """Exactly *length* bytes from *offset*; raise ``OSError`` if the file got shorter."""
        if self._data is not None:
            data = bytes(self._data[offset : offset + length])
        elif self._fd is not None:
            data = self._pread(offset, length)
        else:
            assert self._file is not None
            with self._lock:
                self._file.seek(offset)
                data = self._file.read(length)
        if len(data) != length:
            raise OSError(f"the file ended at {offset + len(data)}; it changed while being sent")
        return data

    def _pread(self, offset: int, length: int) -> bytes:
        assert self._fd is not None
        parts, got = [], 0
        while got < length:
            part = os.pread(self._fd, length - got, offset + got)
            if not part:
                break
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def fingerprint(self) -> Fingerprint:
        """Hash the whole file (it is read once here; the server checks the same sha256)."""
        hasher = hashlib.sha256()
        for offset in range(0, self.size, HASH_BLOCK):
            hasher.update(self.read_at(offset, min(HASH_BLOCK, self.size - offset)))
        return Fingerprint(self.size, self.mtime_ns, hasher.hexdigest())

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
