"""Completion: the one pipeline every upload ends in, whichever way its bytes came.

It owns the durability order of an image (DESIGN.md):

1. the recorded parts must cover ``[0, size)`` (``ranges.missing``: the one range model of
   every protocol), then they are made one object (``Staging.finish``, or ``join`` for tus
   concatenation): on disk the staging file is already whole, on S3 the multipart finishes;
2. the first bytes are sniffed and the header's dimensions checked (``ImageProber``, in
   process, microseconds): a decompression bomb stops here;
3. the object is handed to the decoder as a local file (``Blobs.materialize``), which checks
   the limits again, decodes every pixel and finds where the image's structure ends
   (``imaging.ends``), while the whole object's sha256 is computed beside it (unless the
   bytes were hashed on their way in) and checked against the one the client announced; the
   image must end where the object ends, give or take ``TRAILING_SLACK`` bytes;
4. under the blob's lease (so a delete of the same bytes cannot interleave), the object is
   kept as the content-addressed blob (``Staging.keep``: a hard link on disk; identical bytes
   share one blob), then the image is recorded (``record``, one transaction that may also
   mark the upload completed);
5. the staged object is dropped.

A crash before 4 leaves the upload as it was (complete again); between keeping and recording,
a blob no record names yet (the retry records it); after recording, leftovers the sweeper
removes. There is never a record without its bytes.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
from anyio import to_thread

from pixdrop import failpoints, metrics, ranges
from pixdrop.errors import (
    GrantUsed,
    QuotaExceeded,
    TrailingData,
    UnprocessableImage,
    UploadIncomplete,
    UploadNotFound,
)
from pixdrop.formats import BY_NAME
from pixdrop.models import Grant, Image, ImageDetails, ImageInfo, ImageLimits, Part, Upload, new_id
from pixdrop.ports import (
    Blobs,
    DigestsInPlace,
    ImageCodec,
    ImageProber,
    KnownDigest,
    MetadataStore,
    Staging,
)
from pixdrop.protocols.fields import clean_filename
from pixdrop.services.grants import check_image
from pixdrop.services.lifecycle import Clock, token
from pixdrop.services.locks import LeaseLocks
from pixdrop.tasks import both

__all__ = [
    "TRAILING_SLACK",
    "Completion",
    "Staged",
    "StoredImage",
    "clean_filename",
    "token_hash",
]

#: Bytes after the image's own end that are still accepted (docs/images.md, "Trailing data"):
#: padding some encoders and cameras leave; anything more is refused (``TrailingData``).
TRAILING_SLACK = 4096

#: Records a new image (and whatever goes with it) in one transaction.
Record = Callable[[Image], Awaitable[None]]


def _file_sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image, plus its delete token when it was created by this call."""

    image: Image
    delete_token: str | None


@dataclass(frozen=True, slots=True)
class Staged:
    """A finished staged object, ready for the pipeline."""

    upload_id: str
    token: str
    #: The key ``Blobs`` reads it by (what ``Staging.finish`` or ``join`` answered).
    key: str
    size: int
    #: Its sha256 if the bytes were hashed on their way in; else computed here.
    sha256: str | None = None
    #: Its first bytes if they were kept on their way in; else read here.
    head: bytes | None = None
    #: The sha256 the client announced for the whole upload, if any.
    expected_sha256: str | None = None
    #: The direct-upload grant the upload was opened with, if any (``services/grants.py``).
    grant_id: str | None = None
    #: Whom the image will belong to, and whether it is private (from the upload).
    owner: str | None = None
    private: bool = False


def staged_upload(upload: Upload, key: str) -> Staged:
    """The finished staged object *key* of *upload*, with what the image inherits from it."""
    return Staged(
        upload.id,
        token(upload),
        key,
        upload.size,
        expected_sha256=upload.sha256,
        owner=upload.owner,
        private=upload.private,
        grant_id=upload.grant_id,
    )


class Completion:
    """Turns a finished staged object into a stored, recorded image (module docstring)."""

    def __init__(
        self,
        *,
        staging: Staging,
        blobs: Blobs,
        locks: LeaseLocks,
        prober: ImageProber,
        codec: ImageCodec,
        limits: ImageLimits,
        clock: Clock,
        grants: MetadataStore | None = None,
    ) -> None:
        self.grants = grants
        self.staging = staging
        self.blobs = blobs
        self.locks = locks
        self.prober = prober
        self.codec = codec
        self.limits = limits
        self.clock = clock

    async def stage(self, upload: Upload, parts: Sequence[Part]) -> Staged:
        """Make one object of an upload's recorded *parts* (``Staging.finish``), after
        checking that they cover ``[0, size)``: the range model every protocol shares."""
        gaps = ranges.missing([(p.start, p.end) for p in parts], upload.size)
        if gaps:
            raise UploadIncomplete(
                f"Upload {upload.id} lacks {sum(end - start for start, end in gaps)} of its "
                f"{upload.size} bytes (first gap at {gaps[0][0]}); send them, then complete.",
                missing_ranges=[list(gap) for gap in gaps],
            )
        key = await self.staging.finish(upload.id, token(upload), parts)
        staged = staged_upload(upload, key)
        if isinstance(self.staging, KnownDigest):
            staged = replace(staged, sha256=self.staging.known_sha256(upload.id, parts))
        return staged

    async def ingest(self, staged: Staged, *, filename: str | None, record: Record) -> StoredImage:
        """Check, keep and record the image in *staged*; ``UnprocessableImage`` if the bytes
        are not an acceptable image or not the announced ones (the caller frees the upload).

        An upload opened with a grant must also fit it (``grants.check_image``), and claims
        it for the image just before the image is recorded: ``GrantUsed`` if another did.
        """
        try:
            return await self._ingest(staged, filename, record)
        except UnprocessableImage as exc:
            metrics.UPLOADS_REFUSED.labels(str(exc.extra.get("reason", "unprocessable"))).inc()
            raise

    async def _ingest(self, staged: Staged, filename: str | None, record: Record) -> StoredImage:
        grant = await self._grant(staged)
        failpoints.reach("completion.staged")
        head = staged.head if staged.head is not None else await self._head(staged)
        try:
            info = self._probe(head)
        except UnprocessableImage:
            if staged.sha256 is None and staged.expected_sha256:
                await self._checked_sha256(staged)  # a wrong file is the clearer refusal
            raise
        if grant is not None:
            check_image(grant, staged.size, info.format)
            record = self._claiming(grant, record)
        if staged.sha256 is not None:
            self._check_sha256(staged, staged.sha256)  # hashed on the way in
        async with self.blobs.materialize(staged.key) as path:
            # The decoder also finds where the image ends; its refusal comes first, so a
            # truncated or corrupt image is refused in its words, not as trailing data.
            inspecting = self.codec.inspect(path, info.format, self.limits)
            if staged.sha256 is None:
                hashing = self._checked_sha256(staged, path)
                digest, details = await both(hashing, inspecting)
            else:
                digest, details = staged.sha256, await inspecting
        self._check_end(details.end, info.format, staged.size)
        failpoints.reach("completion.decoded")
        delete_token = secrets.token_urlsafe(32)
        image = self._image(digest, staged, info, details, delete_token, filename)
        async with self.locks.hold_waiting(f"blob/{digest}"):
            # Under the blob's lease every image of these bytes is recorded or deleted: a
            # blob that is not there now is named by no image, so if recording fails (the
            # upload vanished: aborted, swept), the blob kept for it must go again.
            kept_here = await self.staging.keep(staged.upload_id, staged.token, digest)
            failpoints.reach("completion.kept")
            try:
                await record(image)
            except (UploadNotFound, GrantUsed, QuotaExceeded):
                if kept_here:
                    await self.blobs.delete(image.blob_key)
                await self.staging.abort(staged.upload_id, staged.token)
                raise
        failpoints.reach("completion.recorded")
        await self.staging.abort(staged.upload_id, staged.token)
        metrics.UPLOADS_COMPLETED.inc()
        metrics.IMAGES_STORED.labels("new" if kept_here else "shared").inc()
        failpoints.reach("completion.dropped")
        return StoredImage(image, delete_token)

    @staticmethod
    def _check_end(end: int | None, fmt: str, size: int) -> None:
        """``TrailingData`` if more than ``TRAILING_SLACK`` bytes follow the image's *end*."""
        if end is None or size - end <= TRAILING_SLACK:
            return
        raise TrailingData(
            f"The {BY_NAME[fmt].display} image ends at byte {end}, but the upload has "
            f"{size - end} more bytes after it (at most {TRAILING_SLACK} are allowed). Send "
            "only the image: re-save or re-export it, or strip what follows it.",
            reason="trailing-data",
            format=fmt,
            image_size=end,
            trailing=size - end,
            allowed=TRAILING_SLACK,
        )

    async def _grant(self, staged: Staged) -> Grant | None:
        if staged.grant_id is None or self.grants is None:
            return None
        return await self.grants.get_grant(staged.grant_id)

    def _claiming(self, grant: Grant, record: Record) -> Record:
        """*record*, after claiming *grant* for the image (released if recording fails)."""
        grants = self.grants
        assert grants is not None

        async def claim_then_record(image: Image) -> None:
            if not await grants.claim_grant(grant.id, image.id, self.clock()):
                raise GrantUsed(
                    f"Direct-upload grant {grant.id} has already made an image; a grant "
                    "uploads one image.",
                    grant=grant.id,
                )
            try:
                await record(image)
            except BaseException:
                with anyio.CancelScope(shield=True):
                    await grants.release_grant(grant.id, image.id)
                raise

        return claim_then_record

    async def _head(self, staged: Staged) -> bytes:
        want = min(self.prober.head_size, staged.size)
        blocks = [block async for block in self.blobs.open_range(staged.key, 0, want)]
        return b"".join(blocks)

    async def _checked_sha256(self, staged: Staged, path: Path | None = None) -> str:
        """The staged object's sha256, checked against the announced one: hashed where it
        lies if the store can, else from its *path* (materialized for the decoder anyway),
        else read through the store."""
        if isinstance(self.blobs, DigestsInPlace):
            digest = await self.blobs.sha256(staged.key, staged.size)
        elif path is not None:
            digest = await to_thread.run_sync(_file_sha256, path)
        else:
            hasher = hashlib.sha256()
            async for block in self.blobs.open_range(staged.key, 0, staged.size):
                hasher.update(block)
            digest = hasher.hexdigest()
        self._check_sha256(staged, digest)
        return digest

    @staticmethod
    def _check_sha256(staged: Staged, digest: str) -> None:
        if staged.expected_sha256 and digest != staged.expected_sha256:
            raise UnprocessableImage(
                f"The assembled bytes have sha256 {digest}, not the {staged.expected_sha256} "
                "given when the upload was created. The upload was discarded; upload the file "
                "again.",
                reason="sha256-mismatch",
                expected_sha256=staged.expected_sha256,
                actual_sha256=digest,
            )

    def _probe(self, head: bytes) -> ImageInfo:
        """Sniff the format and check the header's dimensions, before any decoding."""
        try:
            info = self.prober.probe(head)
        except UnprocessableImage as exc:
            # A TIFF may put its directory anywhere, often after the pixels. The codec reads
            # the header from the whole file, so a directory past the head is no refusal.
            if exc.extra.get("reason") == "header-too-large" and exc.extra.get("format") == "tiff":
                return ImageInfo("tiff", "image/tiff", 0, 0)
            raise
        breach = self.limits.breach(info.width, info.height, 1)
        if breach is not None:
            limit, value, allowed = breach
            raise UnprocessableImage(
                f"The image's header says it is {info.width}x{info.height} pixels, over the "
                f"limit {limit} = {allowed} ({value}). Nothing was decoded; send a smaller image.",
                reason="limit-exceeded",
                limit=limit,
                value=value,
                allowed=allowed,
            )
        return info

    def _image(
        self,
        digest: str,
        staged: Staged,
        info: ImageInfo,
        details: ImageDetails,
        delete_token: str,
        filename: str | None,
    ) -> Image:
        return Image(
            id=new_id(),
            sha256=digest,
            size=staged.size,
            content_type=info.content_type,
            format=info.format,
            width=details.width,
            height=details.height,
            created_at=self.clock(),
            delete_token_hash=token_hash(delete_token),
            filename=clean_filename(filename),
            frames=details.frames,
            orientation=details.orientation,
            has_alpha=details.has_alpha,
            placeholder=details.placeholder,
            has_gps=details.has_gps,
            owner=staged.owner,
            private=staged.private,
        )
