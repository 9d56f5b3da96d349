"""ImageService: the one ingest path every upload ends in, and stored images' life cycle.

Ingest, whichever way the bytes came:

1. sniff the format from the first bytes and check the header's dimensions against the
   limits (``ImageProber``, in process, microseconds): a decompression bomb stops here;
2. hand the staged file to the codec (``ImageCodec``, a worker process under a deadline),
   which checks the limits again from libvips' own header read (frames too), then decodes
   every pixel and describes the image (orientation, alpha, placeholder, GPS);
3. link the staged bytes into the content-addressed blob store, then record the image.

Identical bytes share one blob; the blob (and every rendition derived from it) is removed
when the last image using it is deleted. Step 3 and deletion run under a per-blob lock so a
delete and an ingest of the same bytes cannot interleave.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import anyio

from pixdrop.errors import (
    Forbidden,
    ImageNotFound,
    PayloadTooLarge,
    Unauthorized,
    UnprocessableImage,
)
from pixdrop.models import Image, ImageInfo, ImageLimits, is_valid_id, new_id
from pixdrop.ports import (
    BlobStore,
    ImageCodec,
    ImageProber,
    ImageSource,
    LocalFiles,
    Locker,
    MetadataStore,
)
from pixdrop.protocols.digest import ExpectedDigests
from pixdrop.services.locks import hold_waiting
from pixdrop.services.streams import MeteredStream, collect
from pixdrop.tasks import both

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def clean_filename(name: str | None) -> str | None:
    """A client's file name reduced to a harmless base name (no path, no control characters)."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(c for c in base if unicodedata.category(c)[0] != "C").strip()
    return base[:255] or None


@dataclass(frozen=True, slots=True)
class StoredImage:
    """An image, plus its delete token when it was created by this call."""

    image: Image
    delete_token: str | None


class ImageService:
    """Ingest, look up, stream and delete images."""

    def __init__(
        self,
        *,
        blobs: BlobStore,
        meta: MetadataStore,
        locker: Locker,
        prober: ImageProber,
        codec: ImageCodec,
        limits: ImageLimits,
        max_request_size: int,
        clock: Clock = utcnow,
    ) -> None:
        self.blobs = blobs
        self.meta = meta
        self.locker = locker
        self.prober = prober
        self.codec = codec
        self.limits = limits
        self.max_request_size = max_request_size
        self.clock = clock

    async def ingest(
        self,
        staging_id: str,
        *,
        sha256: str | Awaitable[str],
        size: int,
        head: bytes,
        filename: str | None,
        record: Callable[[Image], Awaitable[None]],
    ) -> StoredImage:
        """Probe the staged bytes, store them as a blob and ``record`` the new image.

        *sha256* may still be on its way (an awaitable, such as a hash of the staged file): it
        then runs while the codec decodes, and its error, if any, is raised before the codec's.
        Raise ``UnprocessableImage`` if the bytes are not an acceptable image.
        """
        try:
            info = self._probe(head)
        except UnprocessableImage:
            if not isinstance(sha256, str):
                await sha256  # its error comes first, as said above
            raise
        source = await self._staged_source(staging_id, size)
        inspecting = self.codec.inspect(source, info.format, self.limits)
        digest: str
        if isinstance(sha256, str):
            digest, details = sha256, await inspecting
        else:
            digest, details = await both(sha256, inspecting)
        token = secrets.token_urlsafe(32)
        image = Image(
            id=new_id(),
            sha256=digest,
            size=size,
            content_type=info.content_type,
            format=info.format,
            width=details.width,
            height=details.height,
            created_at=self.clock(),
            delete_token_hash=token_hash(token),
            filename=clean_filename(filename),
            frames=details.frames,
            orientation=details.orientation,
            has_alpha=details.has_alpha,
            placeholder=details.placeholder,
            has_gps=details.has_gps,
        )
        async with hold_waiting(self.locker, f"blob/{digest}"):
            await self.blobs.commit(staging_id, digest)
            await record(image)
        await self.blobs.discard(staging_id)
        return StoredImage(image, token)

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

    async def _staged_source(self, staging_id: str, size: int) -> ImageSource:
        if isinstance(self.blobs, LocalFiles):
            return self.blobs.staging_path(staging_id)
        return await collect(self.blobs.read_staging(staging_id, 0, size))

    async def blob_source(self, image: Image) -> ImageSource:
        """The image's original, for the codec: its file where the store has one."""
        if isinstance(self.blobs, LocalFiles):
            return self.blobs.blob_path(image.blob_key)
        return await collect(self.blobs.read(image.blob_key, 0, image.size))

    async def blob_size(self, sha256: str) -> int | None:
        """Size of the stored bytes with this sha256, if an image uses them; else ``None``."""
        if await self.meta.count_images_with_sha256(sha256) == 0:
            return None
        try:
            return await self.blobs.blob_size(sha256)
        except FileNotFoundError:
            return None

    async def put_single(
        self,
        body: AsyncIterator[bytes],
        *,
        expected: ExpectedDigests,
        filename: str | None,
    ) -> StoredImage:
        """Store a whole image sent in one request body, streaming it to a staging object."""
        staging_id = new_id()
        # Not durable: nothing refers to these bytes until ingest commits them (and syncs that).
        await self.blobs.create_staging(staging_id, durable=False)
        try:
            stream = MeteredStream(
                body,
                limit=self.max_request_size,
                too_long=self._too_large,
                expected=expected,
                head_size=self.prober.head_size,
            )
            await self.blobs.write_at(staging_id, 0, stream, stream.observe)
            stream.verify("request body")
            if stream.length == 0:
                raise UnprocessableImage(
                    "The request body is empty; send the image's bytes.", reason="empty"
                )
            # ingest discards the staged bytes once they are committed.
            return await self.ingest(
                staging_id,
                sha256=stream.sha256,
                size=stream.length,
                head=stream.head,
                filename=filename,
                record=self.meta.create_image,
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self.blobs.discard(staging_id)
            raise

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"The body is larger than the one-request limit of {self.max_request_size} bytes; "
            "use a chunked upload (POST /v1/uploads) for large images.",
            limit="max_request_size",
            allowed=self.max_request_size,
        )

    async def get(self, image_id: str) -> Image:
        """The image; raise ``ImageNotFound`` (also for strings that cannot be ids)."""
        if not is_valid_id(image_id):
            raise ImageNotFound(f"There is no image with id {image_id!r}.")
        return await self.meta.get_image(image_id)

    def read(self, image: Image, start: int, end: int) -> AsyncIterator[bytes]:
        """Stream bytes ``[start, end)`` of the image's original."""
        return self.blobs.read(image.blob_key, start, end)

    @staticmethod
    def is_uploader(image: Image, token: str | None) -> bool:
        """Whether *token* is the image's delete token: the mark of whoever uploaded it."""
        return bool(token) and hmac.compare_digest(token_hash(token or ""), image.delete_token_hash)

    async def delete(self, image_id: str, token: str | None) -> None:
        """Delete an image given its delete token; the blob goes with its last image."""
        image = await self.get(image_id)
        if not token:
            raise Unauthorized(
                "Deleting an image needs its delete token: send 'Authorization: Bearer <token>'."
            )
        if not hmac.compare_digest(token_hash(token), image.delete_token_hash):
            raise Forbidden("That delete token does not belong to this image.")
        async with hold_waiting(self.locker, f"blob/{image.sha256}"):
            await self.meta.delete_image(image.id)
            if await self.meta.count_images_with_sha256(image.sha256) == 0:
                await self.blobs.delete(image.blob_key)
