"""Every error a client can cause, each with its HTTP status and RFC 9457 problem type.

The tree::

    PixdropError                      500  (base; never raised directly)
    ├── BadRequest                    400
    │   ├── InvalidDigest             400  malformed Content-Digest / Repr-Digest
    │   ├── DigestMismatch            400  bytes do not match the digest sent
    │   ├── ChunkSizeMismatch         400  a chunk's body is not the chunk's length
    │   └── InvalidUploadRequest      400  bad JSON fields when creating an upload
    ├── Unauthorized                  401  missing delete token
    ├── Forbidden                     403  wrong delete token
    ├── NotFound                      404
    │   ├── UploadNotFound            404
    │   ├── ImageNotFound             404
    │   └── ChunkNotFound             404  index outside the upload
    ├── Conflict                      409
    │   ├── ChunkConflict             409  different bytes for a stored chunk
    │   ├── ChunkBusy                 409  another request is writing this chunk
    │   ├── UploadIncomplete          409  complete asked with chunks missing
    │   └── UploadNotReceiving        409  upload already completed / completing
    ├── UploadExpired                 410
    ├── LengthRequired                411
    ├── PayloadTooLarge               413
    ├── UnsupportedMediaType          415  request body type the endpoint cannot read
    ├── RangeNotSatisfiable           416
    └── UnprocessableImage            422  not an image, unsupported format, sha256 mismatch

Services raise these; ``http/errors.py`` is the one place that renders them.
"""

from __future__ import annotations

from typing import Any, ClassVar

#: Problem types are relative URIs (RFC 9457 §3.1.1), documented in docs/errors.md.
PROBLEM_BASE = "/problems/"


class PixdropError(Exception):
    """Base class: carries the HTTP status, a problem type slug, a title and extra fields."""

    status: ClassVar[int] = 500
    slug: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal server error"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        self.headers: dict[str, str] = {}

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.slug


class BadRequest(PixdropError):
    status = 400
    slug = "bad-request"
    title = "Bad request"


class InvalidDigest(BadRequest):
    slug = "invalid-digest"
    title = "Invalid digest header"


class DigestMismatch(BadRequest):
    slug = "digest-mismatch"
    title = "Digest mismatch"


class ChunkSizeMismatch(BadRequest):
    slug = "chunk-size-mismatch"
    title = "Chunk has the wrong length"


class InvalidUploadRequest(BadRequest):
    slug = "invalid-upload-request"
    title = "Invalid upload request"


class Unauthorized(PixdropError):
    status = 401
    slug = "unauthorized"
    title = "Credentials required"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["WWW-Authenticate"] = 'Bearer realm="pixdrop"'


class Forbidden(PixdropError):
    status = 403
    slug = "forbidden"
    title = "Not allowed"


class NotFound(PixdropError):
    status = 404
    slug = "not-found"
    title = "Not found"


class UploadNotFound(NotFound):
    slug = "upload-not-found"
    title = "Upload not found"


class ImageNotFound(NotFound):
    slug = "image-not-found"
    title = "Image not found"


class ChunkNotFound(NotFound):
    slug = "chunk-not-found"
    title = "No such chunk"


class Conflict(PixdropError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class ChunkConflict(Conflict):
    slug = "chunk-conflict"
    title = "Chunk already stored with different bytes"


class ChunkBusy(Conflict):
    slug = "chunk-busy"
    title = "Chunk is being written by another request"


class UploadIncomplete(Conflict):
    slug = "upload-incomplete"
    title = "Upload is missing chunks"


class UploadNotReceiving(Conflict):
    slug = "upload-not-receiving"
    title = "Upload no longer accepts chunks"


class UploadExpired(PixdropError):
    status = 410
    slug = "upload-expired"
    title = "Upload expired"


class LengthRequired(PixdropError):
    status = 411
    slug = "length-required"
    title = "Content-Length required"


class PayloadTooLarge(PixdropError):
    status = 413
    slug = "payload-too-large"
    title = "Payload too large"


class RangeNotSatisfiable(PixdropError):
    status = 416
    slug = "range-not-satisfiable"
    title = "Range not satisfiable"


class UnprocessableImage(PixdropError):
    status = 422
    slug = "unprocessable-image"
    title = "Not an acceptable image"


class UnsupportedMediaType(PixdropError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"
