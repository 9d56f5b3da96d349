"""JSON representations of uploads and images (the public field names are fixed).

Link fields say what they point to, the same everywhere (docs/api.md, "Links"):
``upload_url`` an upload, ``image_url`` an image's metadata (this JSON), ``original_url`` an
image's original bytes. The bare ``url`` is kept for the clients that read it and is
deprecated: on an image it is ``original_url``, on an upload ``upload_url``.
"""

from __future__ import annotations

from typing import Any

from pixdrop.models import Image
from pixdrop.services import StoredImage, UploadStatus


def image_url(base: str, image_id: str) -> str:
    """The image's metadata resource (``GET`` answers the image object)."""
    return f"{base}/v1/images/{image_id}"


def original_url(base: str, image_id: str) -> str:
    """The image's original bytes."""
    return f"{base}/v1/images/{image_id}/original"


def image_json(image: Image, base: str, delete_token: str | None = None) -> dict[str, Any]:
    original = original_url(base, image.id)
    body: dict[str, Any] = {
        "id": image.id,
        "image_url": image_url(base, image.id),
        "original_url": original,
        "url": original,  # deprecated: original_url
        "sha256": image.sha256,
        "size": image.size,
        "content_type": image.content_type,
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "created_at": image.created_at.isoformat(),
        "filename": image.filename,
        "frames": image.frames,
        "orientation": image.orientation,
        "has_alpha": image.has_alpha,
        "placeholder": image.placeholder,
    }
    if delete_token:
        body["delete_token"] = delete_token
    return body


def stored_image_json(stored: StoredImage, base: str) -> dict[str, Any]:
    return image_json(stored.image, base, stored.delete_token)


def upload_json(status: UploadStatus, base: str) -> dict[str, Any]:
    upload = status.upload
    own = f"{base}/v1/uploads/{upload.id}"
    return {
        "id": upload.id,
        "upload_url": own,
        "url": own,  # deprecated: upload_url
        "size": upload.size,
        "chunk_size": upload.chunk_size,
        "chunk_count": upload.chunk_count,
        "received": status.received,
        "missing": status.missing,
        "state": upload.state.value,
        "created_at": upload.created_at.isoformat(),
        "expires_at": upload.expires_at.isoformat(),
        "sha256": upload.sha256,
        "filename": upload.filename,
        "content_type": upload.content_type,
        "image_id": upload.image_id,
        "image_url": image_url(base, upload.image_id) if upload.image_id else None,
        "original_url": original_url(base, upload.image_id) if upload.image_id else None,
    }
