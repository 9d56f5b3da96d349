"""Renditions of stored images: variants (resized, re-encoded) and the GPS-free original.

A rendition is made once and kept in the blob store as a derived blob
(``<sha256>/<name>``, see ``models.derived_key``), beside the bytes it was made from and
removed with them. Its name is derived from everything that shapes its bytes, so equal requests
share one blob and its ETag never changes.

**Single flight.** Many requests for the same missing rendition make it once: within a process,
later requests wait on the first one's event; across processes (``--workers``, several nodes),
the maker holds the ``Locker`` key ``render/<key>`` and the others wait on the lock and then
find the blob made. The rendition is stored under the blob's own lock, after checking that an
image still uses the bytes, so a concurrent delete cannot leave an orphan behind.

**Sizes on an allowlist.** A client may ask for any preset, and for ``w``/``h`` from the
configured list only: each size is a blob to make and keep, and resizing is the costly part,
so free sizes would let anyone fill the disk and the CPU.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import anyio

from pixdrop.errors import BadRequest, ImageNotFound, NotFound
from pixdrop.formats import BY_NAME, FORMATS, NEGOTIATED, fallback_variant
from pixdrop.models import (
    MEDIA_TYPES,
    Fit,
    Image,
    VariantSpec,
    derived_key,
    gps_free_format,
)
from pixdrop.ports import ImageCodec
from pixdrop.services.images import ImageService

#: Default quality per output format: what looks alike at a glance (AVIF's scale runs lower).
DEFAULT_QUALITY = {f.name: f.variant.quality for f in FORMATS if f.variant}


@dataclass(frozen=True, slots=True)
class VariantRequest:
    """What a client asked for: a preset, and optional overrides (raw, unvalidated)."""

    preset: str
    width: str | None = None
    height: str | None = None
    fit: str | None = None
    format: str | None = None
    quality: str | None = None
    accept: str = ""


@dataclass(frozen=True, slots=True)
class Rendition:
    """A derived blob ready to serve."""

    key: str
    size: int
    media_type: str
    etag: str
    #: Whether the format was chosen from the request's ``Accept`` (responses ``Vary`` on it).
    negotiated: bool = False


def _small_number(value: str) -> int:
    """*value* as a number if it is at most 9 ASCII digits, else -1 (``str.isdigit`` takes
    ``¹``, and ``int`` refuses strings of more than 4300 digits)."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 9 else -1


def accepts(accept: str, media_type: str) -> bool:
    """Whether an ``Accept`` header names *media_type* with a non-zero weight (RFC 9110 §12.5.1).

    Only explicit mentions count: ``image/*`` and ``*/*`` are sent by browsers that cannot
    decode AVIF too.
    """
    for item in accept.lower().split(","):
        kind, *params = (part.strip() for part in item.split(";"))
        if kind != media_type:
            continue
        weights = [p[2:] for p in params if p.startswith("q=")]
        try:
            return not weights or float(weights[0]) > 0
        except ValueError:
            return False
    return False


class RenditionService:
    """Resolves variant requests to specs, and makes renditions once (see the module doc)."""

    def __init__(
        self,
        *,
        images: ImageService,
        codec: ImageCodec,
        presets: dict[str, int],
        sizes: tuple[int, ...],
        strip_gps: bool,
        patience: float,
    ) -> None:
        self.images = images
        self.codec = codec
        self.presets = presets
        self.sizes = tuple(sorted(set(sizes) | set(presets.values())))
        self.strip_gps = strip_gps
        #: How long a request waits for another one making the same rendition.
        self.patience = patience
        self._making: dict[str, anyio.Event] = {}

    # --- requests to specs ------------------------------------------------------------------
    def resolve(self, image: Image, request: VariantRequest) -> tuple[VariantSpec, bool]:
        """The spec for *request*, and whether its format came from ``Accept``.

        Raise ``NotFound`` for an unknown preset, ``BadRequest`` for a value not allowed.
        """
        if request.preset not in self.presets:
            raise NotFound(
                f"There is no variant {request.preset!r}; the presets are "
                f"{', '.join(self.presets)} (and 'original').",
                presets=list(self.presets),
            )
        side = self.presets[request.preset]
        width, height = self._size("w", request.width), self._size("h", request.height)
        if width is None and height is None:
            width = height = side
        fit = self._fit(request.fit)
        if width is None or height is None:
            fit = Fit.CONTAIN  # one free side: nothing to crop, one canonical name
        fmt, negotiated = self._format(request.format, request.accept, image.has_alpha)
        quality = self._quality(request.quality, fmt)
        return VariantSpec(width, height, fit, fmt, quality), negotiated

    def _size(self, name: str, value: str | None) -> int | None:
        if value is None or value == "":
            return None
        if _small_number(value) in self.sizes:
            return int(value)
        raise BadRequest(
            f"{name}={value} is not an offered size; ask for one of "
            f"{', '.join(map(str, self.sizes))} (sizes are on a list so that resizing cannot "
            "be used to exhaust the server).",
            limit="variant_sizes",
            value=value,
            allowed=list(self.sizes),
        )

    @staticmethod
    def _fit(value: str | None) -> Fit:
        try:
            return Fit(value or Fit.CONTAIN.value)
        except ValueError:
            raise BadRequest(
                f"fit={value} is not known; use fit=contain or fit=cover.",
                allowed=[f.value for f in Fit],
            ) from None

    def _format(self, value: str | None, accept: str, alpha: bool) -> tuple[str, bool]:
        if value in (None, "", "auto"):
            for fmt in NEGOTIATED:
                if fmt in self.codec.encodes and accepts(accept, MEDIA_TYPES[fmt]):
                    return fmt, True
            return fallback_variant(alpha), True
        if value not in self.codec.encodes:
            raise BadRequest(
                f"format={value} is not offered; use one of auto, {', '.join(self.codec.encodes)}.",
                allowed=["auto", *self.codec.encodes],
            )
        return value, False

    @staticmethod
    def _quality(value: str | None, fmt: str) -> int:
        if not BY_NAME[fmt].lossy:
            return 100  # lossless: q would only multiply names for identical bytes
        if value is None or value == "":
            return DEFAULT_QUALITY[fmt]
        if 1 <= _small_number(value) <= 100:
            return int(value)
        raise BadRequest(f"q={value} must be a whole number from 1 to 100.", allowed=[1, 100])

    # --- making and serving -----------------------------------------------------------------
    async def variant(self, image: Image, spec: VariantSpec, negotiated: bool) -> Rendition:
        """The variant *spec* of *image*, made now if it was never made before."""
        key = derived_key(image.sha256, spec.name)

        async def make() -> bytes:
            async with self.images.original_file(image) as path:
                return await self.codec.render(path, image.format, spec)

        size = await self._ensure(image, key, make)
        etag = f'"{image.sha256}.{spec.name}"'
        return Rendition(key, size, MEDIA_TYPES[spec.format], etag, negotiated)

    async def public_original(self, image: Image) -> Rendition | None:
        """What ``/original`` serves to anyone but the uploader: ``None`` for the original
        itself, or its GPS-free copy if it has a location and ``strip_gps`` is on."""
        if not (self.strip_gps and image.has_gps):
            return None
        fmt = gps_free_format(image.format)
        name = f"original-nogps.{fmt}"
        key = derived_key(image.sha256, name)

        async def make() -> bytes:
            async with self.images.original_file(image) as path:
                stripped = await self.codec.strip_gps(path, image.format)
            # None: the decoder found no location after all; the copy is then the original.
            if stripped is None:
                return b"".join([block async for block in self.images.read(image, 0, image.size)])
            return stripped

        size = await self._ensure(image, key, make)
        return Rendition(key, size, MEDIA_TYPES[fmt], f'"{image.sha256}.{name}"')

    def read(self, rendition: Rendition, start: int, end: int) -> AsyncIterator[bytes]:
        return self.images.blobs.open_range(rendition.key, start, end)

    async def _ensure(self, image: Image, key: str, make: Callable[[], Awaitable[bytes]]) -> int:
        """The size of derived blob *key*, making it with *make* once if it is missing."""
        size = await self._size_of(key)
        while size is None and (running := self._making.get(key)) is not None:
            await running.wait()  # made by another request of this process
            size = await self._size_of(key)
        if size is not None:
            return size
        self._making[key] = done = anyio.Event()
        try:
            async with self.images.locks.hold_waiting(f"render/{key}", self.patience):
                size = await self._size_of(key)  # made by another process meanwhile?
                if size is None:
                    data = await make()
                    await self._store(image, key, data)
                    size = len(data)
        finally:
            del self._making[key]
            done.set()
        return size

    async def _store(self, image: Image, key: str, data: bytes) -> None:
        async with self.images.locks.hold_waiting(f"blob/{image.sha256}"):
            if await self.images.meta.count_images_with_sha256(image.sha256) == 0:
                raise ImageNotFound(f"Image {image.id} was deleted.")
            await self.images.blobs.put_small(key, data)

    async def _size_of(self, key: str) -> int | None:
        try:
            return await self.images.blobs.size(key)
        except FileNotFoundError:
            return None
