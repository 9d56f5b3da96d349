"""Value objects shared by services, stores and protocol adapters (no I/O here)."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

#: Ids carry 128 random bits, URL-safe base64 without padding: exactly 22 characters.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")


def new_id() -> str:
    """A fresh unguessable, URL-safe id (128 random bits)."""
    return secrets.token_urlsafe(16)


def is_valid_id(value: str) -> bool:
    """True if *value* has the exact shape of an id made by :func:`new_id`."""
    return ID_PATTERN.fullmatch(value) is not None


class UploadState(StrEnum):
    """Life cycle of an upload: receiving → completing → completed (or gone)."""

    RECEIVING = "receiving"
    COMPLETING = "completing"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Upload:
    """A byte range ``[0, size)`` being filled, chunk by chunk."""

    id: str
    size: int
    chunk_size: int
    state: UploadState
    created_at: datetime
    expires_at: datetime
    sha256: str | None = None
    filename: str | None = None
    content_type: str | None = None
    image_id: str | None = None

    @property
    def chunk_count(self) -> int:
        return max(1, -(-self.size // self.chunk_size))

    def chunk_range(self, index: int) -> tuple[int, int]:
        """The half-open byte range ``[start, end)`` of chunk *index*."""
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.size)


@dataclass(frozen=True, slots=True)
class Part:
    """A byte range of an upload that is durable on the blob store and recorded."""

    start: int
    end: int
    sha256: str

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What the bytes say about themselves: sniffed format and header dimensions."""

    format: str
    content_type: str
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class Image:
    """A stored image. ``delete_token_hash`` is the sha256 of the token handed out once."""

    id: str
    sha256: str
    size: int
    content_type: str
    format: str
    width: int
    height: int
    created_at: datetime
    delete_token_hash: str
    filename: str | None = None

    @property
    def blob_key(self) -> str:
        """Blobs are content-addressed: identical bytes share one blob."""
        return self.sha256
