"""The ports: small Protocols that services use and backends implement.

Bytes in progress (``Staging``), stored bytes (``Blobs``), records (``MetadataStore``) and who
works on what (``Leases``) are separate ports; so are the image codec and prober. Only the
composition root (``http/app.py``) picks concrete implementations.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pixdrop.models import (
    ApiKey,
    Grant,
    Image,
    ImageDetails,
    ImageInfo,
    ImageLimits,
    Part,
    Upload,
    UploadState,
    VariantSpec,
)

#: Sees each batch of blocks ``Staging.put_part`` writes, in order, on the thread that writes
#: them (so digests a client asked for are computed beside the I/O, off the event loop).
Observer = Callable[[Sequence[bytes]], None]


class Staging(Protocol):
    """Where the bytes of uploads in progress live, shaped like an object store's multipart
    upload: begin, put parts (any order, any node), finish into one object, or abort.

    A part is written once, at its final offset: on local disk a ``pwrite`` into one sparse
    file; on S3 a multipart part. What ``begin`` answers (the *token*) and what ``put_part``
    answers (a receipt, ``models.Part``) are kept in the metadata store by the caller, so any
    process or node can go on with the upload: nothing here is remembered in memory.
    """

    #: The smallest part the store takes, but for an upload's last (S3: 5 MiB). Native chunks
    #: are parts, so uploads on such a store get at least this chunk size.
    min_part_size: int

    async def begin(self, upload_id: str, *, durable: bool = True) -> str:
        """Start staging *upload_id*; return the store's token for it (may be empty).

        With *durable* off the staging object need not survive a crash of the machine: for
        bytes that are kept only if they are finished (a one-request upload), never recorded
        meanwhile. Idempotent: called again for the same id (with *durable*, once its bytes
        are to be recorded after all), it keeps what is staged and answers the same token.
        """

    async def put_part(
        self,
        upload_id: str,
        token: str,
        *,
        number: int,
        offset: int,
        data: AsyncIterable[bytes],
        observe: Observer | None = None,
    ) -> Part:
        """Store *data* as part *number* of the upload, at byte *offset*; return its receipt
        (range, sha256 of the bytes, the store's etag; an append's may be a prefix receipt,
        see ``models.Part``).

        *number* is 1-based where the caller knows the part's place (native chunk *i* is part
        *i + 1*); 0 for a body of unknown length that appends to the upload (tus, IETF, and a
        one-request body, which starts one): its parts follow one another at growing offsets,
        and the store numbers (and, on S3, cuts and gathers) them itself.

        The bytes are durable when this returns. If *data* raises, the exception propagates
        and nothing must be recorded for this part (bytes that reached storage stay
        unreferenced until overwritten or aborted). Re-putting a part replaces it. If the
        upload's staging is gone (aborted), raise ``FileNotFoundError``.
        """

    async def finish(self, upload_id: str, token: str, parts: Sequence[Part]) -> str:
        """Make one object of *parts* (ordered, covering ``[0, size)`` without gaps); return
        its key, which ``Blobs`` can read and materialize until ``keep`` or ``abort``.

        Bytes outside the parts (a refused request's, past the end) are not part of it.
        Idempotent: finishing again gives the same object.
        """

    async def join(
        self, upload_id: str, token: str, sources: Sequence[tuple[str, str, Sequence[Part]]]
    ) -> str:
        """Finish *upload_id* as the concatenation of other staged uploads, each given as
        ``(upload id, token, parts)``, in order (tus concatenation); return the key as
        ``finish`` does. The target must have been begun; the sources stay until aborted."""

    async def keep(self, upload_id: str, token: str, key: str) -> bool:
        """Store the finished object of *upload_id* as content blob *key* (its sha256);
        ``True`` if this call stored it, ``False`` if blob *key* was there already.

        No byte is copied where the store can avoid it (a hard link on disk). Idempotent: if
        blob *key* already exists (same content), nothing changes. The staged object stays
        until ``abort``, so a completion interrupted by a crash can run again.
        """

    async def abort(self, upload_id: str, token: str) -> None:
        """Remove everything staged for *upload_id* (no error if there is nothing)."""

    async def stale(self, older_than: float) -> list[tuple[str, str]]:
        """``(upload id, token)`` of staged uploads untouched for *older_than* seconds: for
        the sweeper to abort those that have no upload record (a crash between ``begin`` and
        the record)."""


@runtime_checkable
class KeptContent(Protocol):
    """Optional ``Staging`` capability: tell which content blob an upload's staged object was
    kept as, so that freeing an upload whose completion died between ``keep`` and recording
    the image can remove the blob that no image names (``Lifecycle.free``)."""

    async def kept_as(self, upload_id: str, token: str) -> str | None:
        """The content key (sha256) ``keep`` stored *upload_id*'s finished object as; ``None``
        if it was not kept (or nothing is staged)."""


@runtime_checkable
class KnownDigest(Protocol):
    """Optional ``Staging`` capability: the sha256 of the object an upload's *parts* make, if
    it was computed while they arrived (so completion need not read the object to hash it);
    ``None`` if not known. Never raises for an unknown upload."""

    def known_sha256(self, upload_id: str, parts: Sequence[Part]) -> str | None:
        """The sha256 (hex) of the object *parts* make, or ``None``."""


class Blobs(Protocol):
    """Stored objects, by key: the sha256 of an image's bytes; ``<sha256>/<name>`` for what is
    derived from it (``models.derived_key``: variants, a GPS-free original); and the keys that
    ``Staging.finish`` answers. No method hands back a whole image in memory."""

    def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of *key*; ``FileNotFoundError`` if there is none."""

    async def size(self, key: str) -> int:
        """Size of *key*; raise ``FileNotFoundError`` if there is none."""

    async def delete(self, key: str) -> None:
        """Remove *key*, if present; for a content key, also every blob derived from it."""

    async def put_small(self, key: str, data: bytes) -> None:
        """Store the small derived blob *key* (``<sha256>/<name>``) atomically and durably.

        Readers see either no blob or all of *data*. Storing the same key again replaces it.
        """

    def materialize(self, key: str) -> AbstractAsyncContextManager[Path]:
        """A local file holding *key*'s bytes, for the image decoder, while the block runs:
        the file itself on local disk, else a temporary copy streamed from the store."""


@runtime_checkable
class DigestsInPlace(Protocol):
    """Optional ``Blobs`` capability: hash an object where it lies."""

    async def sha256(self, key: str, size: int) -> str:
        """The sha256 (hex) of bytes ``[0, size)`` of *key*."""


@runtime_checkable
class Presigns(Protocol):
    """Optional ``Blobs`` capability: a URL that reads an object without credentials for a
    while (an S3 presigned GET), so that clients can fetch its bytes from the store itself."""

    def presign(self, key: str, expires: int) -> str:
        """A URL that GETs *key* (Range included) for *expires* seconds; signed locally, no
        request is made. The signature covers the method: the URL answers GET only."""


class BlobStore(Protocol):
    """A store of bytes, as opened by ``storage.open_blob_store(url)``: its two ports."""

    staging: Staging
    blobs: Blobs

    async def ping(self) -> None:
        """Return if the store answers now (a cheap request, for readiness checks); raise
        ``OSError`` if it does not: local disk, its directories are gone or not writable;
        S3, the bucket cannot be reached (network, credentials, bucket missing)."""

    async def close(self) -> None:
        """Release connections."""


class MetadataStore(Protocol):
    """Upload and image records, and API keys. Every method is atomic.

    Quotas: a record with an ``owner`` that has a key counts against that key, in the same
    transaction that writes it. Creating an open upload takes its ``reserved_bytes`` and one
    open upload; recording an image (``create_image``, or ``create_upload`` with an image)
    takes its size; completing an upload turns its reservation into its image's size;
    deleting an open upload or an image gives back what it held; ``set_length`` takes the
    size it fixes. A write that would take a key past its ``quota`` or ``max_open_uploads``
    raises ``QuotaExceeded`` and records nothing.
    """

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

    async def delete_upload(
        self,
        upload_id: str,
        *,
        ending: str | None = None,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        """Delete the upload and its parts (no error if absent); *ending* (``expired``, or
        ``refused`` with the client's *problem*) is reported to webhooks."""

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

    async def list_images(
        self, limit: int, after: tuple[datetime, str] | None = None, owner: str | None = None
    ) -> list[Image]:
        """Images newest first (by ``created_at``, then ``id``, both descending), at most
        *limit*; with *after* (the ``(created_at, id)`` of the last image of a previous page),
        only those that come after it in that order, so pages never overlap or skip; with
        *owner*, only the images of that key."""

    async def create_key(self, key: ApiKey) -> None:
        """Record a new API key (its usage counters as given, normally zero)."""

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this public id (revoked and expired ones too); None if there is none."""

    async def list_keys(self) -> list[ApiKey]:
        """Every key, oldest first."""

    async def revoke_key(self, key_id: str, now: datetime) -> bool:
        """Mark the key revoked at *now*; False if there is none or it was revoked already."""

    async def count_images_with_sha256(self, sha256: str) -> int:
        """How many image records reference the blob *sha256*."""

    async def create_grant(self, grant: Grant) -> None:
        """Record a new direct-upload grant."""

    async def get_grant(self, grant_id: str) -> Grant:
        """Return the grant; if none exists, raise ``GrantNotFound``."""

    async def claim_grant(self, grant_id: str, image_id: str, now: datetime) -> bool:
        """Mark the grant used by *image_id* unless it already names an image; True if this
        call claimed it. Atomic across processes and nodes: of racing callers, one wins."""

    async def release_grant(self, grant_id: str, image_id: str) -> None:
        """Undo a claim by *image_id* (whose recording failed); nothing if it holds none."""

    async def purge_grants(self, expired_before: datetime) -> int:
        """Delete the grants that expired before *expired_before*; return how many."""

    async def count_open_uploads(self, client: str, now: datetime) -> int:
        """How many uploads opened by the client address *client* are neither completed nor
        expired at *now*."""

    async def ping(self) -> None:
        """Raise if the database cannot be reached."""

    async def close(self) -> None:
        """Release connections."""


class LeaseBusy(Exception):
    """Raised when a lease is held by someone else (see ``Leases``)."""


class Leases(Protocol):
    """Exclusive, expiring claims on a key, kept in the metadata store so that every process
    and node sees them: who writes a resumable upload (``upload/<id>``) or a chunk
    (``chunk/<id>/<n>``), which process sweeps (``sweeper``).

    No connection is held between calls: a holder renews its lease while it works, and a
    holder that died stops renewing, so its lease lapses after its *ttl*. A newer request
    that wants the key asks the holder to stop (``ask_stop``); the holder sees that when it
    renews, steps aside and releases. Every method is one short transaction.
    """

    async def acquire(self, key: str, holder: str, ttl: float) -> bool:
        """Take *key* for *holder* for *ttl* seconds; True if it was free, had expired, or
        was already *holder*'s (then renewed, with its stop flag cleared)."""

    async def renew(self, key: str, holder: str, ttl: float) -> bool:
        """Extend *holder*'s lease of *key* by *ttl* seconds; return True if someone asked it
        to stop. Raise ``LeaseBusy`` if *holder* no longer holds *key* (it lapsed and was
        taken)."""

    async def ask_stop(self, key: str) -> None:
        """Ask the current holder of *key*, if any, to step aside."""

    async def release(self, key: str, holder: str) -> None:
        """End *holder*'s lease of *key* (no error if it holds none)."""


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
        """Check *limits* from the header, then prove the whole image decodes; describe it,
        with where the image's own bytes end in *source* (``ImageDetails.end``)."""

    async def render(self, source: ImageSource, fmt: str, spec: VariantSpec) -> bytes:
        """The variant *spec* of the image: upright (EXIF orientation), metadata stripped."""

    async def strip_gps(self, source: ImageSource, fmt: str) -> bytes | None:
        """The image without its GPS location, or ``None`` if it has none.

        Lossless where the file's structure allows, else re-encoded; either way in the format
        ``models.gps_free_format(fmt)``.
        """

    def prepare(self) -> None:
        """An image is on its way (an upload opened, a body began): get a decoder ready, in
        the background, so that its check does not wait for one to start. Never raises."""

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
