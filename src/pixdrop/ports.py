"""The ports: small Protocols that services use and backends implement.

Bytes (``BlobStore``) and metadata (``MetadataStore``) are separate ports; so are locks
(``Locker``) and the image prober. Only the composition root (``http/app.py``) picks concrete
implementations.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Protocol, runtime_checkable

from pixdrop.models import (
    Image,
    ImageDetails,
    ImageInfo,
    ImageLimits,
    Part,
    Upload,
    UploadState,
    VariantSpec,
)

#: Sees each batch of blocks a ``BlobStore`` writes (see ``BlobStore.write_at``).
Observer = Callable[[Sequence[bytes]], None]


class BlobStore(Protocol):
    """Where bytes live: a staging area for uploads in progress and content-addressed blobs.

    Staging objects are named by upload id; blobs by key: the sha256 of their bytes, or, for
    renditions derived from a blob (variants, a GPS-free original), ``<sha256>/<name>`` with a
    file-name-safe *name* (``models.derived_key``).
    """

    async def create_staging(self, upload_id: str, *, durable: bool = True) -> None:
        """Make an empty staging object for *upload_id* (idempotent: an existing one keeps its
        bytes, and gets the durability asked for).

        With *durable* off, the object need not survive a crash of the machine: for bytes that
        are only kept if they are committed (a one-request upload), not recorded meanwhile.
        """

    async def write_at(
        self,
        upload_id: str,
        offset: int,
        data: AsyncIterable[bytes],
        observe: Observer | None = None,
    ) -> int:
        """Write *data* into the staging object at *offset* and return the bytes written.

        ``observe``, if given, is called with each batch of blocks, in order, on the thread
        that writes them (so digests are computed off the event loop, beside the I/O).

        The bytes are durable when this returns. If *data* raises, the exception propagates and
        whatever reached storage is left unrecorded (the caller records nothing). If the staging
        object does not exist, raise ``FileNotFoundError``.
        """

    def read_staging(self, upload_id: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of the staging object."""

    async def commit(self, upload_id: str, key: str) -> None:
        """Make blob *key* from the staging object without copying its bytes.

        The staging object stays until ``discard``, so a completion interrupted by a crash can
        run again. Idempotent: if the blob already exists (identical content) nothing changes.
        """

    async def discard(self, upload_id: str) -> None:
        """Remove the staging object of *upload_id*, if any."""

    async def truncate_staging(self, upload_id: str, size: int) -> None:
        """Cut the staging object to *size* bytes, durably (drops bytes written past the end
        that were never recorded, e.g. by a refused request of a deferred-length upload)."""

    async def concat_staging(self, target_id: str, sources: Sequence[tuple[str, int]]) -> None:
        """Fill staging object *target_id* with the first *size* bytes of each ``(id, size)``
        staging object in *sources*, in order, durably. Local disks do it in the kernel
        (``copy_file_range``: a reflink on file systems that share extents)."""

    async def blob_size(self, key: str) -> int:
        """Size of blob *key*; raise ``FileNotFoundError`` if there is none."""

    def read(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of blob *key*."""

    async def delete(self, key: str) -> None:
        """Remove blob *key*, if present; for a content key, also every blob derived from it."""

    async def put(self, key: str, data: bytes) -> None:
        """Store the small derived blob *key* (``<sha256>/<name>``) atomically and durably.

        Readers see either no blob or all of *data*. Storing the same key again replaces it.
        """

    async def staging_ids(self, older_than: float) -> list[str]:
        """Ids of staging objects untouched for *older_than* seconds (orphan sweeping)."""


@runtime_checkable
class DigestsStaging(Protocol):
    """Optional ``BlobStore`` capability: hash a staging object where it lies."""

    async def digest_staging(self, upload_id: str, size: int) -> str:
        """The sha256 (hex) of bytes ``[0, size)``."""


class MetadataStore(Protocol):
    """Upload and image records. Every method is atomic."""

    async def create_upload(
        self, upload: Upload, *, parts: Sequence[Part] = (), image: Image | None = None
    ) -> None:
        """Record a new upload and, in the same transaction, its first *parts* and (for an
        upload complete on arrival, whose ``image_id`` names it) its *image*."""

    async def get_upload(self, upload_id: str) -> Upload:
        """Return the upload; if none exists, raise ``UploadNotFound``."""

    async def list_parts(self, upload_id: str) -> list[Part]:
        """The recorded parts of an upload, ordered by start offset."""

    async def chunk_slot(self, upload_id: str, index: int) -> tuple[Upload, Part | None]:
        """The upload and the part recorded for its chunk *index* (at ``index * chunk_size``;
        ``None`` if there is none, or no such chunk), in one read.

        If the upload does not exist, raise ``UploadNotFound``.
        """

    async def add_part(self, upload_id: str, part: Part) -> bool:
        """Record *part*; return False if a part at the same start already exists.

        If the upload does not exist (any more), raise ``UploadNotFound``.
        """

    async def transition(
        self, upload_id: str, from_states: Collection[UploadState], to: UploadState
    ) -> bool:
        """Move the upload to *to* if it is in one of *from_states*; True if it moved."""

    async def complete_upload(self, upload_id: str, image: Image) -> None:
        """In one transaction: record *image* and mark the upload completed with its id."""

    async def delete_upload(self, upload_id: str) -> None:
        """Delete the upload and its parts (no error if absent)."""

    async def received_end(self, upload_id: str) -> int:
        """The end of the last recorded part (0 if none): a resumable upload's offset.

        Resumable (tus, IETF) uploads record parts in order and without gaps, so this is the
        number of bytes received.
        """

    async def resume_point(self, upload_id: str) -> tuple[Upload, int]:
        """The upload and its ``received_end``, in one read; ``UploadNotFound`` if none."""

    async def set_length(self, upload_id: str, size: int) -> bool:
        """Fix the size of an upload whose length was deferred; False if it was not deferred."""

    async def create_final(self, upload: Upload, partial_ids: list[str]) -> None:
        """Record a final upload and the partial uploads it joins, in order, atomically."""

    async def concat_partials(self, final_id: str) -> list[str]:
        """The partial upload ids a final upload joins, in order."""

    async def finals_waiting_for(self, partial_id: str) -> list[str]:
        """Ids of final uploads, still receiving, that join *partial_id*."""

    async def expired_uploads(self, now: datetime, limit: int) -> list[Upload]:
        """Uploads whose ``expires_at`` is before *now*, oldest first, at most *limit*."""

    async def get_image(self, image_id: str) -> Image:
        """Return the image; if none exists, raise ``ImageNotFound``."""

    async def create_image(self, image: Image) -> None:
        """Record a new image."""

    async def delete_image(self, image_id: str) -> None:
        """Delete the image record (no error if absent)."""

    async def count_images_with_sha256(self, sha256: str) -> int:
        """How many image records reference the blob *sha256*."""

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""

    async def close(self) -> None:
        """Release connections."""


class LockBusy(Exception):
    """Raised by a ``Locker`` when the key is held by someone else."""


class Locker(Protocol):
    """Exclusive, non-blocking locks that die with their holder (connection or process)."""

    def hold(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold *key* for the duration of the block; raise ``LockBusy`` if already held."""


@runtime_checkable
class LocalFiles(Protocol):
    """Optional capability of a ``BlobStore`` whose objects are files on this machine.

    The image codec reads such files in place (the decoder maps them) instead of receiving
    their bytes; for stores without it, the bytes are read and handed over.
    """

    def staging_path(self, upload_id: str) -> Path:
        """The file of the staging object of *upload_id*."""

    def blob_path(self, key: str) -> Path:
        """The file of blob *key*."""


#: What the codec decodes: a local file, or the bytes themselves.
ImageSource = Path | bytes


class ImageCodec(Protocol):
    """Decodes, checks and renders images, away from the event loop, each under a deadline.

    Every method raises ``UnprocessableImage`` for images that break a limit or do not decode,
    naming the limit or the defect.
    """

    #: Formats it can decode (of ``jpeg png gif webp avif tiff heic``).
    decodes: tuple[str, ...]
    #: Formats it can write variants in (of ``webp avif jpeg png``).
    encodes: tuple[str, ...]

    async def inspect(self, source: ImageSource, fmt: str, limits: ImageLimits) -> ImageDetails:
        """Check *limits* from the header, then prove the whole image decodes; describe it."""

    async def render(self, source: ImageSource, fmt: str, spec: VariantSpec) -> bytes:
        """The variant *spec* of the image: upright (EXIF orientation), metadata stripped."""

    async def strip_gps(self, source: ImageSource, fmt: str) -> bytes | None:
        """The image without its GPS location, or ``None`` if it has none.

        Lossless where the file's structure allows, else re-encoded; either way in the format
        ``models.gps_free_format(fmt)``.
        """

    async def close(self) -> None:
        """Stop the workers."""


class ImageProber(Protocol):
    """Tells what an image is from its first bytes, without decoding pixels."""

    #: How many leading bytes ``probe`` wants to see.
    head_size: int
    #: Format names (``jpeg``, ``png``, ...) this prober accepts.
    allowed_formats: tuple[str, ...]
    #: Media type of each accepted format.
    content_types: dict[str, str]

    def probe(self, head: bytes) -> ImageInfo:
        """Sniff format and dimensions; raise ``UnprocessableImage`` if it is not an image."""
