"""The work done inside a decode worker process: inspect, render, strip GPS.

Each job is a plain function of picklable arguments returning a picklable value. A refusal
the client must hear about is raised as ``Refusal(detail, fields)``; the pool turns it into
an ``UnprocessableImage`` on the server's side (exceptions with keyword fields do not pickle).
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pixdrop.formats import BY_NAME
from pixdrop.imaging import ends, gps, markup, placeholder, vips
from pixdrop.models import Fit, ImageDetails, ImageLimits, VariantSpec, gps_free_format

#: Side of the image the placeholder is computed from (ThumbHash keeps at most 7 x 7 terms).
PREVIEW_SIZE: Final = 32


#: Windows overlap by more than the longest possible match (``markup.LONGEST``), so no match
#: straddles unseen.
_SCAN_WINDOW: Final = 8 * 1024 * 1024
_SCAN_OVERLAP: Final = 1024


class Refusal(Exception):
    """The image is refused; ``args`` are (detail, problem fields)."""

    def __init__(self, detail: str, fields: dict[str, Any]) -> None:
        super().__init__(detail, fields)
        self.detail = detail
        self.fields = fields


@contextmanager
def _bytes_of(source: Path | bytes) -> Iterator[bytes | mmap.mmap]:
    """The file's bytes, mapped rather than read: scanning a 1 GiB TIFF copies nothing."""
    if isinstance(source, bytes):
        yield source
        return
    with open(source, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        yield mm


def _check_limits(header: vips.Header, fmt: str, limits: ImageLimits) -> None:
    breach = limits.breach(header.width, header.height, header.frames)
    if breach is not None:
        limit, value, allowed = breach
        raise Refusal(
            f"The {BY_NAME[fmt].display} image is {header.width}x{header.height} pixels in "
            f"{header.frames} frame(s), over the limit {limit} = {allowed} ({value}). "
            "Nothing was decoded; send a smaller image.",
            {"reason": "limit-exceeded", "limit": limit, "value": value, "allowed": allowed},
        )


@dataclass(frozen=True, slots=True)
class _Scan:
    """What one pass over the whole file found."""

    #: The first web markup, as (offset, the bytes found).
    markup: tuple[int, bytes] | None
    #: Whether an XMP GPS property is named anywhere.
    xmp_gps: bool


def _scan(source: Path | bytes, *, xmp: bool = True) -> _Scan:
    """Search the whole file once for markup and, if *xmp*, XMP GPS properties, a window at a
    time (plain reads into one buffer: memory stays flat, and no mapped page counts as RSS).
    The patterns search the buffer itself, not a copy of each window."""
    if isinstance(source, bytes):
        return _Scan(*markup.search(source, xmp))
    xmp_gps = False
    with open(source, "rb", buffering=0) as file:
        # A small file needs a buffer of its own size, not of a whole window.
        size = os.fstat(file.fileno()).st_size
        view = memoryview(bytearray(min(_SCAN_WINDOW + _SCAN_OVERLAP, size + 1)))
        base, kept = 0, 0  # file offset of view[0]; bytes carried over from the last window
        while True:
            got = file.readinto(view[kept:])
            if not got:
                return _Scan(None, xmp_gps)
            filled = kept + got
            window = view[:filled]
            found, named = markup.search(window, xmp and not xmp_gps)
            xmp_gps = xmp_gps or named
            if found is not None:
                return _Scan((base + found[0], found[1]), xmp_gps)
            kept = min(_SCAN_OVERLAP, filled)
            view[:kept] = view[filled - kept : filled]
            base += filled - kept


def _refuse_markup(found: tuple[int, bytes] | None, fmt: str) -> None:
    if found is not None:
        offset, raw = found
        token = raw.decode("latin-1").strip("<>/ ").lower()
        raise Refusal(
            f"The {BY_NAME[fmt].display} file also carries web markup ({token!r} at byte "
            f"{offset}), as files made to slip script past filters do. Re-save the "
            "image in an image editor and upload that.",
            {"reason": "embedded-markup", "format": fmt, "offset": offset},
        )


def inspect(source: Path | bytes, fmt: str, limits: ImageLimits) -> ImageDetails:
    """Header limits first (cheap), then the markup scan, the full decode and the placeholder.

    A file of :data:`OVERLAP_BYTES` or more is scanned on a thread while libvips decodes it
    (both let go of the GIL: a 1 GiB TIFF takes the longer of the two, not their sum), in this
    process, so a large image holds one worker, not two. A smaller file is read once, and each
    step works on its bytes: five opens and reads of a 100 KiB photo (header, scan, GPS walk,
    decode, end) cost more than one (in-process, 300 photos: 3.66 -> 3.36 ms each). Refusals
    keep the order of doing one after the other: header limits, then markup, then decoding.
    """
    source = _small_in_memory(source)
    try:
        header = vips.header(source, fmt)
    except vips.VipsFailure as exc:
        raise _corrupt(fmt, vips.without_paths(str(exc), source)) from None
    _check_limits(header, fmt, limits)
    if not _overlaps(source):
        xmp_gps = scan_markup(source, fmt)
        has_gps = _has_gps(source, fmt, header, xmp_gps)
        preview = _preview(source, fmt, header)
        return _details(header, has_gps, preview, _end(source, fmt))
    scanning = _scanner().submit(_scan_and_end, source, fmt)
    try:
        decoded: vips.Preview | Refusal = _preview(source, fmt, header)
    except Refusal as refusal:
        decoded = refusal  # the scan's refusal, if any, comes first
    xmp_gps, end = scanning.result()
    if isinstance(decoded, Refusal):
        raise decoded
    return _details(header, _has_gps(source, fmt, header, xmp_gps), decoded, end)


def _scan_and_end(source: Path | bytes, fmt: str) -> tuple[bool, int | None]:
    """The markup scan, then where the image ends: the scan thread's work."""
    return scan_markup(source, fmt), _end(source, fmt)


def _end(source: Path | bytes, fmt: str) -> int | None:
    """Where the image's own bytes end (``ends.end_of``), for completion's trailing-data
    check; found here, beside the decode, rather than in the server process."""
    if isinstance(source, bytes):
        return ends.end_in(source, fmt)
    return ends.end_of(source, fmt, os.stat(source).st_size)


#: From this size on, :func:`inspect` scans a file for markup while it decodes it (below it,
#: handing the scan to a thread costs more than it saves).
OVERLAP_BYTES = 8 * 1024 * 1024
_scan_thread: ThreadPoolExecutor | None = None


def _small_in_memory(source: Path | bytes) -> Path | bytes:
    """The bytes of a file under :data:`OVERLAP_BYTES`; else *source* as it is."""
    if isinstance(source, Path):
        try:
            if os.stat(source).st_size < OVERLAP_BYTES:
                return source.read_bytes()
        except OSError:
            pass  # not for us to report: the reads that follow will
    return source


def _overlaps(source: Path | bytes) -> bool:
    if not isinstance(source, Path):
        return False
    try:
        return os.stat(source).st_size >= OVERLAP_BYTES
    except OSError:
        return False  # not for us to report: the reads that follow will


def _scanner() -> ThreadPoolExecutor:
    global _scan_thread
    if _scan_thread is None:
        _scan_thread = ThreadPoolExecutor(1, thread_name_prefix="pixdrop-scan")
    return _scan_thread


def _has_gps(source: Path | bytes, fmt: str, header: vips.Header, xmp_gps: bool) -> bool:
    with _bytes_of(source) as data:
        try:
            return bool(gps.find_edits(data, fmt, xmp_gps=xmp_gps)) or header.has_exif_gps
        except gps.GpsLayoutError:
            return True  # a location we cannot cut out: served re-encoded, never as is


def _preview(source: Path | bytes, fmt: str, header: vips.Header) -> vips.Preview:
    try:
        return vips.decode_and_preview(source, fmt, header, PREVIEW_SIZE)
    except vips.VipsFailure as exc:
        raise _corrupt(fmt, vips.without_paths(str(exc), source)) from None


def _details(
    header: vips.Header, has_gps: bool, preview: vips.Preview, end: int | None
) -> ImageDetails:
    return ImageDetails(
        width=header.width,
        height=header.height,
        frames=header.frames,
        orientation=header.orientation,
        has_alpha=header.has_alpha,
        placeholder=placeholder.encode(preview.width, preview.height, preview.rgba),
        has_gps=has_gps,
        end=end,
    )


def scan_markup(source: Path | bytes, fmt: str) -> bool:
    """Refuse a file with web markup; else whether it names XMP GPS properties (for the
    formats whose XMP is searched for in the whole file, ``gps.XMP_ANYWHERE``)."""
    found = _scan(source, xmp=fmt in gps.XMP_ANYWHERE)
    _refuse_markup(found.markup, fmt)
    return found.xmp_gps


def _corrupt(fmt: str, why: str) -> Refusal:
    return Refusal(
        f"The {BY_NAME[fmt].display} image does not decode ({why}); it is truncated or corrupt. "
        "Send the whole, intact file.",
        {"reason": "corrupt-image", "format": fmt, "decoder": why},
    )


def render(source: Path | bytes, fmt: str, spec: VariantSpec) -> bytes:
    """A variant (see ``vips.render``); a decode failure here means the stored file is bad."""
    del fmt  # the loader follows the bytes; they were checked at ingest
    return vips.render(source, spec)


def strip_gps(source: Path | bytes, fmt: str) -> bytes | None:
    """The image without its location (in ``gps_free_format(fmt)``), or ``None`` if it has none.

    Lossless byte surgery first; if the structure does not allow it, or libvips still sees
    GPS fields afterwards, a full-size re-encode without any metadata.
    """
    out = gps_free_format(fmt)
    stripped: bytes | None = b""
    if out == fmt:
        with _bytes_of(source) as data:
            try:
                stripped = gps.strip(data, fmt)
            except gps.GpsLayoutError:
                stripped = b""
    if stripped and not vips.header(stripped, fmt).has_exif_gps:
        return stripped
    if stripped is None and not vips.header(source, fmt).has_exif_gps:
        return None
    return vips.render(source, VariantSpec(None, None, Fit.CONTAIN, out, 92))


def setup_worker() -> None:
    vips.setup()


JOBS: Final[dict[str, Callable[..., Any]]] = {
    "inspect": inspect,
    "render": render,
    "strip_gps": strip_gps,
    "capabilities": lambda: (vips.decodes(), vips.encodes(), vips.version()),
}
