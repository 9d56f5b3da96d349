"""Format and size from an image's first bytes: the magic-byte sniffer and one header parser
per file structure (JPEG, PNG, GIF, WebP, TIFF, HEIF), for ``validate.HeaderProber``.

Pure, no I/O, no pixel decoding. A parser's complaint names only the structure: ``Truncated``
(the bytes end before it) or ``Corrupt`` (it is malformed); the prober adds the format's name
and the advice. Parsers read only through the bounds-checked ``_read``, so no other exception
escapes, and every loop moves forward by at least one byte, so hostile lengths (0, or pointing
backwards) cannot make it spin.
"""

from __future__ import annotations

import re
import struct
import sys
import zlib
from collections.abc import Callable, Iterator
from typing import Final, Literal

from pixdrop.formats import BY_NAME, FORMATS

__all__ = ["Corrupt", "Truncated", "dimensions", "sniff"]

#: Stands for the end of the file, which the prober cannot see (ISO-BMFF top-level boxes).
_EOF: Final = sys.maxsize


class Truncated(Exception):
    """The bytes end before the structure named in the message."""


class Corrupt(Exception):
    """The structure is malformed; the message says how."""


def _read(buf: bytes, offset: int, size: int, what: str) -> bytes:
    """Exactly ``buf[offset:offset + size]``, or ``Truncated(what)`` if it runs off the end."""
    if offset + size > len(buf):
        raise Truncated(what)
    return buf[offset : offset + size]


def _uint(buf: bytes, offset: int, size: int, order: Literal["big", "little"], what: str) -> int:
    return int.from_bytes(_read(buf, offset, size, what), order)


# --- JPEG (ITU-T T.81, Annex B) -------------------------------------------------------------
#: SOF0-SOF15 except C4 (DHT), C8 (JPG, reserved) and CC (DAC), which share the range.
_JPEG_SOF: Final = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers without a length field: TEM and RST0-RST7 (B.1.1.3).
_JPEG_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})
#: 0xFF then a byte that is neither a fill byte (0xFF, B.1.1.2) nor stuffing (0x00). Like
#: libjpeg's next_marker we skip stray bytes before a marker, so files that every browser shows
#: are not refused. One-byte lookahead only: linear time even on a megabyte of 0xFF.
_JPEG_MARKER: Final = re.compile(rb"\xff[^\x00\xff]")


def _jpeg(head: bytes) -> tuple[int, int]:
    pos = 2  # after SOI
    while True:
        found = _JPEG_MARKER.search(head, pos)
        if found is None:
            raise Truncated("frame header (SOF marker)")
        marker, pos = head[found.start() + 1], found.end()
        if marker in _JPEG_SOF:  # frame header: Lf, P, Y (height), X (width) (B.2.2)
            length, _, height, width = struct.unpack(">HBHH", _read(head, pos, 7, "SOF"))
            if length < 8:
                raise Corrupt(f"the frame header (SOF) has length {length}, less than 8")
            return int(width), int(height)
        if marker in _JPEG_STANDALONE:
            continue
        if marker in (0xD8, 0xD9, 0xDA):
            raise Corrupt(f"marker 0xFF{marker:02X} comes before the frame header (SOF)")
        length = _uint(head, pos, 2, "big", "frame header (SOF marker)")
        if length < 2:  # the length counts its own two bytes; less would not move us on
            raise Corrupt(f"segment 0xFF{marker:02X} at byte {pos - 2} has length {length}")
        pos += length


# --- PNG (W3C PNG 3rd edition, §5.3 and §11.2.1) -----------------------------------------------
#: Allowed bit depths for each colour type (Table 11.1).
_PNG_DEPTHS: Final = {0: {1, 2, 4, 8, 16}, 2: {8, 16}, 3: {1, 2, 4, 8}, 4: {8, 16}, 6: {8, 16}}


def _png(head: bytes) -> tuple[int, int]:
    length, kind = struct.unpack(">I4s", _read(head, 8, 8, "IHDR chunk"))
    if kind != b"IHDR":  # "The IHDR chunk shall be the first chunk in the PNG datastream."
        raise Corrupt(f"the first chunk is {kind.decode('latin-1')!r}, not IHDR")
    if length != 13:
        raise Corrupt(f"the IHDR chunk is {length} bytes long instead of 13")
    fields = _read(head, 16, 13, "IHDR chunk")
    if zlib.crc32(head[12:29]) != _uint(head, 29, 4, "big", "IHDR checksum"):
        raise Corrupt("the IHDR chunk's CRC does not match its contents")
    width, height, depth, colour, *methods = struct.unpack(">IIBBBBB", fields)
    if depth not in _PNG_DEPTHS.get(colour, ()):
        raise Corrupt(f"colour type {colour} with bit depth {depth} is not valid")
    if methods[0] or methods[1] or methods[2] > 1:  # compression, filter, interlace
        raise Corrupt("IHDR names an unknown compression, filter or interlace method")
    if max(width, height) > 0x7FFFFFFF:  # PNG four-byte integers stop at 2**31 - 1
        raise Corrupt(f"IHDR claims {width}x{height} pixels, beyond PNG's limit")
    return int(width), int(height)


# --- GIF (GIF89a §18, logical screen descriptor) -----------------------------------------------
def _gif(head: bytes) -> tuple[int, int]:
    width, height = struct.unpack("<HH", _read(head, 6, 4, "logical screen descriptor"))
    return int(width), int(height)


# --- WebP (RFC 9649 §2.5-2.7; VP8 key frame header from RFC 6386 §9.1) ------------------------
def _webp(head: bytes) -> tuple[int, int]:
    kind, size = struct.unpack("<4sI", _read(head, 12, 8, "first chunk"))
    if kind not in (b"VP8 ", b"VP8L", b"VP8X"):
        raise Corrupt(f"the first chunk is {kind.decode('latin-1')!r}, not VP8, VP8L or VP8X")
    needed = 5 if kind == b"VP8L" else 10
    if size < needed:
        raise Corrupt(f"the {kind.decode().strip()} chunk is only {size} bytes long")
    data = _read(head, 20, needed, "first chunk")
    if kind == b"VP8X":  # canvas width - 1 and height - 1, 24 bits each
        return int.from_bytes(data[4:7], "little") + 1, int.from_bytes(data[7:10], "little") + 1
    if kind == b"VP8L" and data[0] == 0x2F:  # signature, then width - 1, height - 1 in 14 bits
        bits = int.from_bytes(data[1:5], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    # Lossy: a 3-byte frame tag whose low bit is 0 on key frames, then start code 9D 01 2A.
    if kind == b"VP8 " and not data[0] & 1 and data[3:6] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[6:10])
        return width & 0x3FFF, height & 0x3FFF  # the top two bits are the scaling mode
    raise Corrupt(f"the {kind.decode().strip()} chunk lacks its signature or key frame")


# --- TIFF (TIFF 6.0, sections 2 and 8) --------------------------------------------------------
def _tiff(head: bytes) -> tuple[int, int]:
    order: Literal["big", "little"] = "little" if head.startswith(b"II") else "big"
    ifd = _uint(head, 4, 4, order, "first IFD offset")
    if ifd < 8:  # the IFD cannot overlap the 8-byte header
        raise Corrupt(f"the first IFD offset is {ifd}")
    found: dict[int, int] = {}
    for index in range(_uint(head, ifd, 2, order, "first IFD")):
        entry = ifd + 2 + 12 * index
        tag, kind, count = struct.unpack(
            ("<" if order == "little" else ">") + "HHI", _read(head, entry, 8, "first IFD")
        )
        if tag not in (256, 257):  # ImageWidth, ImageLength
            continue
        if kind not in (3, 4) or count < 1:  # SHORT or LONG, stored left-justified
            raise Corrupt(f"tag {tag} has field type {kind} and count {count}")
        found[tag] = _uint(head, entry + 8, 2 if kind == 3 else 4, order, "first IFD")
        if len(found) == 2:
            return found[256], found[257]
    raise Corrupt("the first IFD lacks ImageWidth or ImageLength")


# --- HEIF: AVIF and HEIC (ISO/IEC 23008-12, over ISO-BMFF, ISO/IEC 14496-12) ---------------
def _boxes(buf: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """Yield (type, payload start, box end) for the boxes in ``buf[start:end]`` (14496-12 §4.2)."""
    pos = start
    while pos < end:
        size, kind = struct.unpack(">I4s", _read(buf, pos, 8, "box header"))
        header = 8
        if size == 1:  # a 64-bit size follows the type
            size, header = _uint(buf, pos + 8, 8, "big", "box header"), 16
        elif size == 0:  # the box runs to the end of its container
            size = end - pos
        if size < header:  # also guarantees that pos moves forward
            raise Corrupt(f"the {kind.decode('latin-1')!r} box at byte {pos} is {size} bytes")
        if pos + size > end:
            raise Corrupt(f"the {kind.decode('latin-1')!r} box overruns its container")
        yield kind, pos + header, pos + size
        pos += size


def _box(buf: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    """(payload start, end) of the first *kind* box in ``buf[start:end]``, if any."""
    return next(((p, e) for k, p, e in _boxes(buf, start, end) if k == kind), None)


def _need(found: tuple[int, int] | None, kind: str) -> tuple[int, int]:
    if found is None:
        raise Corrupt(f"there is no {kind!r} box")
    return found


def _heif(head: bytes) -> tuple[int, int]:
    meta, meta_end = _need(_box(head, 0, _EOF, b"meta"), "meta")
    children = meta + 4  # meta is a FullBox: version and flags come before its children
    iprp, iprp_end = _need(_box(head, children, meta_end, b"iprp"), "iprp")
    ipco, ipco_end = _need(_box(head, iprp, iprp_end, b"ipco"), "ipco")
    pitm, ipma = _box(head, children, meta_end, b"pitm"), _box(head, iprp, iprp_end, b"ipma")
    wanted = _primary_properties(head, pitm, ipma) if pitm and ipma else None
    # A grid image has an ispe per tile besides the whole; a thumbnail has its own. Take the
    # primary item's (pitm, via ipma); only without those, the first ispe.
    for index, (kind, payload, end) in enumerate(_boxes(head, ipco, ipco_end), start=1):
        if kind == b"ispe" and (wanted is None or index in wanted):
            if end - payload < 12:
                raise Corrupt("the 'ispe' box is too short")
            _, width, height = struct.unpack(">III", _read(head, payload, 12, "ispe box"))
            return int(width), int(height)
    raise Corrupt("no 'ispe' property gives the image's size")


def _primary_properties(head: bytes, pitm: tuple[int, int], ipma: tuple[int, int]) -> set[int]:
    """1-based ipco indices that ipma associates with the primary item (23008-12 §9.3)."""
    pitm_version = _read(head, pitm[0], 1, "pitm box")[0]
    primary = _uint(head, pitm[0] + 4, 2 if pitm_version == 0 else 4, "big", "pitm box")
    version_flags = _read(head, ipma[0], 4, "ipma box")
    id_size = 2 if version_flags[0] == 0 else 4
    index_size = 2 if version_flags[3] & 1 else 1
    pos = ipma[0] + 8
    for _ in range(_uint(head, ipma[0] + 4, 4, "big", "ipma box")):
        item = _uint(head, pos, id_size, "big", "ipma box")
        count = _uint(head, pos + id_size, 1, "big", "ipma box")
        pos += id_size + 1 + count * index_size
        if pos > ipma[1]:  # bounds the loop by the box, whatever entry_count claims
            raise Corrupt("the 'ipma' box is shorter than its entries")
        if item == primary:
            raw = _read(head, pos - count * index_size, count * index_size, "ipma box")
            mask = 0x7FFF if index_size == 2 else 0x7F  # the top bit flags "essential"
            starts = range(0, len(raw), index_size)
            return {int.from_bytes(raw[i : i + index_size], "big") & mask for i in starts}
    return set()


#: The header parser of each container (``Format.container``).
_PARSERS: Final[dict[str, Callable[[bytes], tuple[int, int]]]] = dict(
    jpeg=_jpeg, png=_png, gif=_gif, webp=_webp, tiff=_tiff, heif=_heif
)


def sniff(head: bytes) -> str | None:
    """The format the magic bytes (or the ISO-BMFF ``ftyp`` brands) name, or None."""
    for fmt in FORMATS:
        if any(all(head.startswith(magic, at) for at, magic in sig) for sig in fmt.signatures):
            return fmt.name
    if head[4:8] != b"ftyp":
        return None
    # ftyp: size, "ftyp", major brand, minor version, compatible brands to the end of the box
    end = min(len(head), max(int.from_bytes(head[:4], "big"), 16), 4096)
    brands = {head[8:12]} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    # In the table's order: a file that names AVIF brands and HEIF ones (mif1) is AVIF.
    return next((fmt.name for fmt in FORMATS if brands & fmt.brands), None)


def dimensions(fmt: str, head: bytes) -> tuple[int, int]:
    """(width, height) from the header of a *fmt* file; raise ``Truncated`` or ``Corrupt``."""
    return _PARSERS[BY_NAME[fmt].container](head)
