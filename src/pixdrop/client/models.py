"""What the client hands back: plain frozen values parsed from the server's JSON.

Every value keeps the whole JSON object in ``raw``, so a field the server adds later is not lost
and does not break an older client. Fields the server did not send parse as ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


def _str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    return value if isinstance(value, str) else None


def _int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _time(body: dict[str, Any], key: str) -> datetime | None:
    value = _str(body, key)
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _ints(body: dict[str, Any], key: str) -> tuple[int, ...]:
    value = body.get(key)
    return tuple(v for v in value if isinstance(v, int)) if isinstance(value, list) else ()


@dataclass(frozen=True, slots=True)
class Image:
    """A stored image. ``delete_token`` is only known right after the upload that created it.

    ``original_url`` is where its original bytes are, ``image_url`` its metadata resource.
    ``url`` is ``original_url`` (the server's deprecated ``url`` field; kept for old code).
    """

    id: str
    url: str
    sha256: str
    size: int
    content_type: str | None
    format: str | None
    width: int | None
    height: int | None
    created_at: datetime | None
    filename: str | None
    delete_token: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)
    original_url: str = ""
    image_url: str = ""

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> Image:
        # A server from before the explicit link fields sends only "url" (the bytes).
        original = str(body.get("original_url") or body.get("url") or "")
        image_url = str(body.get("image_url") or "")
        if not image_url and original.endswith("/original"):
            image_url = original.removesuffix("/original")
        return cls(
            id=str(body["id"]),
            url=original,
            original_url=original,
            image_url=image_url,
            sha256=str(body.get("sha256") or ""),
            size=_int(body, "size") or 0,
            content_type=_str(body, "content_type"),
            format=_str(body, "format"),
            width=_int(body, "width"),
            height=_int(body, "height"),
            created_at=_time(body, "created_at"),
            filename=_str(body, "filename"),
            delete_token=_str(body, "delete_token"),
            raw=dict(body),
        )


@dataclass(frozen=True, slots=True)
class UploadStatus:
    """A chunked upload and exactly which of its chunks the server holds; ``url`` is the
    upload's own (the server's ``upload_url``)."""

    id: str
    url: str
    size: int
    chunk_size: int
    chunk_count: int
    received: tuple[int, ...]
    missing: tuple[int, ...]
    #: ``receiving``, ``completing`` or ``completed``.
    state: str
    created_at: datetime | None
    expires_at: datetime | None
    sha256: str | None
    filename: str | None
    image_id: str | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> UploadStatus:
        return cls(
            id=str(body["id"]),
            url=str(body.get("upload_url") or body.get("url") or ""),
            size=int(body["size"]),
            chunk_size=int(body["chunk_size"]),
            chunk_count=int(body["chunk_count"]),
            received=_ints(body, "received"),
            missing=_ints(body, "missing"),
            state=str(body.get("state") or "receiving"),
            created_at=_time(body, "created_at"),
            expires_at=_time(body, "expires_at"),
            sha256=_str(body, "sha256"),
            filename=_str(body, "filename"),
            image_id=_str(body, "image_id"),
            raw=dict(body),
        )

    def chunk_range(self, index: int) -> tuple[int, int]:
        """Bytes ``[start, end)`` of chunk *index* (only the last chunk may be short)."""
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.size)


@dataclass(frozen=True, slots=True)
class Progress:
    """How far one upload is: handed to ``on_progress`` as bytes move.

    ``done`` counts bytes the server holds plus bytes on their way (it falls back when a
    request fails and its bytes must be sent again); ``resumed`` is the part of ``done`` that
    was already on the server when this run began.
    """

    done: int
    total: int
    resumed: int = 0
    #: The chunked upload the bytes go to (for ``status``); ``None`` for a one-request upload.
    upload_id: str | None = None


@dataclass(frozen=True, slots=True)
class ImagePage:
    """One page of ``list_images``: the images, newest first, and the cursor of the next page
    (``None`` on the last one)."""

    images: tuple[Image, ...]
    next_cursor: str | None

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ImagePage:
        items = body.get("images")
        images = tuple(Image.from_json(i) for i in items if isinstance(i, dict)) if items else ()
        return cls(images=images, next_cursor=_str(body, "next_cursor"))
