"""A large file is scanned for markup in one worker while another decodes it (codec.SPLIT_BYTES):
the answers and the order of refusals must be those of the single job."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import pyvips

from pixdrop.errors import UnprocessableImage
from pixdrop.imaging.codec import SPLIT_BYTES, VipsCodec
from pixdrop.models import ImageDetails, ImageLimits

LIMITS = ImageLimits(max_width=32768, max_height=32768, max_pixels=100_000_000, max_frames=1000)


def big_tiff(path: Path, tail: bytes = b"") -> Path:
    """An uncompressed RGBA TIFF just over SPLIT_BYTES, with *tail* appended after its data."""
    width = 2048
    height = SPLIT_BYTES // (width * 4) + 16
    image = pyvips.Image.black(width, height, bands=4).copy(interpretation="srgb") + 90
    image.cast("uchar").tiffsave(str(path), compression="none")
    with path.open("ab") as out:
        out.write(tail)
    assert path.stat().st_size >= SPLIT_BYTES
    return path


def inspect(path: Path, workers: int, limits: ImageLimits = LIMITS) -> ImageDetails:
    async def main() -> ImageDetails:
        codec = await VipsCodec.start(workers=workers, decode_timeout=60)
        try:
            assert codec._split(path) is (workers > 1)  # the path under test is taken
            return await codec.inspect(path, "tiff", limits)
        finally:
            await codec.close()

    return anyio.run(main)


def refusal(path: Path, workers: int, limits: ImageLimits = LIMITS) -> dict[str, Any]:
    with pytest.raises(UnprocessableImage) as caught:
        inspect(path, workers, limits)
    return caught.value.extra


def test_split_and_single_job_describe_a_large_image_alike(tmp_path: Path) -> None:
    path = big_tiff(tmp_path / "big.tif")
    split, single = inspect(path, workers=2), inspect(path, workers=1)
    assert split == single
    assert not split.has_gps


def test_markup_anywhere_in_a_large_file_is_refused(tmp_path: Path) -> None:
    path = big_tiff(tmp_path / "big.tif", tail=b"<script>alert(1)</script>")
    found = refusal(path, workers=2)
    assert found["reason"] == "embedded-markup"
    assert found == refusal(path, workers=1)


def test_header_limits_come_before_markup(tmp_path: Path) -> None:
    path = big_tiff(tmp_path / "big.tif", tail=b"<script>")
    small = ImageLimits(max_width=100, max_height=32768, max_pixels=100_000_000, max_frames=1)
    found = refusal(path, workers=2, limits=small)
    assert found["reason"] == "limit-exceeded"
    assert found == refusal(path, workers=1, limits=small)


def test_xmp_gps_found_by_the_scan_marks_the_image(tmp_path: Path) -> None:
    path = big_tiff(tmp_path / "big.tif", tail=b"<exif:GPSLatitude>1,2N</exif:GPSLatitude>")
    split = inspect(path, workers=2)
    assert split.has_gps
    assert split == inspect(path, workers=1)
