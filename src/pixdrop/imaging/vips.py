"""The one module that touches pyvips: a narrow, typed face on libvips for the worker jobs.

pyvips has no type stubs, so every value that comes out of it is turned into a plain typed
value here (``int``, ``bytes``, a dataclass) and ``Any`` stops at this module's edge.

libvips can load dozens of formats, some through large, fuzz-unfriendly libraries (ImageMagick,
PDF, SVG, FITS, MATLAB). :func:`setup` blocks every loader marked untrusted *and* every loader
but the few pixdrop accepts, so bytes can only ever reach the JPEG, PNG, GIF, WebP, HEIF and
TIFF decoders, whatever they contain.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pyvips  # type: ignore[import-untyped]

from pixdrop.formats import BY_NAME, DEFAULT_NAMES, FORMATS, VARIANT_FORMATS
from pixdrop.imaging import tiles
from pixdrop.models import Fit, VariantSpec

#: The loader operations left unblocked (``Format.loader``).
_LOADER_OPERATIONS: Final = tuple(
    f"{nick}load{kind}" for nick in sorted({f.loader for f in FORMATS}) for kind in ("", "_buffer")
)
#: "No limit" for a free side of a variant's box: thumbnail needs a number.
_UNBOUNDED: Final = 10_000_000


class VipsFailure(Exception):
    """libvips refused the image; the message is libvips' own (first line)."""


@dataclass(frozen=True, slots=True)
class Header:
    """What the header says, before any pixel is decoded."""

    width: int
    #: Height of one frame (libvips' ``page-height``), which is the image's height.
    height: int
    frames: int
    orientation: int
    has_alpha: bool
    has_exif_gps: bool


@dataclass(frozen=True, slots=True)
class Preview:
    """A small upright 8-bit sRGB copy of the image, as RGBA bytes."""

    width: int
    height: int
    rgba: bytes


def setup() -> None:
    """Block untrusted and unexpected loaders, turn off the operation cache, and lower the
    tile height (``tiles``: less memory for wide images).

    The cache would keep decoded images and open files of blobs that may be deleted; every
    job here reads its file once.
    """
    tiles.set_tile_height()  # False where this libvips cannot be told: its default stays
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for nickname in _LOADER_OPERATIONS:  # blocking works on class names, not nicknames
        name = pyvips.type_name(pyvips.type_find("VipsOperation", nickname))
        pyvips.operation_block_set(name, False)
    pyvips.cache_set_max(0)
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)


def version() -> str:
    return f"{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}"


def _call(operation: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return operation(*args, **kwargs)
    except pyvips.Error as exc:
        raise VipsFailure(_first_line(exc)) from None


def _first_line(exc: Exception) -> str:
    # pyvips puts "unable to call X" (or "unable to write ...") first, libvips' reason after.
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith("unable to ")]
    return (useful or lines or ["libvips failed"])[0][:300]


#: An absolute file path (no blanks) in a libvips message.
_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s/:'\"()<>]+/)*[^\s/:'\"()<>]+")


def without_paths(message: str, source: Path | bytes) -> str:
    """*message* with the file it was about, and any other absolute path, named ``the file``:
    libvips' loaders name the file they read (a staging or blob path of the server), and a
    message a client sees must not carry a path of the server's disk."""
    if isinstance(source, Path):
        message = message.replace(str(source), "the file")
    return _PATH.sub("the file", message)


def _load(source: Path | bytes, fmt: str, **options: Any) -> Any:
    name = BY_NAME[fmt].loader + "load"
    if isinstance(source, Path):
        return _call(getattr(pyvips.Image, name), str(source), **options)
    return _call(getattr(pyvips.Image, name + "_buffer"), source, **options)


def _int_field(image: Any, name: str, default: int) -> int:
    if image.get_typeof(name) == 0:
        return default
    value = image.get(name)
    return int(value) if isinstance(value, int | float) else default


def header(source: Path | bytes, fmt: str) -> Header:
    """Read the header only (libvips loads lazily: no pixel is decoded here)."""
    image = _load(source, fmt, access="sequential")
    fields: list[str] = list(image.get_fields())
    frames = _int_field(image, "n-pages", 1)
    height = int(image.height)
    if BY_NAME[fmt].animated and frames > 1:
        height = _int_field(image, "page-height", height)
    return Header(
        width=int(image.width),
        height=height,
        frames=max(1, frames),
        orientation=min(8, max(1, _int_field(image, "orientation", 1))),
        has_alpha=bool(image.hasalpha()),
        has_exif_gps=any(f.startswith("exif-ifd3-") for f in fields),
    )


def decode_and_preview(source: Path | bytes, fmt: str, head: Header, size: int) -> Preview:
    """Decode every pixel (of every frame) strictly, and shrink the first frame for a preview.

    ``fail_on="error"`` turns libvips' warnings for truncated or corrupt data into errors
    (``VipsFailure``). The pixels stream through in strips, so memory stays small whatever the
    image's size. JPEG decodes at up to 1/8 scale: the entropy-coded data, where corruption
    shows, is still read in full, and the inverse DCT is up to 64 times cheaper. (The
    ``thumbnail`` operation would be shorter, but it does not pass ``fail_on`` on to loaders:
    measured, it accepts truncated JPEGs.) An RGB JPEG's preview is sampled from the decoded
    pixels (:func:`_sampled_preview`).
    """
    options: dict[str, Any] = {"access": "sequential", "fail_on": "error"}
    if fmt == "jpeg":
        options["shrink"] = next(
            s for s in (8, 4, 2, 1) if s == 1 or min(head.width, head.height) // s >= size
        )
    if BY_NAME[fmt].animated and head.frames > 1:
        _call(_load(source, fmt, n=-1, **options).avg)  # every frame; the preview shows one
    image = _load(source, fmt, **options)
    if fmt == "jpeg" and (image.bands, image.format, image.interpretation) == (3, "uchar", "srgb"):
        return _sampled_preview(image, head.orientation, size)  # an RGB JPEG: most photos
    # A box shrink by a whole factor first, to about twice the preview's size: four times
    # cheaper than letting thumbnail_image reduce a large image by itself (measured on a
    # 134-megapixel TIFF: 1.02 s against 0.26 s); the placeholder is a blur anyway.
    factor = min(image.width, image.height) // (2 * size)
    if factor > 1:
        image = _call(image.shrink, factor, factor)
    preview = _call(image.thumbnail_image, size, height=size)  # upright: applies orientation
    preview = _as_srgb8(preview, alpha=True)
    return Preview(int(preview.width), int(preview.height), bytes(_call(preview.write_to_memory)))


def _sampled_preview(image: Any, orientation: int, size: int) -> Preview:
    """The preview of an 8-bit RGB image small enough to hold whole (a JPEG decoded at 1/8).

    Decoding it to memory reads every pixel strictly; the preview then samples one pixel in
    every *step* x *step* block, in Python, and turns the grid upright per the EXIF
    *orientation*. Each further libvips operation on so small an image costs more than the
    sampling (measured: 5.1 ms against 3.1 ms per 100 KiB photo); the 1/8 scale already
    averaged each 8 x 8 block, and the placeholder keeps only the lowest frequencies.
    """
    pixels = bytes(_call(image.write_to_memory))
    width, height = int(image.width), int(image.height)
    step = -(-max(width, height) // size)  # ceiling: at most *size* samples a side
    first = step // 2
    stride = 3 * width
    grid: list[list[bytes]] = []
    for y in range(first, height, step):
        row = pixels[y * stride : (y + 1) * stride]
        grid.append([row[x : x + 3] for x in range(3 * first, stride, 3 * step)])
    grid = _upright(grid, orientation)
    rgba = b"".join(pixel + b"\xff" for row in grid for pixel in row)
    return Preview(len(grid[0]), len(grid), rgba)


def _upright(grid: list[list[bytes]], orientation: int) -> list[list[bytes]]:
    """Rows of pixels turned as the EXIF *orientation* (1-8) says to show them."""
    if orientation in (5, 6, 7, 8):  # a quarter turn: swap the axes first
        grid = [list(column) for column in zip(*grid, strict=True)]
    if orientation in (2, 3, 6, 7):  # mirror each row
        grid = [row[::-1] for row in grid]
    if orientation in (3, 4, 7, 8):  # upside down
        grid = grid[::-1]
    return grid


def _thumbnail(source: Path | bytes, width: int, **options: Any) -> Any:
    if isinstance(source, Path):
        return _call(pyvips.Image.thumbnail, str(source), width, **options)
    return _call(pyvips.Image.thumbnail_buffer, source, width, **options)


def _as_srgb8(image: Any, alpha: bool) -> Any:
    """8-bit sRGB (with alpha if *alpha*): CMYK, grey, 16-bit and odd spaces all end up here."""
    if image.interpretation not in ("srgb", "b-w") or image.format != "uchar":
        image = _call(image.colourspace, "srgb")
    if image.bands < 3:
        image = _call(image.colourspace, "srgb")
    if image.format != "uchar":
        image = _call(image.cast, "uchar")
    if alpha and not image.hasalpha():
        image = _call(image.bandjoin, 255)
    if not alpha and image.hasalpha():
        image = _call(image.flatten, background=[255, 255, 255])
    return image


def render(source: Path | bytes, spec: VariantSpec) -> bytes:
    """The variant: shrink-on-load, upright, sRGB, never enlarged, no metadata kept."""
    width = spec.width or _UNBOUNDED
    options: dict[str, Any] = {"height": spec.height or _UNBOUNDED, "size": "down"}
    if spec.fit is Fit.COVER and spec.width and spec.height:
        options["crop"] = "centre"
    image = _thumbnail(source, width, **options)
    known = BY_NAME.get(spec.format)  # an unknown one: _save says it cannot write it
    keep_alpha = known is not None and known.keeps_alpha and image.hasalpha()
    return _save(_as_srgb8(image, alpha=keep_alpha), spec.format, spec.quality)


def _save(image: Any, fmt: str, quality: int) -> bytes:
    """*image* written as *fmt* with the table's saver options (``Format.save_options``)."""
    spec = BY_NAME.get(fmt)
    if spec is None or spec.saver is None:
        raise ValueError(f"cannot write {fmt!r}")
    options: dict[str, Any] = dict(spec.save_options)
    if spec.lossy:
        options["Q"] = quality
    # keep=0: no EXIF (GPS), XMP, IPTC or ICC; the pixels are sRGB, which needs no profile.
    return bytes(_call(getattr(image, f"{spec.saver}save_buffer"), keep=0, **options))


def encodes() -> tuple[str, ...]:
    """Variant formats this libvips can write (AVIF needs an AV1 encoder in libheif)."""
    probe = _call(pyvips.Image.black, 8, 8)
    found = []
    for fmt in VARIANT_FORMATS:
        try:
            _save(probe, fmt, 50)
        except VipsFailure:
            continue
        found.append(fmt)
    return tuple(found)


def decodes() -> tuple[str, ...]:
    """Formats this libvips can decode; HEIC only with an HEVC codec (often absent).

    libheif cannot be asked for its decoders, so HEIC counts as decodable only if an HEVC
    image can be written and read back.
    """
    found = list(DEFAULT_NAMES)  # the optional format, HEIC, is the one tried below
    try:
        sample = _call(pyvips.Image.black(8, 8).heifsave_buffer, compression="hevc")
        _load(bytes(sample), "heic").avg()
    except (VipsFailure, pyvips.Error):
        return tuple(found)
    return (*found, "heic")
