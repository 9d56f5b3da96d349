"""GPS removal by byte surgery: the location goes, every other byte that matters stays."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image as PILImage

from pixdrop.imaging import gps
from tests.imaging.corpus import (
    LATITUDE,
    gps_jpeg,
    gps_png,
    gps_webp,
    photo,
    tiff_exif,
    with_app1,
    with_png_chunk,
)

GPS_IFD = 0x8825


def exif_of(data: bytes) -> PILImage.Exif:
    with PILImage.open(io.BytesIO(data)) as image:
        image.load()
        return image.getexif()


def pixels(data: bytes) -> bytes:
    with PILImage.open(io.BytesIO(data)) as image:
        return image.convert("RGB").tobytes()


@pytest.mark.parametrize(
    ("make", "fmt"),
    [(gps_jpeg, "jpeg"), (gps_png, "png"), (gps_webp, "webp")],
    ids=lambda value: getattr(value, "__name__", str(value)),
)
def test_location_is_removed_and_pixels_kept(make, fmt) -> None:
    data = make()
    assert exif_of(data).get_ifd(GPS_IFD), "guard: the sample has a location"
    stripped = gps.strip(data, fmt)
    assert stripped is not None
    assert not exif_of(stripped).get_ifd(GPS_IFD)
    assert pixels(stripped) == pixels(data)  # no re-encode: identical pixels
    coordinates = b"".join(struct.pack("<II", *r) for r in LATITUDE)
    assert coordinates in data
    assert coordinates not in stripped


def test_jpeg_surgery_keeps_the_length_and_the_orientation() -> None:
    data = gps_jpeg()
    stripped = gps.strip(data, "jpeg")
    assert stripped is not None
    assert len(stripped) == len(data)  # edited in place: no offset anywhere moved
    assert exif_of(stripped).get(0x0112) == 6
    assert sum(a != b for a, b in zip(data, stripped, strict=True)) < 200


def test_tiff_structure_directly() -> None:
    blob = tiff_exif()
    edits = gps.tiff_edits(blob, 0, len(blob))
    assert edits
    out = gps.apply(blob, edits)
    assert len(out) == len(blob)
    count = struct.unpack("<H", out[8:10])[0]
    assert count == 1  # only Orientation is left in IFD0
    assert struct.unpack("<H", out[10:12])[0] == 0x0112


def test_images_without_a_location() -> None:
    plain_jpeg = bytes(photo(32, 24).jpegsave_buffer(keep=0))
    rotated = with_app1(plain_jpeg, b"Exif\x00\x00" + tiff_exif(gps=False))
    assert gps.strip(plain_jpeg, "jpeg") is None
    assert gps.strip(rotated, "jpeg") is None
    assert gps.strip(bytes(photo(32, 24).pngsave_buffer(keep=0)), "png") is None


def test_xmp_with_a_location_is_dropped_from_jpeg_and_png() -> None:
    xmp = b'<x:xmpmeta><rdf:Description exif:GPSLatitude="51,28.6N"/></x:xmpmeta>'
    jpeg = with_app1(bytes(photo(32, 24).jpegsave_buffer(keep=0)), _XMP + xmp)
    stripped = gps.strip(jpeg, "jpeg")
    assert stripped is not None
    assert b"GPSLatitude" not in stripped
    png = with_png_chunk(
        bytes(photo(32, 24).pngsave_buffer(keep=0)),
        b"iTXt",
        b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp,
    )
    stripped = gps.strip(png, "png")
    assert stripped is not None
    assert b"GPSLatitude" not in stripped
    assert pixels(stripped) == pixels(png)


_XMP = b"http://ns.adobe.com/xap/1.0/\x00"


@pytest.mark.parametrize(
    "blob",
    [
        b"II*\x00\xff\xff\xff\x7f",  # IFD0 far past the end
        b"II*\x00\x08\x00\x00\x00\x01\x00\x25\x88\x04\x00\x01\x00\x00\x00\xff\xff\x00\x00",
        b"MM\x00*\x00\x00\x00\x08\xff\xff",  # 65535 entries in 2 bytes
    ],
)
def test_hostile_exif_is_a_layout_error(blob: bytes) -> None:
    with pytest.raises(gps.GpsLayoutError):
        gps.tiff_edits(blob, 0, len(blob))


def test_overlapping_edits_are_refused() -> None:
    with pytest.raises(gps.GpsLayoutError):
        gps.apply(b"0123456789", [(0, 5, b"x"), (3, 6, b"y")])


def test_xmp_location_in_gif_needs_a_re_encode() -> None:
    with pytest.raises(gps.GpsLayoutError):
        gps.find_edits(b"GIF89a" + b"\x00" * 20 + b"exif:GPSLongitude", "gif")
