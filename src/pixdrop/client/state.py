"""Small files the client keeps between runs: resume records and delete tokens.

They live in the user cache directory (``platformdirs``), or in ``$PIXDROP_CLIENT_STATE_DIR``,
or where the caller says::

    <state dir>/uploads/<key>.json           one resume record per file being uploaded
    <state dir>/tokens/<server>/<image id>   the delete token of an image the CLI uploaded
    <state dir>/deleted/<server>/<image id>  an empty mark: this machine deleted the image

A resume record is keyed by the server and the file's path (for bytes and file objects: by
their content), and holds the fingerprint it was made for. A record whose fingerprint is not
the file's current one is thrown away, so a changed file is uploaded afresh and its new bytes
are never mixed with chunks of the old. Every write goes to a temporary file that is then
renamed over the old one, so a process killed mid-write leaves the old record or the new one.
Delete tokens are secrets: files are created ``0600`` in ``0700`` directories.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

from pixdrop.client.source import Fingerprint, Source

STATE_DIR_ENV = "PIXDROP_CLIENT_STATE_DIR"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def default_state_dir() -> Path:
    """``$PIXDROP_CLIENT_STATE_DIR``, else the user cache directory of pixdrop."""
    configured = os.environ.get(STATE_DIR_ENV)
    if configured:
        return Path(configured)
    return platformdirs.user_cache_path("pixdrop", appauthor=False)


def _digest(text: str, length: int = 32) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def write_atomic(path: Path, text: str) -> None:
    """Replace *path* with *text* in one rename (readers see the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@dataclass(frozen=True, slots=True)
class ResumeRecord:
    """Which upload on which server holds the chunks of a file with this fingerprint."""

    server: str
    upload_id: str
    upload_url: str
    fingerprint: Fingerprint
    #: The file's absolute path (``None`` for bytes and file objects, and in older records).
    path: str | None = None


class ResumeStore:
    """Resume records, one small JSON file each."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or default_state_dir()) / "uploads"

    @staticmethod
    def key(server: str, source: Source, fingerprint: Fingerprint) -> str:
        identity = str(source.path) if source.path else f"content:{fingerprint.sha256}"
        return _digest(f"{server}\n{identity}")

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def load(self, key: str) -> ResumeRecord | None:
        """The record under *key*; ``None`` when there is none or it cannot be read."""
        try:
            raw = json.loads(self._path(key).read_text(encoding="utf-8"))
            return ResumeRecord(
                server=str(raw["server"]),
                upload_id=str(raw["upload_id"]),
                upload_url=str(raw["upload_url"]),
                fingerprint=Fingerprint(**raw["fingerprint"]),
                path=str(raw["path"]) if raw.get("path") else None,
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            self.discard(key)  # unreadable (e.g. by an older version): start afresh
            return None

    def records(self) -> list[tuple[str, ResumeRecord]]:
        """Every readable record with its key: the unfinished uploads this machine knows."""
        found = []
        for path in sorted(self.directory.glob("*.json")):
            record = self.load(path.stem)
            if record is not None:
                found.append((path.stem, record))
        return found

    def save(self, key: str, record: ResumeRecord) -> None:
        write_atomic(self._path(key), json.dumps(asdict(record)))

    def discard(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()


class TokenStore:
    """Delete tokens of uploaded images, by server and image id."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = (directory or default_state_dir()) / "tokens"

    def _path(self, server: str, image_id: str) -> Path:
        # The id becomes a file name: only the server's id alphabet may reach the file system.
        if not _SAFE_ID.fullmatch(image_id):
            raise ValueError(f"not an image id: {image_id!r}")
        return self.directory / _digest(server, 16) / image_id

    def save(self, server: str, image_id: str, token: str) -> None:
        write_atomic(self._path(server, image_id), token)

    def load(self, server: str, image_id: str) -> str | None:
        try:
            return self._path(server, image_id).read_text(encoding="utf-8").strip() or None
        except (FileNotFoundError, ValueError):
            return None

    def discard(self, server: str, image_id: str) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            self._path(server, image_id).unlink()

    def _mark(self, server: str, image_id: str) -> Path:
        token = self._path(server, image_id)  # checks the id
        return self.directory.parent / "deleted" / token.parent.name / image_id

    def mark_deleted(self, server: str, image_id: str) -> None:
        """Drop the image's token and remember that this machine deleted it (for ``rm``)."""
        self.discard(server, image_id)
        with contextlib.suppress(ValueError):
            write_atomic(self._mark(server, image_id), "")

    def was_deleted(self, server: str, image_id: str) -> bool:
        try:
            return self._mark(server, image_id).is_file()
        except ValueError:
            return False
