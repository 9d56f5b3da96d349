"""Where a download goes, and the checks on the way: resumable, verified, all or nothing.

An original's bytes never change and its strong ``ETag`` is their sha256, so a download cut
midway continues with ``Range: bytes=N-`` (``If-Range`` guards it), and the whole is checked
against the ETag at the end. For a path, the bytes go to a temporary file beside it that is
renamed into place only once verified: a failed download never leaves a partial image behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
from pathlib import Path
from typing import BinaryIO

from pixdrop.client.errors import IntegrityError

_SHA256_ETAG = re.compile(r'^"([0-9a-f]{64})"$')
#: What ``download`` writes to.
Destination = str | os.PathLike[str] | BinaryIO


class Sink:
    """Receives the bytes of one download, over one or several (resumed) responses."""

    def __init__(self, dest: Destination) -> None:
        self.path: Path | None = None
        self._temp: Path | None = None
        self.written = 0
        self._hasher = hashlib.sha256()
        self._etag: str | None = None
        self._skip = 0
        if isinstance(dest, str | os.PathLike):
            self.path = Path(dest)
            # Not mkstemp: its 0600 would stick to the image; open() applies the umask.
            self._temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(6)}.part")
            self._out: BinaryIO = open(self._temp, "xb")  # noqa: SIM115 (closed in finish/close)
        else:
            self._out = dest

    def request_headers(self) -> dict[str, str]:
        """Headers of the next request: continue where the last one stopped."""
        if self.written and self._etag:
            return {"Range": f"bytes={self.written}-", "If-Range": self._etag}
        return {}

    def begin(self, status: int, etag: str | None) -> None:
        """A response starts. A ``200`` after bytes were written repeats them: skip those."""
        self._skip = 0 if status == 206 else self.written
        self._etag = etag or self._etag

    def write(self, data: bytes) -> None:
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        if data:
            self._out.write(data)
            self._hasher.update(data)
            self.written += len(data)

    def finish(self) -> int:
        """Verify the bytes against the ETag and put them in place; return their count."""
        match = _SHA256_ETAG.match(self._etag or "")
        if match and match.group(1) != self._hasher.hexdigest():
            raise IntegrityError(
                f"the downloaded bytes have sha256 {self._hasher.hexdigest()}, "
                f"the server announced {match.group(1)}"
            )
        self._out.flush()
        if self.path is not None and self._temp is not None:
            os.fsync(self._out.fileno())
            self._out.close()
            os.replace(self._temp, self.path)
            self._temp = None
        return self.written

    def close(self) -> None:
        """Drop the temporary file of a download that did not finish."""
        if self._temp is not None:
            self._out.close()
            with contextlib.suppress(FileNotFoundError):
                self._temp.unlink()
            self._temp = None
