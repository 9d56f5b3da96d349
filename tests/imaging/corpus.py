"""A corpus of good and hostile images, made on the spot with libvips (no binary fixtures).

Each ``Sample`` says what the server must answer for it: ``201`` with some facts about the
stored image, or a problem with its status and fields. The HTTP tests send every sample
through both upload paths; the unit tests use the builders directly.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pyvips

DATA = Path(__file__).parents[1] / "data"

#: Where the sample photo was taken (Greenwich, 51°28'40"N 0°0'5"W), and how to turn it upright.
LATITUDE = ((51, 1), (28, 1), (40, 1))
LONGITUDE = ((0, 1), (0, 1), (5, 1))
ROTATE_90 = 6


@dataclass(frozen=True)
class Sample:
    """Bytes to upload and the documented answer."""

    name: str
    data: bytes
    status: int
    #: For 201: fields of the image object; otherwise: fields of the problem body.
    fields: dict[str, Any] = field(default_factory=dict)
    filename: str | None = None
    content_type: str = "application/octet-stream"


def srgb(image: Any) -> Any:
    return image.cast("uchar").copy(interpretation="srgb")


def photo(width: int, height: int, seed: int = 0) -> Any:
    """A photo-like picture: smooth gradients under grain (noise does not compress away)."""
    xy = pyvips.Image.xyz(width, height)
    red = xy[0] * (255 / width)
    green = xy[1] * (255 / height)
    blue = ((xy[0] + xy[1]) * (255 / (width + height)) + seed * 40) % 256
    grain = pyvips.Image.gaussnoise(width, height, sigma=12, mean=0)
    return srgb((red.bandjoin([green, blue]) + grain).maxpair(0).minpair(255))


def tiff_exif(orientation: int | None = ROTATE_90, gps: bool = True) -> bytes:
    """A little-endian TIFF structure (EXIF payload): IFD0 with Orientation and a GPS IFD."""
    entries0 = []
    if orientation is not None:
        entries0.append((0x0112, 3, 1, struct.pack("<HH", orientation, 0)))
    gps_at = 8 + 2 + 12 * (len(entries0) + int(gps)) + 4
    if gps:
        entries0.append((0x8825, 4, 1, struct.pack("<I", gps_at)))
    out = b"II*\x00" + struct.pack("<I", 8) + _ifd(entries0, 0)
    if gps:
        values = gps_at + 2 + 12 * 4 + 4
        rationals = [b"".join(struct.pack("<II", *r) for r in v) for v in (LATITUDE, LONGITUDE)]
        entries = [
            (1, 2, 2, b"N\x00\x00\x00"),
            (2, 5, 3, struct.pack("<I", values)),
            (3, 2, 2, b"W\x00\x00\x00"),
            (4, 5, 3, struct.pack("<I", values + 24)),
        ]
        out += _ifd(entries, 0) + rationals[0] + rationals[1]
    return out


def _ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int) -> bytes:
    body = b"".join(struct.pack("<HHI", t, k, n) + v for t, k, n, v in entries)
    return struct.pack("<H", len(entries)) + body + struct.pack("<I", next_ifd)


def with_app1(jpeg: bytes, payload: bytes) -> bytes:
    """*jpeg* with an APP1 segment holding *payload* right after SOI."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def with_png_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    """*png* with a chunk inserted right after IHDR."""
    return png[:33] + png_chunk(kind, body) + png[33:]


def gps_jpeg(width: int = 96, height: int = 64) -> bytes:
    plain = bytes(photo(width, height).jpegsave_buffer(Q=85, keep=0))
    return with_app1(plain, b"Exif\x00\x00" + tiff_exif())


def gps_png() -> bytes:
    return with_png_chunk(bytes(photo(40, 30).pngsave_buffer(keep=0)), b"eXIf", tiff_exif())


def gps_webp() -> bytes:
    image = photo(40, 30).copy()
    image.set_type(pyvips.GValue.blob_type, "exif-data", b"Exif\x00\x00" + tiff_exif(None))
    return bytes(image.webpsave_buffer(keep=1, lossless=True))


def bomb_png(width: int = 30_000, height: int = 30_000) -> bytes:
    """A 100-byte PNG that claims 900 megapixels: a decompression bomb's header."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(bytes(width + 1) * 4))
        + png_chunk(b"IEND", b"")
    )


def animation(fmt: str, frames: int = 3) -> bytes:
    colours = [[i * 80, 50, 200 - i * 60] for i in range(frames)]
    tiles = [srgb(pyvips.Image.black(64, 48, bands=3).linear(1, c)) for c in colours]
    roll = pyvips.Image.arrayjoin(tiles, across=1).copy()
    roll.set_type(pyvips.GValue.gint_type, "page-height", 48)
    roll.set_type(pyvips.GValue.array_int_type, "delay", [100] * frames)
    return bytes(roll.gifsave_buffer() if fmt == "gif" else roll.webpsave_buffer())


SVG = (
    b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(document.domain)</script></svg>"
)
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>"


@cache
def samples() -> tuple[Sample, ...]:
    jpeg = (DATA / "rocket.jpg").read_bytes()
    png = (DATA / "chelsea.png").read_bytes()
    large = bytes(photo(4000, 3000, seed=1).jpegsave_buffer(Q=90))
    return (
        Sample("bomb", bomb_png(), 422, {"limit": "max_pixels", "value": 900_000_000}),
        Sample("truncated-jpeg", jpeg[: len(jpeg) // 2], 422, {"reason": "corrupt-image"}),
        Sample("truncated-png", png[: len(png) // 2], 422, {"reason": "corrupt-image"}),
        Sample("html-named-jpg", HTML, 422, {"looks_like": "html"}, "photo.jpg", "image/jpeg"),
        Sample("jpeg-plus-html", jpeg + HTML, 422, {"reason": "embedded-markup"}),
        Sample("svg-with-script", SVG, 422, {"looks_like": "svg"}, "logo.svg", "image/svg+xml"),
        Sample("zero-bytes", b"", 422, {"reason": "empty"}),
        Sample("gps-rotated-jpeg", gps_jpeg(), 201, {"orientation": 6, "width": 96}),
        Sample("cmyk-jpeg", bytes(photo(64, 48).colourspace("cmyk").jpegsave_buffer()), 201),
        Sample("png-16-bit", bytes(photo(64, 48).colourspace("rgb16").pngsave_buffer()), 201),
        Sample("animated-gif", animation("gif"), 201, {"frames": 3, "height": 48}),
        Sample("animated-webp", animation("webp"), 201, {"frames": 3, "height": 48}),
        Sample("large-photo", large, 201, {"width": 4000, "height": 3000}),
    )
