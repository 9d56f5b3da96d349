"""Value objects shared by services, stores and protocol adapters (no I/O here)."""

from __future__ import annotations

import re
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pixdrop.formats import BY_NAME, FORMATS

#: Ids carry 128 random bits, URL-safe base64 without padding: exactly 22 characters.
ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{22}$")


def utcnow() -> datetime:
    """The current time, aware, in UTC: the default clock of the services."""
    return datetime.now(UTC)


def new_id() -> str:
    """A fresh unguessable, URL-safe id (128 random bits) that does not start with ``-``
    (a command line would take it for an option)."""
    while True:
        value = secrets.token_urlsafe(16)
        if not value.startswith("-"):
            return value


def is_valid_id(value: str) -> bool:
    """True if *value* has the exact shape of an id made by :func:`new_id`."""
    return ID_PATTERN.fullmatch(value) is not None


#: The API that created an upload: pixdrop's chunk API, tus 1.0, or the IETF draft.
UploadProtocol = Literal["native", "tus", "ietf"]


class UploadState(StrEnum):
    """Life cycle of an upload: receiving → completing → completed (or gone)."""

    RECEIVING = "receiving"
    COMPLETING = "completing"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class Upload:
    """A byte range ``[0, size)`` being filled, chunk by chunk (native) or in order (tus, IETF).

    While ``length_deferred`` is true the size is not known yet and ``size`` is 0.
    """

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
    protocol: UploadProtocol = "native"
    length_deferred: bool = False
    #: tus ``Upload-Metadata``, verbatim.
    upload_metadata: str | None = None
    #: tus ``Upload-Concat``, verbatim: ``partial`` or ``final;<partial upload URLs>``.
    concat: str | None = None
    #: What the staging port answered to ``Staging.begin`` (e.g. an S3 multipart upload id),
    #: so that any node can go on with the upload; ``None`` for uploads from before it existed.
    store_token: str | None = None
    #: The client address that opened the upload (anonymous and grant traffic: counted
    #: against ``--max-open-uploads-per-client``), and the direct-upload grant it presented.
    client: str | None = None
    grant_id: str | None = None
    #: The key id the upload counts against (``Principal.owner``); None: made anonymously.
    owner: str | None = None
    #: The image it makes is private: readable by its owner's read keys or a signed URL.
    private: bool = False

    @property
    def reserved_bytes(self) -> int:
        """The bytes this upload holds of its owner's quota while it is open: its declared
        size (0 while deferred); a tus final upload holds none (its partials hold them)."""
        return 0 if self.is_final else self.size

    @property
    def is_partial(self) -> bool:
        """A tus partial upload: a piece of a final upload, never an image by itself."""
        return self.concat == "partial"

    @property
    def is_final(self) -> bool:
        """A tus final upload: the concatenation of partial uploads, never written to."""
        return self.concat is not None and self.concat.startswith("final")

    @property
    def chunk_count(self) -> int:
        return max(1, -(-self.size // self.chunk_size))

    def chunk_range(self, index: int) -> tuple[int, int]:
        """The half-open byte range ``[start, end)`` of chunk *index*."""
        start = index * self.chunk_size
        return start, min(start + self.chunk_size, self.size)


@dataclass(frozen=True, slots=True)
class Part:
    """A byte range of an upload that is durable in staging and recorded: the receipt that
    ``Staging.put_part`` returns, kept in the metadata store so any node can finish the upload.

    ``number`` is the store's part number (1-based: native chunk *i* is part *i + 1*; appends
    are numbered in order), ``etag`` what the store said of it (``None`` on local disk).
    ``sha256`` is the sha256 of the part's bytes, except for an append (number 0) that the
    local store hashed in order into its upload's running hash: then it is the sha256 of the
    upload's bytes ``[0, end)`` (a *prefix receipt*: one pass over the bytes instead of two;
    ``storage/running.py``). Either way it names what was written, and is only compared.
    """

    start: int
    end: int
    sha256: str
    number: int = 0
    etag: str | None = None

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
class ImageLimits:
    """How large an image may be, checked from its header before any pixel is decoded."""

    max_width: int
    max_height: int
    #: Pixels of one frame (``width * height``).
    max_pixels: int
    max_frames: int

    def breach(self, width: int, height: int, frames: int) -> tuple[str, int, int] | None:
        """The first limit the image breaks, as (limit, value, allowed), or ``None``."""
        for limit, value, allowed in (
            ("max_width", width, self.max_width),
            ("max_height", height, self.max_height),
            ("max_pixels", width * height, self.max_pixels),
            ("max_frames", frames, self.max_frames),
        ):
            if value > allowed:
                return limit, value, allowed
        return None


@dataclass(frozen=True, slots=True)
class ImageDetails:
    """What the decoder learnt from the whole file, once it had proved that it decodes."""

    width: int
    height: int
    #: Frames (animation frames, or pages of a TIFF / HEIF container); 1 for a still image.
    frames: int
    #: EXIF orientation, 1 (upright) to 8; variants are turned upright, originals never.
    orientation: int
    has_alpha: bool
    #: A ThumbHash of the image, base64: a blurred preview of ~25 bytes for page layouts.
    placeholder: str | None
    #: Whether the file carries a GPS location (EXIF GPS IFD or XMP GPS properties).
    has_gps: bool
    #: Where the image's own bytes end in the file (``imaging.ends``); ``None`` where its
    #: structure does not say (TIFF). Bytes after it are trailing data.
    end: int | None = None


class Fit(StrEnum):
    """How a variant fills its box: all of the image inside it, or the box filled and cropped."""

    CONTAIN = "contain"
    COVER = "cover"


@dataclass(frozen=True, slots=True)
class VariantSpec:
    """A rendition of an image: bounding box, fit, output format and quality.

    ``width`` or ``height`` may be ``None`` (free, follows the aspect ratio). Images are never
    enlarged. The spec names the derived blob (``name``), so equal specs share one blob.
    """

    width: int | None
    height: int | None
    fit: Fit
    format: str
    quality: int

    @property
    def name(self) -> str:
        """A file-name-safe slug, e.g. ``w256-h256-contain-q80.webp``."""
        w = self.width if self.width is not None else "auto"
        h = self.height if self.height is not None else "auto"
        return f"w{w}-h{h}-{self.fit.value}-q{self.quality}.{self.format}"


#: Media type of every format pixdrop reads or writes (``pixdrop.formats``).
MEDIA_TYPES = {f.name: f.media_type for f in FORMATS}


def gps_free_format(fmt: str) -> str:
    """The format of the GPS-free copy of a *fmt* original: the same where it can be written
    (losslessly edited, or re-encoded), else JPEG."""
    known = BY_NAME.get(fmt)
    return known.gps_free_as if known else "jpeg"


def derived_key(source: str, name: str) -> str:
    """The blob key of a rendition *name* of blob *source*: ``<sha256>/<name>``.

    Derived blobs live beside their source and go with it when its last image is deleted.
    """
    return f"{source}/{name}"


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
    frames: int = 1
    orientation: int = 1
    has_alpha: bool = False
    placeholder: str | None = None
    has_gps: bool = False
    #: The key id that made the image (``Principal.owner``); None: made anonymously.
    owner: str | None = None
    #: Readable only by the owner's read keys or a signed URL (``docs/auth.md``).
    private: bool = False

    @property
    def blob_key(self) -> str:
        """Blobs are content-addressed: identical bytes share one blob."""
        return self.sha256


@dataclass(frozen=True, slots=True)
class Grant:
    """A one-time direct-upload grant: whoever holds its token may upload one image.

    Only the sha256 of the token is kept. ``image_id`` is set, once and atomically, by the
    upload that made the grant's image; a grant with one can never be used again.
    """

    id: str
    token_hash: str
    created_at: datetime
    expires_at: datetime
    #: The key that issued it (owner of what it makes); None when issued without keys.
    owner: str | None = None
    #: Largest image accepted, in bytes; None: the server's own limit.
    max_size: int | None = None
    #: Formats accepted (names of ``formats.py``); None: every one the server accepts.
    formats: tuple[str, ...] | None = None
    #: The issuer's JSON object, verbatim, handed back with the grant's status.
    metadata: str | None = None
    private: bool = False
    image_id: str | None = None
    used_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Opener:
    """Who opens an upload, as the HTTP layer resolved it: the client's address and the
    direct-upload grant presented, if any. Services record both and enforce the grant."""

    client: str | None = None
    grant: Grant | None = None
    #: True when the open uploads of *client* count against its cap (anonymous and grant
    #: traffic); a key's open uploads are capped per key instead.
    counted: bool = True


@dataclass(frozen=True, slots=True)
class Attribution:
    """Who what a request creates belongs to, and whether its images are private.

    Set by the HTTP layer for the duration of a request (``ATTRIBUTION``); the services stamp
    it on the uploads and images they create, whatever the protocol, without reading headers.
    """

    owner: str | None = None
    private: bool = False


#: The current request's attribution (anonymous and public by default). The default is a
#: frozen dataclass, never mutated: sharing it is safe.
_NOBODY = Attribution()
ATTRIBUTION: ContextVar[Attribution] = ContextVar("pixdrop_attribution", default=_NOBODY)


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored: its public id, a hash of its secret (never the secret), its
    scopes and limits, and its quota accounting (bytes held, uploads open)."""

    id: str
    name: str
    secret_hash: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    quota: int | None = None
    max_open_uploads: int | None = None
    rate: str | None = None
    used_bytes: int = 0
    open_uploads: int = 0

    def usable(self, now: datetime) -> bool:
        """Neither revoked nor expired at *now*."""
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)
