"""Payload files: incompressible bytes that the server accepts as an image.

pixdrop decides what an image is from its first bytes only (``imaging/validate.py`` reads the
header, never the pixels), so a real PNG signature and IHDR chunk followed by random bytes is
accepted. The harness checks that by uploading the payload once before timing anything; if the
server ever refuses it, ``write_pillow_png`` makes a real PNG of random pixels instead.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

MiB = 1024 * 1024
WRITE_BLOCK = 8 * MiB
#: The PNG signature (8 bytes) and the IHDR chunk (length 4, type 4, data 13, CRC 4).
PNG_HEADER_SIZE = 33
SAMPLE_PNG = Path(__file__).resolve().parents[1] / "tests" / "data" / "chelsea.png"


@dataclass(frozen=True, slots=True)
class Payload:
    """A payload file and the facts the scenarios check the server's answers against."""

    path: Path
    size: int
    sha256: str

    def read(self) -> bytes:
        return self.path.read_bytes()


def png_header(sample: Path = SAMPLE_PNG) -> bytes:
    """The signature and IHDR chunk of a real PNG (33 bytes)."""
    header = sample.read_bytes()[:PNG_HEADER_SIZE]
    if not header.startswith(b"\x89PNG\r\n\x1a\n") or header[12:16] != b"IHDR":
        raise ValueError(f"{sample} does not start with a PNG signature and IHDR chunk")
    return header


def write_random(path: Path, size: int, header: bytes) -> Payload:
    """*header* then random bytes, *size* bytes in all, written in 8 MiB blocks."""
    if size < len(header):
        raise ValueError(f"a payload needs at least {len(header)} bytes")
    hasher = hashlib.sha256(header)
    with path.open("wb") as out:
        out.write(header)
        left = size - len(header)
        while left > 0:
            block = os.urandom(min(WRITE_BLOCK, left))
            hasher.update(block)
            out.write(block)
            left -= len(block)
        # On disk before anything is timed: no write-back of it competes with a figure.
        out.flush()
        os.fsync(out.fileno())
    return Payload(path, size, hasher.hexdigest())


def write_pillow_png(path: Path, size: int) -> Payload:
    """A real, uncompressed PNG of random pixels, close to *size* bytes (the fallback)."""
    from PIL import Image

    width = 4096
    height = max(1, -(-size // (width * 3)))
    image = Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=0)
    data = buffer.getvalue()
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    return Payload(path, len(data), hashlib.sha256(data).hexdigest())
