"""The image formats pixdrop knows: one table, read by everything that names a format.

Each ``Format`` holds one format's facts: its name (as settings, problem fields and the API
spell it), display name, media type and file extensions; the magic bytes the prober sniffs;
the libvips loader and saver; and what the format becomes as a variant or a GPS-free copy.
The table's order is the canonical one: messages, settings and lists follow it.

This module imports nothing from pixdrop, so ``models`` and ``config`` can read it as well as
``imaging`` (``pixdrop.imaging`` imports ``models``, so the table cannot live there).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

__all__ = [
    "BY_NAME",
    "DEFAULT_NAMES",
    "FORMATS",
    "NAMES",
    "NEGOTIATED",
    "VARIANT_FORMATS",
    "Format",
    "Signature",
    "Variant",
    "fallback_variant",
]

#: (offset, magic) pairs that must all match.
Signature = tuple[tuple[int, bytes], ...]
#: A libvips saver option's value.
SaveOption = str | int | bool


@dataclass(frozen=True, slots=True)
class Variant:
    """How a format serves as a variant (a resized copy made on request)."""

    #: Place in the list of variant formats offered (tried, then listed, in this order).
    rank: int
    #: Quality when the request names none (a lossless format always takes 100).
    quality: int
    #: Place among the formats ``format=auto`` picks when ``Accept`` names them; ``None``:
    #: never picked from ``Accept``.
    negotiated: int | None = None
    #: Whether ``format=auto`` falls back to it when no negotiated format is accepted: the
    #: one whose ``keeps_alpha`` matches the image's alpha.
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class Format:
    """One image format (see the module doc)."""

    #: Lower-case name: the ``formats`` setting, ``ImageInfo.format``, problem fields.
    name: str
    #: For messages: ``JPEG``, ``WebP``...
    display: str
    #: IANA media type, the ``Content-Type`` it is served with.
    media_type: str
    #: File-name suffixes, lower case with the dot, the usual one first.
    extensions: tuple[str, ...]
    #: The file structure its header and metadata follow (``heif`` for AVIF and HEIC).
    container: str
    #: libvips loader nickname, without ``load``.
    loader: str
    #: libvips saver nickname, without ``save``; ``None``: never written.
    saver: str | None
    #: Options always passed to the saver (besides ``keep=0``).
    save_options: tuple[tuple[str, SaveOption], ...] = ()
    #: Whether the saver takes a quality (``Q``): the lossy encoders.
    lossy: bool = False
    #: Magic bytes at the file's start: it is this format if any one signature matches.
    signatures: tuple[Signature, ...] = ()
    #: ISO-BMFF ``ftyp`` brands (major or compatible) that name this format.
    brands: frozenset[bytes] = frozenset()
    #: Only accepted when asked for, and decoded only where libheif has an HEVC decoder.
    optional: bool = False
    #: Whether a file may hold several same-sized frames (libvips shows them as one tall image).
    animated: bool = False
    #: Whether a rendition in this format keeps the image's alpha (else it is flattened).
    keeps_alpha: bool = False
    #: Whether its XMP packets are searched for in the whole file, not found by structure
    #: (so an XMP location cannot be cut out losslessly).
    xmp_anywhere: bool = False
    #: Format of the GPS-free copy of an original: itself where it can be written (edited
    #: losslessly, or re-encoded), else JPEG.
    gps_free_as: str = "jpeg"
    #: How it serves as a variant; ``None``: not offered as one.
    variant: Variant | None = None


FORMATS: Final[tuple[Format, ...]] = (
    Format(
        name="jpeg",
        display="JPEG",
        media_type="image/jpeg",
        extensions=(".jpg", ".jpeg"),
        container="jpeg",
        loader="jpeg",
        saver="jpeg",
        save_options=(("optimize_coding", True),),
        lossy=True,
        signatures=(((0, b"\xff\xd8\xff"),),),
        gps_free_as="jpeg",
        variant=Variant(rank=2, quality=82, fallback=True),
    ),
    Format(
        name="png",
        display="PNG",
        media_type="image/png",
        extensions=(".png",),
        container="png",
        loader="png",
        saver="png",
        save_options=(("compression", 6),),
        signatures=(((0, b"\x89PNG\r\n\x1a\n"),),),
        keeps_alpha=True,
        gps_free_as="png",
        variant=Variant(rank=3, quality=100, fallback=True),
    ),
    Format(
        name="gif",
        display="GIF",
        media_type="image/gif",
        extensions=(".gif",),
        container="gif",
        loader="gif",
        saver="gif",
        signatures=(((0, b"GIF87a"),), ((0, b"GIF89a"),)),
        animated=True,
        xmp_anywhere=True,
        gps_free_as="jpeg",
    ),
    Format(
        name="webp",
        display="WebP",
        media_type="image/webp",
        extensions=(".webp",),
        container="webp",
        loader="webp",
        saver="webp",
        save_options=(("effort", 4),),
        lossy=True,
        signatures=(((0, b"RIFF"), (8, b"WEBP")),),
        animated=True,
        keeps_alpha=True,
        gps_free_as="webp",
        variant=Variant(rank=0, quality=80, negotiated=1),
    ),
    Format(
        name="avif",
        display="AVIF",
        media_type="image/avif",
        extensions=(".avif",),
        container="heif",
        loader="heif",
        saver="heif",
        save_options=(("compression", "av1"), ("effort", 2), ("bitdepth", 8)),
        lossy=True,
        brands=frozenset({b"avif", b"avis"}),
        keeps_alpha=True,
        xmp_anywhere=True,
        gps_free_as="avif",
        variant=Variant(rank=1, quality=55, negotiated=0),
    ),
    Format(
        name="tiff",
        display="TIFF",
        media_type="image/tiff",
        extensions=(".tif", ".tiff"),
        container="tiff",
        loader="tiff",
        saver="tiff",
        save_options=(("compression", "deflate"),),
        signatures=(((0, b"II*\x00"),), ((0, b"MM\x00*"),)),
        xmp_anywhere=True,
        gps_free_as="tiff",
    ),
    Format(
        name="heic",
        display="HEIC",
        media_type="image/heic",
        extensions=(".heic",),
        container="heif",  # the same HEIF container as AVIF, with HEVC instead of AV1 inside
        loader="heif",
        saver=None,
        brands=frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"mif1", b"msf1"}),
        optional=True,
        xmp_anywhere=True,
        gps_free_as="jpeg",
    ),
)

#: Every format by name.
BY_NAME: Final[Mapping[str, Format]] = MappingProxyType({f.name: f for f in FORMATS})
#: Every name, in the canonical order.
NAMES: Final = tuple(BY_NAME)
#: The names accepted unless the settings say otherwise (all but the optional ones).
DEFAULT_NAMES: Final = tuple(f.name for f in FORMATS if not f.optional)


def _ranked(pairs: list[tuple[int, str]]) -> tuple[str, ...]:
    return tuple(name for _, name in sorted(pairs))


#: The formats a variant may be written in, in the order they are tried and offered.
VARIANT_FORMATS: Final = _ranked([(f.variant.rank, f.name) for f in FORMATS if f.variant])
#: The formats ``format=auto`` picks when ``Accept`` names them, most preferred first.
NEGOTIATED: Final = _ranked(
    [
        (f.variant.negotiated, f.name)
        for f in FORMATS
        if f.variant and f.variant.negotiated is not None
    ]
)


def fallback_variant(alpha: bool) -> str:
    """The variant format ``format=auto`` falls back to, for an image with or without alpha."""
    return next(
        f.name for f in FORMATS if f.variant and f.variant.fallback and f.keeps_alpha == alpha
    )
