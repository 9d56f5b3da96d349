"""Every error a client can cause, each with its HTTP status and RFC 9457 problem type.

The tree::

    PixdropError                      500  (base; never raised directly)
    ├── BadRequest                    400
    │   ├── InvalidDigest             400  malformed Content-Digest / Repr-Digest
    │   ├── DigestMismatch            400  bytes do not match the digest sent
    │   ├── ChunkSizeMismatch         400  a chunk's body is not the chunk's length
    │   ├── InvalidUploadRequest      400  bad JSON fields when creating an upload
    │   ├── FieldTooLong              400  a file name, media type or tus header over its limit
    │   ├── InvalidResumableRequest   400  bad tus / IETF draft header (Upload-Length, ...)
    │   │   └── InconsistentUploadLength  400  IETF: lengths that disagree (IANA type)
    │   └── CompletedUpload           400  IETF: append to a completed upload (IANA type)
    ├── Unauthorized                  401  missing or unknown credential (key, delete token)
    ├── Forbidden                     403  wrong delete token, scope or owner
    │   ├── FinalUploadNotWritable    403  PATCH to a tus final (concatenated) upload
    │   ├── QuotaExceeded             403  a key's quota of bytes or open uploads is used up
    │   └── GrantExpired              403  a direct-upload grant past its expiry
    ├── NotFound                      404
    │   ├── UploadNotFound            404
    │   ├── ImageNotFound             404
    │   ├── ChunkNotFound             404  index outside the upload
    │   └── GrantNotFound             404  no such direct-upload grant (or a wrong token)
    ├── Conflict                      409
    │   ├── ChunkConflict             409  different bytes for a stored chunk
    │   ├── ChunkBusy                 409  another request is writing this chunk
    │   ├── UploadIncomplete          409  complete asked with chunks missing
    │   ├── UploadNotReceiving        409  upload already completed / completing
    │   ├── OffsetMismatch            409  resumable append at the wrong offset
    │   │   └── MismatchingUploadOffset   409  the IETF draft's flavour (IANA type)
    │   ├── UploadTakenOver           409  a newer request took over this upload's writing
    │   └── GrantUsed                 409  the grant has already made its one image
    ├── RequestTimeout                408  a request head or body that stopped coming
    ├── UploadExpired                 410
    ├── LengthRequired                411
    ├── PayloadTooLarge               413
    │   └── GrantTooLarge             413  larger than the grant's max_size
    ├── UnsupportedMediaType          415  request body type the endpoint cannot read
    ├── RangeNotSatisfiable           416
    ├── HeaderTooLarge                431  a request head over max_header_size
    ├── UnprocessableImage            422  not an image, unsupported format, sha256 mismatch
    │   ├── TrailingData              422  bytes after the end of the image
    │   └── GrantFormatRefused        422  a format the grant does not allow
    ├── UploadLocked                  423  another request holds the upload and will not yield
    ├── TooManyRequests               429  over the rate limit
    │   └── TooManyOpenUploads        429  the client address holds too many open uploads
    ├── InsufficientStorage           507  the server's disk (or database) is full
    ├── HookRefused                   4xx  the pre-create hook said no (its status, its message)
    ├── HookUnavailable               503  the pre-create hook gave no answer (fails closed)
    ├── ChecksumMismatch              460  tus: the body does not match Upload-Checksum
    ├── UnsupportedProtocolVersion    412  tus: Tus-Resumable names a version not spoken here
    └── ServiceUnavailable            503  too many connections, or shutting down

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

    #: An absolute problem type URI (e.g. registered with IANA) instead of PROBLEM_BASE + slug.
    type_uri: ClassVar[str | None] = None

    @property
    def type(self) -> str:
        return self.type_uri or PROBLEM_BASE + self.slug


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


class FieldTooLong(BadRequest):
    slug = "field-too-long"
    title = "Field too long"


class InvalidResumableRequest(BadRequest):
    slug = "invalid-resumable-request"
    title = "Invalid resumable upload request"


#: Problem types of the IETF resumable-upload draft, registered with IANA.
IANA_PROBLEM_TYPES = "https://iana.org/assignments/http-problem-types#"


class InconsistentUploadLength(InvalidResumableRequest):
    slug = "inconsistent-upload-length"
    title = "Inconsistent Upload Length Values"
    type_uri = IANA_PROBLEM_TYPES + "inconsistent-upload-length"


class CompletedUpload(BadRequest):
    slug = "completed-upload"
    title = "Upload Is Completed"
    type_uri = IANA_PROBLEM_TYPES + "completed-upload"


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


class FinalUploadNotWritable(Forbidden):
    slug = "final-upload-not-writable"
    title = "A final upload takes no data"


class GrantExpired(Forbidden):
    slug = "grant-expired"
    title = "Direct-upload grant expired"


class QuotaExceeded(Forbidden):
    slug = "quota-exceeded"
    title = "Quota exceeded"


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


class GrantNotFound(NotFound):
    slug = "grant-not-found"
    title = "Direct-upload grant not found"


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


class OffsetMismatch(Conflict):
    slug = "offset-mismatch"
    title = "Upload-Offset does not match the upload's offset"


class MismatchingUploadOffset(OffsetMismatch):
    slug = "mismatching-upload-offset"
    title = "Mismatching Upload Offset"
    type_uri = IANA_PROBLEM_TYPES + "mismatching-upload-offset"


class UploadTakenOver(Conflict):
    slug = "upload-taken-over"
    title = "Another request took over this upload"


class RequestTimeout(PixdropError):
    status = 408
    slug = "request-timeout"
    title = "Request Timeout"


class GrantUsed(Conflict):
    slug = "grant-used"
    title = "Direct-upload grant already used"


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


class GrantTooLarge(PayloadTooLarge):
    slug = "grant-too-large"
    title = "Larger than the direct-upload grant allows"


class RangeNotSatisfiable(PixdropError):
    status = 416
    slug = "range-not-satisfiable"
    title = "Range not satisfiable"


class HeaderTooLarge(PixdropError):
    status = 431
    slug = "header-too-large"
    title = "Request Header Fields Too Large"


class UnprocessableImage(PixdropError):
    status = 422
    slug = "unprocessable-image"
    title = "Not an acceptable image"


class TrailingData(UnprocessableImage):
    """The upload holds more than the image: bytes after the image's own end (docs/images.md)."""

    slug = "trailing-data"
    title = "Bytes after the end of the image"


class GrantFormatRefused(UnprocessableImage):
    slug = "grant-format-refused"
    title = "Format not allowed by the direct-upload grant"


class UnsupportedMediaType(PixdropError):
    status = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class UploadLocked(PixdropError):
    status = 423
    slug = "upload-locked"
    title = "Upload is being written by another request"


class InsufficientStorage(PixdropError):
    """No space left where the bytes or the records go; nothing acknowledged was lost, and
    the same request succeeds once there is room again (RFC 4918 §11.5)."""

    status = 507
    slug = "insufficient-storage"
    title = "Insufficient storage"

    #: Seconds a client is asked to wait: freeing a disk is an operator's work, not a blink.
    retry_after: ClassVar[int] = 60

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers["Retry-After"] = str(self.retry_after)


class HookRefused(PixdropError):
    """The pre-create hook (``--hook-url``) refused the upload, with this status."""

    status = 403
    slug = "hook-refused"
    title = "Refused by the upload hook"

    def __init__(self, detail: str, status: int = 403, **extra: Any) -> None:
        super().__init__(detail, **extra)
        # The hook picks the status; the class's is only the default.
        setattr(self, "status", status)  # noqa: B010 (a ClassVar, set on this instance)


class HookUnavailable(PixdropError):
    """The pre-create hook gave no usable answer and ``--hook-failure`` is ``closed``."""

    status = 503
    slug = "hook-unavailable"
    title = "Upload hook unavailable"


class TooManyRequests(PixdropError):
    status = 429
    slug = "rate-limited"
    title = "Too many requests"


class TooManyOpenUploads(TooManyRequests):
    slug = "too-many-open-uploads"
    title = "Too many open uploads"


class ChecksumMismatch(PixdropError):
    status = 460
    slug = "checksum-mismatch"
    title = "Checksum mismatch"


class UnsupportedProtocolVersion(PixdropError):
    status = 412
    slug = "unsupported-protocol-version"
    title = "Protocol version not supported"


class ServiceUnavailable(PixdropError):
    status = 503
    slug = "service-unavailable"
    title = "Service Unavailable"


class ClientGone(Exception):
    """The client went away while its request body was being read.

    Not a problem a client receives (nobody is left to receive it): the HTTP layer raises it
    from a request body iterator (``http.wire.body``) so that services, which import no web
    framework, can tell a body cut short from one that ended.
    """


class BodyEnded(ClientGone):
    """The server ended the request body where it was (no byte for ``idle_timeout`` seconds,
    or the shutdown deadline): to the services, the same as a client gone.

    Raised once from the ASGI ``receive`` by the HTTP/1.1 protocol
    (``pixdrop.http.connections``), never sent; unlike a client gone, somebody is there to read
    the answer: a resumable append that keeps its bytes answers as usual, and a request that
    answers nothing gets ``408`` (idle) or ``503`` (shutdown) from the protocol.
    """
