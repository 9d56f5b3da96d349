"""A large file is scanned for markup on a thread while the same worker decodes it
(``jobs.OVERLAP_BYTES``): the answers and the order of refusals must be those of doing one
after the other, and the scan must really run beside the decode. Files of ``LARGE_BYTES`` or
more are checked one at a time."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
import pyvips

from pixdrop.errors import UnprocessableImage
from pixdrop.imaging import codec as codec_module
from pixdrop.imaging import jobs, vips
from pixdrop.imaging.codec import VipsCodec
from pixdrop.models import ImageDetails, ImageLimits

LIMITS = ImageLimits(max_width=32768, max_height=32768, max_pixels=100_000_000, max_frames=1000)


def big_tiff(path: Path, tail: bytes = b"") -> Path:
    """An uncompressed RGBA TIFF just over OVERLAP_BYTES, with *tail* appended after its data."""
    width = 2048
    height = jobs.OVERLAP_BYTES // (width * 4) + 16
    image = pyvips.Image.black(width, height, bands=4).copy(interpretation="srgb") + 90
    image.cast("uchar").tiffsave(str(path), compression="none")
    return _append(path, tail)


def damaged_tiff(path: Path, tail: bytes = b"") -> Path:
    """A deflate-compressed TIFF of noise over OVERLAP_BYTES whose middle is overwritten:
    its header reads, its pixels do not decode."""
    noise = [pyvips.Image.gaussnoise(2048, 1200, sigma=100).cast("uchar") for _ in range(4)]
    image = noise[0].bandjoin(noise[1:]).copy(interpretation="srgb")
    image.tiffsave(str(path), compression="deflate")
    with path.open("r+b") as file:
        file.seek(path.stat().st_size // 2)
        file.write(bytes(range(256)) * 16)
    return _append(path, tail)


def _append(path: Path, tail: bytes) -> Path:
    with path.open("ab") as out:
        out.write(tail)
    assert path.stat().st_size >= jobs.OVERLAP_BYTES
    return path


def by_worker(path: Path, limits: ImageLimits = LIMITS) -> ImageDetails:
    """The answer of a real decode worker, which overlaps the scan for this file."""

    async def main() -> ImageDetails:
        codec = await VipsCodec.start(workers=1, decode_timeout=60)
        try:
            return await codec.inspect(path, "tiff", limits)
        finally:
            await codec.close()

    return anyio.run(main)


def one_after_the_other(
    path: Path, monkeypatch: pytest.MonkeyPatch, limits: ImageLimits = LIMITS
) -> ImageDetails:
    """The job in this process with the overlap turned off: the reference answer."""
    vips.setup()
    with monkeypatch.context() as patch:
        patch.setattr(jobs, "OVERLAP_BYTES", 1 << 62)
        assert not jobs._overlaps(path)
        return jobs.inspect(path, "tiff", limits)


def refusal(path: Path, monkeypatch: pytest.MonkeyPatch, limits: ImageLimits = LIMITS) -> Any:
    """The reason the worker refuses *path* for, once checked that doing one after the other
    refuses it with the same fields."""
    with pytest.raises(UnprocessableImage) as overlapped:
        by_worker(path, limits)
    with pytest.raises(jobs.Refusal) as alone:
        one_after_the_other(path, monkeypatch, limits)
    assert overlapped.value.extra == alone.value.fields
    return overlapped.value.extra["reason"]


def test_the_scan_runs_beside_the_decode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = big_tiff(tmp_path / "big.tif")
    assert jobs._overlaps(path)
    seen: list[str] = []
    scan = jobs.scan_markup

    def watched(source: Path | bytes, fmt: str) -> bool:
        seen.append(threading.current_thread().name)
        return scan(source, fmt)

    monkeypatch.setattr(jobs, "scan_markup", watched)
    vips.setup()
    jobs.inspect(path, "tiff", LIMITS)
    assert len(seen) == 1
    assert seen[0].startswith("pixdrop-scan")


def test_a_small_file_is_read_once_a_large_one_streamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under OVERLAP_BYTES every step works on the file's bytes, read once; over it, on the
    path (the file streams through libvips and the scan's window)."""
    small = tmp_path / "small.tif"
    pyvips.Image.black(64, 48, bands=3).copy(interpretation="srgb").tiffsave(str(small))
    large = big_tiff(tmp_path / "big.tif")
    given: list[type] = []
    header = vips.header

    def watched(source: Path | bytes, fmt: str) -> vips.Header:
        given.append(type(source))
        return header(source, fmt)

    monkeypatch.setattr(vips, "header", watched)
    vips.setup()
    assert jobs.inspect(small, "tiff", LIMITS) == jobs.inspect(small.read_bytes(), "tiff", LIMITS)
    jobs.inspect(large, "tiff", LIMITS)
    assert given[0] is bytes
    assert issubclass(given[-1], Path)


def test_overlapped_and_sequential_describe_a_large_image_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = big_tiff(tmp_path / "big.tif")
    overlapped = by_worker(path)
    assert overlapped == one_after_the_other(path, monkeypatch)
    assert not overlapped.has_gps


def test_markup_anywhere_in_a_large_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = big_tiff(tmp_path / "big.tif", tail=b"<script>alert(1)</script>")
    assert refusal(path, monkeypatch) == "embedded-markup"


def test_markup_comes_before_a_failed_decode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = damaged_tiff(tmp_path / "big.tif", tail=b"<script>")
    assert refusal(path, monkeypatch) == "embedded-markup"
    # Without the markup, the same file is refused for its truncated pixels.
    clean = damaged_tiff(tmp_path / "clean.tif")
    assert refusal(clean, monkeypatch) == "corrupt-image"


def test_header_limits_come_before_markup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = big_tiff(tmp_path / "big.tif", tail=b"<script>")
    small = ImageLimits(max_width=100, max_height=32768, max_pixels=100_000_000, max_frames=1)
    assert refusal(path, monkeypatch, small) == "limit-exceeded"


def test_xmp_gps_found_by_the_scan_marks_the_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = big_tiff(tmp_path / "big.tif", tail=b"<exif:GPSLatitude>1,2N</exif:GPSLatitude>")
    overlapped = by_worker(path)
    assert overlapped.has_gps
    assert overlapped == one_after_the_other(path, monkeypatch)


def test_large_files_are_checked_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers, two large files: one decodes while the other waits (codec.LARGE_BYTES);
    two smaller files take both workers at once."""
    small = [big_tiff(tmp_path / f"small-{n}.tif") for n in range(2)]
    large = [big_tiff(tmp_path / f"large-{n}.tif", tail=b"\0" * 4096) for n in range(2)]
    monkeypatch.setattr(codec_module, "LARGE_BYTES", large[0].stat().st_size)

    async def most_at_once(paths: list[Path]) -> int:
        codec = await VipsCodec.start(workers=2, decode_timeout=60)
        running, most = 0, 0
        run = codec.pool.run

        async def counted(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            nonlocal running, most
            running += 1
            most = max(most, running)
            try:
                await anyio.sleep(0.05)  # both are in flight before either ends
                return await run(*args, **kwargs)
            finally:
                running -= 1

        codec.pool.run = counted  # type: ignore[method-assign]
        try:
            async with anyio.create_task_group() as tasks:
                for path in paths:
                    tasks.start_soon(codec.inspect, path, "tiff", LIMITS)
        finally:
            await codec.close()
        return most

    assert anyio.run(most_at_once, large) == 1
    assert anyio.run(most_at_once, small) == 2
