"""Find the GPS location in an image file and cut it out without re-encoding a pixel.

A location can sit in two places: the EXIF GPS IFD (a TIFF structure, inside a JPEG APP1
segment, a PNG ``eXIf`` chunk, a WebP ``EXIF`` chunk, a HEIF ``Exif`` item, or the TIFF file
itself), and XMP properties (``exif:GPSLatitude``...).

EXIF is edited in place, keeping every length: the GPS entry is removed from IFD0 (the later
entries move up and 12 zero bytes pad the end, so no offset anywhere changes) and the GPS IFD
and its values are overwritten with zeros. An XMP packet that mentions GPS is dropped whole,
where the container allows (JPEG segments, PNG chunks, WebP chunks). Anything else that holds a
location (XMP in GIF, HEIF or TIFF; a structure that does not parse) raises ``GpsLayoutError``,
and the caller falls back to re-encoding the image without metadata.

The edits are computed first, as ``(start, end, replacement)`` triples over the original bytes,
so finding a location costs no copy of the file; :func:`strip` applies them.
"""

from __future__ import annotations

import mmap
import re
import struct
import zlib
from collections.abc import Callable
from typing import Final

from pixdrop.formats import BY_NAME, FORMATS

__all__ = ["GpsLayoutError", "apply", "find_edits", "strip"]

Data = bytes | bytearray | mmap.mmap
Edit = tuple[int, int, bytes]

_GPS_TAG: Final = 0x8825
#: Bytes per value of each TIFF field type (TIFF 6.0 §2, plus the IFD type of TIFF/EP).
_TYPE_SIZES: Final = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
}
#: Formats whose XMP packets are searched for in the whole file, not found by their structure.
XMP_ANYWHERE: Final = frozenset(f.name for f in FORMATS if f.xmp_anywhere)
#: An XMP GPS property's name (``exif:GPSLatitude``...), wherever it is.
XMP_GPS: Final = re.compile(rb"GPS(?:Latitude|Longitude|Altitude|DestLatitude|DestLongitude)")
_XMP_JPEG: Final = (b"http://ns.adobe.com/xap/1.0/\x00", b"http://ns.adobe.com/xmp/extension/\x00")
_EXIF: Final = b"Exif\x00\x00"


class GpsLayoutError(Exception):
    """The file holds a location that cannot be removed losslessly (or does not parse)."""


def _u16(data: Data, at: int, end: int, order: str) -> int:
    if at < 0 or at + 2 > end:
        raise GpsLayoutError(f"EXIF structure runs past its end at byte {at}")
    return int(struct.unpack(order + "H", data[at : at + 2])[0])


def _u32(data: Data, at: int, end: int, order: str) -> int:
    if at < 0 or at + 4 > end:
        raise GpsLayoutError(f"EXIF structure runs past its end at byte {at}")
    return int(struct.unpack(order + "I", data[at : at + 4])[0])


def tiff_edits(data: Data, start: int, end: int) -> list[Edit]:
    """Edits removing the GPS IFD of the TIFF structure in ``data[start:end]`` (offsets from
    *start*). Nothing if there is no TIFF header or no GPS IFD."""
    magic = data[start : start + 4]
    if magic not in (b"II*\x00", b"MM\x00*"):
        return []
    order = "<" if magic[:2] == b"II" else ">"
    ifd0 = start + _u32(data, start + 4, end, order)
    count = _u16(data, ifd0, end, order)
    entries = ifd0 + 2
    ifd_end = entries + 12 * count + 4  # the next-IFD offset ends the IFD
    if ifd_end > end:
        raise GpsLayoutError("IFD0 runs past the end of the EXIF data")
    for index in range(count):
        entry = entries + 12 * index
        if _u16(data, entry, end, order) != _GPS_TAG:
            continue
        gps = start + _u32(data, entry + 8, end, order)
        zeros = _gps_ifd_ranges(data, start, end, gps, order)
        if any(lo < ifd_end and ifd0 < hi for lo, hi in zeros):
            raise GpsLayoutError("the GPS IFD overlaps IFD0")
        kept = data[entries:entry] + data[entry + 12 : entries + 12 * count]
        next_ifd = data[entries + 12 * count : ifd_end]
        ifd = struct.pack(order + "H", count - 1) + kept + next_ifd + bytes(12)
        return [(ifd0, ifd_end, ifd), *((lo, hi, bytes(hi - lo)) for lo, hi in zeros)]
    return []


def _gps_ifd_ranges(
    data: Data, start: int, end: int, gps: int, order: str
) -> list[tuple[int, int]]:
    """The byte ranges of the GPS IFD and of its out-of-line values, merged and sorted."""
    count = _u16(data, gps, end, order)
    ranges = [(gps, gps + 2 + 12 * count + 4)]
    for index in range(count):
        entry = gps + 2 + 12 * index
        kind, n = struct.unpack(order + "HI", data[entry + 2 : entry + 8])
        size = _TYPE_SIZES.get(kind, 0) * n
        if size > 4:  # values of up to 4 bytes sit in the entry itself
            at = start + _u32(data, entry + 8, end, order)
            ranges.append((at, at + size))
    if any(hi > end or lo < start for lo, hi in ranges):
        raise GpsLayoutError("a GPS value lies outside the EXIF data")
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
        else:
            merged.append((lo, hi))
    return merged


# --- containers -------------------------------------------------------------------------------
def _jpeg(data: Data) -> list[Edit]:
    edits: list[Edit] = []
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break  # not a marker: the metadata segments are over
        marker = data[pos + 1]
        if marker == 0xFF or marker == 0x01 or 0xD0 <= marker <= 0xD8:
            pos += 1 if marker == 0xFF else 2
            continue
        if marker in (0xDA, 0xD9):  # start of scan or end of image: no metadata beyond
            break
        end = pos + 2 + _u16(data, pos + 2, len(data), ">")
        payload = data[pos + 4 : pos + 4 + 64]
        if marker == 0xE1 and payload.startswith(_EXIF):
            edits += tiff_edits(data, pos + 10, end)
        elif (
            marker == 0xE1 and payload.startswith(_XMP_JPEG) and XMP_GPS.search(data[pos + 4 : end])
        ):
            edits.append((pos, end, b""))
        pos = end
    return edits


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_text_has_gps(kind: bytes, body: bytes) -> bool:
    keyword, _, rest = body.partition(b"\x00")
    if keyword.lower().startswith((b"raw profile type exif", b"raw profile type app1")):
        return True  # ImageMagick's hex-encoded EXIF: cannot be edited in place, drop it
    if keyword != b"XML:com.adobe.xmp":
        return False
    if kind == b"iTXt" and rest[:1] == b"\x01":  # compressed iTXt
        text = rest[2:].split(b"\x00", 2)[-1]
        return bool(XMP_GPS.search(zlib.decompressobj().decompress(text, 16 << 20)))
    return bool(XMP_GPS.search(rest))


def _png(data: Data) -> list[Edit]:
    edits: list[Edit] = []
    pos = 8
    while pos + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        end = pos + 12 + length
        if end > len(data):
            raise GpsLayoutError("a PNG chunk runs past the end of the file")
        if kind == b"eXIf":
            body = bytes(data[pos + 8 : end - 4])
            inner = tiff_edits(body, 0, len(body))
            if inner:
                edits.append((pos, end, _png_chunk(kind, apply(body, inner))))
        elif kind in (b"iTXt", b"tEXt", b"zTXt"):
            if _png_text_has_gps(kind, bytes(data[pos + 8 : end - 4])):
                edits.append((pos, end, b""))
        elif kind == b"IEND":
            break
        pos = end
    return edits


def _webp(data: Data) -> list[Edit]:
    edits: list[Edit] = []
    dropped = 0
    pos = 12
    while pos + 8 <= len(data):
        kind, size = struct.unpack("<4sI", data[pos : pos + 8])
        end = pos + 8 + size + (size & 1)
        if kind == b"EXIF":
            start = pos + 8 + (6 if data[pos + 8 : pos + 14] == _EXIF else 0)
            edits += tiff_edits(data, start, min(pos + 8 + size, len(data)))
        elif kind == b"XMP " and XMP_GPS.search(data[pos + 8 : end]):
            edits.append((pos, end, b""))
            dropped += end - pos
        pos = end
    if dropped:
        riff = struct.unpack("<I", data[4:8])[0] - dropped
        edits.append((4, 8, struct.pack("<I", riff)))
        if data[12:16] == b"VP8X":  # clear the "has XMP" flag
            edits.append((20, 21, bytes([data[20] & ~0x04 & 0xFF])))
    return edits


def _heif(data: Data) -> list[Edit]:
    edits: list[Edit] = []
    at = data.find(_EXIF)
    while at != -1:
        edits += tiff_edits(data, at + 6, len(data))
        at = data.find(_EXIF, at + 6)
    return edits


def _tiff(data: Data) -> list[Edit]:
    return tiff_edits(data, 0, len(data))


#: Where each container (``Format.container``) keeps its EXIF; GIF has none.
_EDITORS: Final[dict[str, Callable[[Data], list[Edit]]]] = dict(
    jpeg=_jpeg, png=_png, webp=_webp, tiff=_tiff, heif=_heif
)


def find_edits(data: Data, fmt: str, *, xmp_gps: bool | None = None) -> list[Edit]:
    """The edits that remove every GPS location from the file; empty if it has none.

    Raise ``GpsLayoutError`` if there is a location these edits cannot remove. For GIF,
    AVIF, HEIC and TIFF that includes XMP GPS properties anywhere in the file; a caller that
    has already searched the whole file (``markup.search``) passes what it found as *xmp_gps*.
    """
    known = BY_NAME.get(fmt)
    editor = _EDITORS.get(known.container) if known else None
    try:
        edits = editor(data) if editor else []
    except (struct.error, zlib.error, IndexError) as exc:
        raise GpsLayoutError(f"metadata does not parse: {exc}") from None
    if xmp_gps is None and fmt in XMP_ANYWHERE:
        xmp_gps = XMP_GPS.search(data) is not None
    if xmp_gps and fmt in XMP_ANYWHERE:
        raise GpsLayoutError(f"{fmt} XMP with a location cannot be removed in place")
    return edits


def apply(data: Data, edits: list[Edit]) -> bytes:
    """*data* with each ``(start, end, replacement)`` applied; raise if edits overlap."""
    out = bytearray()
    pos = 0
    for start, end, replacement in sorted(edits):
        if start < pos:
            raise GpsLayoutError("overlapping metadata edits")
        out += data[pos:start]
        out += replacement
        pos = end
    out += data[pos:]
    return bytes(out)


def strip(data: Data, fmt: str) -> bytes | None:
    """The file without its GPS location, or ``None`` if it has none (see the module doc)."""
    edits = find_edits(data, fmt)
    return apply(data, edits) if edits else None
