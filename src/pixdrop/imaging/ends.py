"""Where an image's own bytes end: one parser per file structure, sans-I/O.

A parser is a generator that yields ``(offset, size)`` reads and is sent the bytes found there
(fewer at the end of the file); it returns the offset just past the image's last byte. It is
given the file's size, and never asks for bytes beyond it. ``end_of`` drives one over a file.

Per structure (docs/images.md, "Trailing data"):

* PNG: the chunk after IEND's (length, type, data, CRC: 12 + length bytes each);
* JPEG: the EOI marker, found by walking the segments (their lengths skip the embedded EXIF
  thumbnail, itself a JPEG with an EOI of its own) and scanning each entropy-coded segment for
  the marker that ends it. A JPEG with an MPF (CIPA DC-007) segment is followed by the other
  images it lists (an Ultra HDR gain map, a depth map): JPEG after JPEG, each walked alike;
* GIF: the trailer (0x3B) after the blocks (extensions and images, each a chain of sub-blocks);
* WebP: the RIFF chunk's size (plus its pad byte);
* AVIF and HEIC: the last top-level ISO-BMFF box (a size of 0 runs to the end of the file);
  a box whose type is not four printable characters is not part of the file;
* TIFF: not determined (``None``): its directories, values and strips may lie anywhere, in any
  order, so the end is not where a structure stops.

A structure that runs past the end of the file answers the file's size: a truncated image is
the decoder's to refuse, with its own words.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Final

from pixdrop.formats import BY_NAME

__all__ = ["Ends", "end_in", "end_of", "parser"]

#: What a parser yields, is sent, and returns.
Ends = Generator[tuple[int, int], bytes, int]

#: Bytes asked for at once where a parser scans (JPEG entropy-coded data).
_BLOCK: Final = 1 << 20


def _get(offset: int, size: int) -> Generator[tuple[int, int], bytes, bytes]:
    data = yield offset, size
    return data


# --- PNG (W3C PNG 3rd edition, §5.3) -------------------------------------------------------
def _png(size: int) -> Ends:
    pos = 8  # after the signature
    while pos + 12 <= size:
        # A window of chunk headers at a time: encoders write IDAT in pieces of 8 KiB or so.
        window = yield from _get(pos, min(_BLOCK, size - pos))
        at = 0
        while at + 8 <= len(window):
            length, kind = int.from_bytes(window[at : at + 4], "big"), window[at + 4 : at + 8]
            at += 12 + length
            if kind == b"IEND":
                return min(pos + at, size)
        pos += at  # the next chunk's header, in the next window
    return size


# --- JPEG (ITU-T T.81, Annex B; CIPA DC-007 for MPF) ---------------------------------------
#: A marker between segments: 0xFF then neither fill (0xFF) nor stuffing (0x00). Stray bytes
#: before it are skipped, as libjpeg's next_marker does (and ``headers._JPEG_MARKER``).
_MARKER: Final = re.compile(rb"\xff[^\x00\xff]")
#: The end of entropy-coded data: a marker other than stuffing and RST0-RST7 (B.1.1.5).
_SCAN_END: Final = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
#: Markers without a length field: TEM and RST0-RST7.
_STANDALONE: Final = frozenset({0x01, *range(0xD0, 0xD8)})


def _scan(
    pos: int, size: int, pattern: re.Pattern[bytes]
) -> Generator[tuple[int, int], bytes, int]:
    """The offset of the first match of *pattern* at or after *pos*, or *size*."""
    while pos + 1 < size:
        block = yield from _get(pos, min(_BLOCK + 1, size - pos))
        found = pattern.search(block)
        if found is not None:
            return pos + found.start()
        pos += max(len(block) - 1, 1)  # the last byte again: it may be a marker's 0xFF
    return size


def _jpeg_image(start: int, size: int) -> Generator[tuple[int, int], bytes, tuple[int, bool]]:
    """(end, has MPF) of the JPEG whose SOI is at *start*."""
    pos, mpf = start + 2, False
    while True:
        pos = yield from _scan(pos, size, _MARKER)
        if pos + 4 > size:
            return size, mpf
        head = yield from _get(pos, 8)
        marker, length = head[1], int.from_bytes(head[2:4], "big")
        if marker == 0xD9:  # EOI
            return pos + 2, mpf
        if marker in _STANDALONE:
            pos += 2
            continue
        if marker == 0xD8 or length < 2:  # an SOI inside, or a length that cannot be
            return pos, mpf
        mpf = mpf or (marker == 0xE2 and head[4:8] == b"MPF\x00")
        pos += 2 + length
        if marker == 0xDA:  # SOS: the entropy-coded data runs to the next marker
            pos = yield from _scan(pos, size, _SCAN_END)


def _jpeg(size: int) -> Ends:
    end, mpf = yield from _jpeg_image(0, size)
    # The other images of an MPF file follow the first one, each a JPEG of its own.
    while mpf and end + 3 <= size:
        soi = yield from _get(end, 3)
        if soi != b"\xff\xd8\xff":
            break
        end, _ = yield from _jpeg_image(end, size)
    return end


# --- GIF (GIF89a §17-27) -------------------------------------------------------------------
def _sub_blocks(pos: int, size: int) -> Generator[tuple[int, int], bytes, int]:
    """The offset after the chain of data sub-blocks at *pos* (its 0 terminator included)."""
    while pos < size:
        window = yield from _get(pos, min(_BLOCK, size - pos))  # sub-blocks are <= 256 bytes
        at = 0
        while at < len(window):
            length = window[at]
            if length == 0:
                return pos + at + 1
            at += 1 + length
        pos += at
    return size


def _colour_table(packed: int) -> int:
    """The bytes of the colour table a packed field announces (0 if its flag is clear)."""
    return 3 << ((packed & 0x07) + 1) if packed & 0x80 else 0


def _gif(size: int) -> Ends:
    screen = yield from _get(6, 7)  # logical screen descriptor
    if len(screen) < 7:
        return size
    pos = 13 + _colour_table(screen[4])
    while pos < size:
        kind = (yield from _get(pos, 1))[0]
        if kind == 0x3B:  # trailer
            return pos + 1
        if kind == 0x21:  # extension: label, then sub-blocks
            pos = yield from _sub_blocks(pos + 2, size)
        elif kind == 0x2C:  # image descriptor, local colour table, LZW code size, data
            descriptor = yield from _get(pos, 10)
            if len(descriptor) < 10:
                return size
            pos = yield from _sub_blocks(pos + 11 + _colour_table(descriptor[9]), size)
        else:
            return pos  # not a block: the GIF ended here
    return size


# --- WebP (RFC 9649 §2.5) ------------------------------------------------------------------
def _webp(size: int) -> Ends:
    head = yield from _get(4, 4)
    riff = int.from_bytes(head, "little")
    return min(8 + riff + (riff & 1), size)


# --- AVIF, HEIC (ISO/IEC 14496-12 §4.2) ----------------------------------------------------
def _heif(size: int) -> Ends:
    pos = 0
    while pos + 8 <= size:
        head = yield from _get(pos, 16)
        length, kind = int.from_bytes(head[:4], "big"), head[4:8]
        if not all(0x20 <= byte <= 0x7E for byte in kind):
            return pos  # not a box
        header = 8
        if length == 1:  # a 64-bit size follows the type
            length, header = int.from_bytes(head[8:16], "big"), 16
        elif length == 0:  # the last box, to the end of the file
            return size
        if length < header:
            return pos
        pos += length
    return min(pos, size)


_PARSERS: Final[dict[str, Callable[[int], Ends]]] = dict(
    png=_png, jpeg=_jpeg, gif=_gif, webp=_webp, heif=_heif
)


def parser(fmt: str, size: int) -> Ends | None:
    """A parser of where a *size*-byte *fmt* image ends; ``None`` where the structure does not
    say (TIFF)."""
    make = _PARSERS.get(BY_NAME[fmt].container)
    return None if make is None else make(size)


def end_of(path: Path, fmt: str, size: int) -> int | None:
    """Where the *fmt* image in the first *size* bytes of *path* ends (blocking); ``None`` if
    its structure does not say."""
    ends = parser(fmt, size)
    if ends is None:
        return None
    fd = os.open(path, os.O_RDONLY)
    try:
        return _drive(ends, size, lambda offset, length: os.pread(fd, length, offset))
    finally:
        os.close(fd)


def end_in(data: bytes, fmt: str) -> int | None:
    """Where the *fmt* image held whole in *data* ends; ``None`` if its structure does not say."""
    ends = parser(fmt, len(data))
    if ends is None:
        return None
    return _drive(ends, len(data), lambda offset, length: data[offset : offset + length])


def _drive(ends: Ends, size: int, read: Callable[[int, int], bytes]) -> int:
    """Run the parser *ends*, answering each of its reads with *read* (offset, length)."""
    try:
        offset, length = next(ends)
        while True:
            offset, length = ends.send(read(offset, max(0, min(length, size - offset))))
    except StopIteration as stop:
        end: int = stop.value
        return end
