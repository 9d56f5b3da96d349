"""Payload files: real images of incompressible pixels that pixdrop accepts, made fast.

pixdrop decodes every pixel of an upload before it stores it (``imaging/jobs.py``), so the
payload must be a real image, and a large one: an uncompressed RGBA TIFF of random pixels.
Nothing compresses random bytes (not the disk, not the wire), TIFF without compression is
the cheapest format to decode, and writing one is as fast as ``os.urandom``. The samples are
16 bits wide, or 32 bits for files over 512 MiB, so that a 1 GiB payload stays under
pixdrop's default ``max_pixels`` (100 MP): 512 MiB is 8192 x 8191 pixels, 1 GiB as many.

``vary`` overwrites a few pixel bytes in place, so the same file can be sent again as other
bytes (pixdrop stores identical bytes once, which would turn a repeat into a cheaper path).
"""

from __future__ import annotations

import hashlib
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
WRITE_BLOCK = 8 * MiB
#: A strip (the unit a TIFF reader reads at once) of about this many bytes.
STRIP_BYTES = MiB
#: Pixels above which 16-bit samples give way to 32-bit ones (under max_pixels = 100 MP).
MAX_PIXELS_16 = 90_000_000
#: ImageWidth, ImageLength, BitsPerSample, Compression, PhotometricInterpretation,
#: StripOffsets, SamplesPerPixel, RowsPerStrip, StripByteCounts, PlanarConfiguration,
#: ExtraSamples, SampleFormat: the baseline tags of an RGBA image, ascending as TIFF wants.
_TAGS = 12
VARY_BYTES = 16


@dataclass(frozen=True, slots=True)
class Payload:
    """A payload file; ``data_offset`` is where its pixel bytes start."""

    path: Path
    size: int
    sha256: str
    data_offset: int = 0

    def read(self) -> bytes:
        return self.path.read_bytes()


def _tiff_header(width: int, height: int, bits: int, total: int) -> tuple[bytes, int]:
    """The header, first IFD and tag arrays of an RGBA TIFF of *total* bytes, zero-padded up
    to where the pixels start; and that offset."""
    stride = width * 4 * bits // 8
    rows = max(1, STRIP_BYTES // stride)
    strips = -(-height // rows)
    arrays = 8 + 2 + _TAGS * 12 + 4  # header, IFD entry count, entries, next-IFD offset
    bits_at, format_at = arrays, arrays + 8
    offsets_at = format_at + 8
    counts_at = offsets_at + 4 * strips
    data_offset = total - height * stride
    if data_offset < counts_at + 4 * strips:
        raise ValueError(f"{total} bytes leave no room for the header of {width}x{height}")

    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, kind, count, value)

    def short(tag: int, value: int) -> bytes:  # a SHORT is stored left-justified
        return struct.pack("<HHIHH", tag, 3, 1, value, 0)

    ifd = struct.pack("<H", _TAGS) + b"".join(
        [
            entry(256, 4, 1, width),
            entry(257, 4, 1, height),
            entry(258, 3, 4, bits_at),
            short(259, 1),  # no compression
            short(262, 2),  # RGB
            entry(273, 4, strips, offsets_at),
            short(277, 4),
            entry(278, 4, 1, rows),
            entry(279, 4, strips, counts_at),
            short(284, 1),  # chunky: RGBARGBA...
            short(338, 2),  # the fourth sample is unassociated alpha
            entry(339, 3, 4, format_at),
        ]
    )
    offsets = [data_offset + i * rows * stride for i in range(strips)]
    counts = [min(rows, height - i * rows) * stride for i in range(strips)]
    head = b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0)
    head += struct.pack("<4H", *[bits] * 4) + struct.pack("<4H", 1, 1, 1, 1)  # unsigned ints
    head += struct.pack(f"<{strips}I", *offsets) + struct.pack(f"<{strips}I", *counts)
    return head.ljust(data_offset, b"\x00"), data_offset


def tiff_geometry(size: int) -> tuple[int, int, int]:
    """(width, height, bits per sample) of a payload of *size* bytes: as many pixels as fit
    after room for the header and its strip arrays (8 bytes per strip of at least 512 KiB)."""
    bits = 16 if size // 8 <= MAX_PIXELS_16 else 32
    reserve = 1024 + 8 * (size // (STRIP_BYTES // 2) + 2)
    pixels = max(1, (size - reserve) // (bits // 2))
    if pixels > MAX_PIXELS_16:
        raise ValueError(f"a {size}-byte payload would exceed {MAX_PIXELS_16} pixels")
    width = min(8192, max(16, math.isqrt(pixels)))
    return width, max(1, pixels // width), bits


def write_tiff(path: Path, size: int) -> Payload:
    """An uncompressed RGBA TIFF of random pixels, exactly *size* bytes long."""
    width, height, bits = tiff_geometry(size)
    head, data_offset = _tiff_header(width, height, bits, size)
    hasher = hashlib.sha256(head)
    left = width * height * 4 * bits // 8
    with path.open("wb") as out:
        out.write(head)
        while left > 0:
            block = os.urandom(min(WRITE_BLOCK, left))
            hasher.update(block)
            out.write(block)
            left -= len(block)
        # On disk before anything is timed: no write-back of it competes with a figure.
        out.flush()
        os.fsync(out.fileno())
    return Payload(path, path.stat().st_size, hasher.hexdigest(), data_offset)


def vary(payload: Payload, serial: int) -> None:
    """Make the file other bytes (its first pixels) without rewriting it; sha256 goes stale."""
    mark = hashlib.sha256(f"{payload.path}:{serial}".encode()).digest()[:VARY_BYTES]
    fd = os.open(payload.path, os.O_WRONLY)
    try:
        os.pwrite(fd, mark, payload.data_offset)
    finally:
        os.close(fd)


def sha256_of(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(WRITE_BLOCK):
            hasher.update(block)
    return hasher.hexdigest()
