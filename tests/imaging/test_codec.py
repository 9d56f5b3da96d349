"""The codec and its worker pool: refusals, deadlines, crashes, blocked loaders, placeholders."""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
import pyvips

from pixdrop.errors import UnprocessableImage
from pixdrop.imaging import jobs, placeholder, vips
from pixdrop.imaging.codec import VipsCodec
from pixdrop.imaging.pool import JobTimeout, WorkerCrashed, WorkerPool
from pixdrop.models import Fit, ImageLimits, VariantSpec
from tests.imaging.corpus import SVG, animation, bomb_png, gps_jpeg, photo, tiff_exif, with_app1

T = TypeVar("T")
LIMITS = ImageLimits(max_width=32768, max_height=32768, max_pixels=100_000_000, max_frames=1000)


def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    return anyio.run(function, *args)


async def with_codec(body: Callable[[VipsCodec], Awaitable[T]], timeout: float = 30) -> T:
    codec = await VipsCodec.start(workers=1, decode_timeout=timeout)
    try:
        return await body(codec)
    finally:
        await codec.close()


def test_inspect_describes_the_image(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(gps_jpeg(96, 64))

    async def body(codec: VipsCodec) -> Any:
        return await codec.inspect(path, "jpeg", LIMITS)

    details = run(with_codec, body)
    assert (details.width, details.height, details.frames) == (96, 64, 1)
    assert details.orientation == 6
    assert details.has_gps
    assert not details.has_alpha
    assert details.placeholder is not None
    assert len(base64.b64decode(details.placeholder)) >= 5


def test_limits_from_the_header_name_the_limit() -> None:
    small = ImageLimits(max_width=100, max_height=100, max_pixels=10_000, max_frames=2)

    async def body(codec: VipsCodec) -> list[dict[str, Any]]:
        found = []
        for data, fmt in ((bomb_png(300, 20), "png"), (animation("gif", 3), "gif")):
            with pytest.raises(UnprocessableImage) as caught:
                await codec.inspect(data, fmt, small)
            found.append(caught.value.extra)
        return found

    wide, frames = run(with_codec, body)
    assert wide == {"reason": "limit-exceeded", "limit": "max_width", "value": 300, "allowed": 100}
    assert frames["limit"] == "max_frames"
    assert frames["value"] == 3


def test_render_is_upright_and_within_its_box() -> None:
    spec = VariantSpec(64, 64, Fit.CONTAIN, "webp", 80)

    async def body(codec: VipsCodec) -> bytes:
        return await codec.render(gps_jpeg(96, 64), "jpeg", spec)

    out = run(with_codec, body)
    header = vips.header(out, "webp")
    assert (header.width, header.height) == (43, 64)  # 96x64 turned upright, then shrunk
    assert not header.has_exif_gps


def test_a_job_over_its_deadline_is_killed_and_the_pool_recovers() -> None:
    async def body() -> tuple[type[BaseException], Any]:
        pool = WorkerPool(1, timeout=30)
        try:
            await pool.run("capabilities")  # a warm worker
            (worker,) = pool._all
            big = bytes(photo(3000, 3000).pngsave_buffer(compression=1))
            with pytest.raises(JobTimeout) as caught:
                await pool.run("inspect", big, "png", LIMITS, deadline=0.001)
            assert worker.process.wait(5) is not None
            reply = await pool.run("capabilities")
            return caught.type, reply[0]
        finally:
            await pool.close()

    assert run(body) == (JobTimeout, "ok")


def big_png_file(folder: Path) -> Path:
    path = folder / "big.png"
    path.write_bytes(bytes(photo(3000, 3000).pngsave_buffer(compression=1)))
    return path


def test_a_job_answered_on_the_loop_keeps_its_deadline(tmp_path: Path) -> None:
    # An inspect job of a file goes out and comes back on the event loop (no thread): its
    # deadline still kills the worker, and the next job gets a fresh one.
    path = big_png_file(tmp_path)

    async def body() -> tuple[type[BaseException], Any, str]:
        pool = WorkerPool(1, timeout=30)
        try:
            await pool.run("capabilities")
            (worker,) = pool._all
            with pytest.raises(JobTimeout) as caught:
                await pool.run("inspect", path, "png", LIMITS, deadline=0.001)
            assert worker.process.wait(5) is not None
            reply = await pool.run("inspect", path, "png", LIMITS)
            return caught.type, reply[0], reply[1].width
        finally:
            await pool.close()

    assert run(body) == (JobTimeout, "ok", 3000)


def test_a_worker_that_dies_during_a_job_on_the_loop_is_reported(tmp_path: Path) -> None:
    path = big_png_file(tmp_path)

    async def body() -> str:
        pool = WorkerPool(1, timeout=30)
        try:
            await pool.run("capabilities")
            (worker,) = pool._all

            async def kill_soon() -> None:
                await anyio.sleep(0.01)  # the job is under way
                os.kill(worker.process.pid, signal.SIGKILL)

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(kill_soon)
                with pytest.raises(WorkerCrashed):
                    await pool.run("inspect", path, "png", LIMITS)
            return str((await pool.run("inspect", path, "png", LIMITS))[0])
        finally:
            await pool.close()

    assert run(body) == "ok"


def test_a_cancelled_job_on_the_loop_stops_its_worker(tmp_path: Path) -> None:
    # Its reply would otherwise be read as the next job's answer.
    path, small = big_png_file(tmp_path), tmp_path / "small.png"
    small.write_bytes(bytes(photo(40, 30).pngsave_buffer()))

    async def body() -> tuple[bool, int]:
        pool = WorkerPool(1, timeout=30)
        try:
            await pool.run("capabilities")
            (worker,) = pool._all
            with anyio.move_on_after(0.01):
                await pool.run("inspect", path, "png", LIMITS)
            stopped = worker.process.wait(5) is not None
            reply = await pool.run("inspect", small, "png", LIMITS)
            return stopped, reply[1].width
        finally:
            await pool.close()

    assert run(body) == (True, 40)


def test_a_worker_serves_the_loop_and_a_thread_in_turn_under_uvloop(tmp_path: Path) -> None:
    # uvloop makes a socket it watches non-blocking; the thread that waits for the next job's
    # reply (a variant's bytes) reads the same socket and needs it blocking again.
    path = big_png_file(tmp_path)
    spec = VariantSpec(3000, None, Fit.CONTAIN, "png", 80)  # megabytes of reply

    async def body() -> tuple[str, bool, str, str]:
        pool = WorkerPool(1, timeout=30)
        try:
            inspected = await pool.run("inspect", path, "png", LIMITS)  # on the loop
            (worker,) = pool._all
            blocking = os.get_blocking(worker.conn.fileno())
            rendered = await pool.run("render", path, "png", spec)  # on a thread
            again = await pool.run("inspect", path, "png", LIMITS)
            return inspected[0], blocking, rendered[0], again[0]
        finally:
            await pool.close()

    assert anyio.run(body, backend_options={"use_uvloop": True}) == ("ok", True, "ok", "ok")


def test_a_crashed_worker_is_reported_and_replaced() -> None:
    async def body() -> str:
        pool = WorkerPool(1, timeout=30)
        try:
            await pool.run("capabilities")
            (worker,) = pool._all
            os.kill(worker.process.pid, signal.SIGKILL)
            worker.process.wait(5)
            with pytest.raises(WorkerCrashed):
                await pool.run("capabilities")
            return str((await pool.run("capabilities"))[0])
        finally:
            await pool.close()

    assert run(body) == "ok"


def test_the_codec_turns_a_deadline_into_a_refusal() -> None:
    big = bytes(photo(3000, 3000).pngsave_buffer(compression=1))

    async def body(codec: VipsCodec) -> dict[str, Any]:
        with pytest.raises(UnprocessableImage) as caught:
            await codec.inspect(big, "png", LIMITS)
        return caught.value.extra

    extra = run(with_codec, body, 0.001)
    assert extra == {"reason": "decode-timeout", "limit": "decode_timeout", "allowed": 0.001}


@pytest.mark.parametrize(
    "data",
    [SVG, b"a,b\n1,2\n", b"P6\n1 1\n255\n\x00\x00\x00", b"%PDF-1.4\n"],
    ids=["svg", "csv", "ppm", "pdf"],
)
def test_only_the_accepted_loaders_run(data: bytes) -> None:
    """After setup, libvips cannot be talked into any other loader, whatever the bytes."""
    import pyvips

    vips.setup()
    with pytest.raises(pyvips.Error):
        pyvips.Image.new_from_buffer(data, "").avg()


def test_markup_is_found_anywhere_in_the_file() -> None:
    jpeg = bytes(photo(32, 24).jpegsave_buffer())
    with pytest.raises(jobs.Refusal) as caught:
        jobs.inspect(jpeg + b"<SCRIPT >alert(1)</SCRIPT>", "jpeg", LIMITS)
    assert caught.value.fields["reason"] == "embedded-markup"
    assert caught.value.fields["offset"] == len(jpeg)


def test_placeholder_shape() -> None:
    opaque = placeholder.thumbhash(4, 2, bytes([200, 10, 10, 255]) * 8)
    assert len(opaque) >= 5
    assert not opaque[2] & 0x80  # no alpha flag
    clear = placeholder.thumbhash(4, 2, bytes([200, 10, 10, 255, 0, 0, 0, 0]) * 4)
    assert clear[2] & 0x80
    assert clear[4] & 0x80  # wider than high: landscape bit
    with pytest.raises(ValueError, match="100x100"):
        placeholder.thumbhash(101, 1, bytes(404))


def quadrants(image: vips.Preview) -> list[tuple[float, float, float]]:
    """Mean RGB of the preview's four quadrants (top left, top right, bottom left, right)."""
    out = []
    half_w, half_h = image.width // 2, image.height // 2
    for top in (0, image.height - half_h):
        for left in (0, image.width - half_w):
            pixels = [
                image.rgba[4 * (y * image.width + x) : 4 * (y * image.width + x) + 3]
                for y in range(top, top + half_h)
                for x in range(left, left + half_w)
            ]
            out.append(tuple(sum(p[k] for p in pixels) / len(pixels) for k in range(3)))
    return out


def four_colours(width: int, height: int) -> bytes:
    """A JPEG with red, green, blue and white quadrants, and some grain."""
    colours = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (240, 240, 240)]
    tiles = [pyvips.Image.black(width // 2, height // 2, bands=3) + list(c) for c in colours]
    image = (
        tiles[0]
        .join(tiles[1], "horizontal")
        .join(tiles[2].join(tiles[3], "horizontal"), "vertical")
    )
    grain = pyvips.Image.gaussnoise(image.width, image.height, sigma=6)
    image = (image + grain).maxpair(0).minpair(255).cast("uchar").copy(interpretation="srgb")
    return bytes(image.jpegsave_buffer(Q=90, keep=0))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_jpeg_preview_is_upright_and_matches_the_general_pipeline(
    orientation: int, tmp_path: Path
) -> None:
    """The JPEG path samples its preview in Python; it must show what libvips' resampling of
    the same image shows, turned the same way."""
    data = with_app1(four_colours(1200, 800), b"Exif\x00\x00" + tiff_exif(orientation, False))
    path = tmp_path / "q.jpg"
    path.write_bytes(data)
    header = vips.header(path, "jpeg")
    assert header.orientation == orientation
    sampled = vips.decode_and_preview(path, "jpeg", header, jobs.PREVIEW_SIZE)
    general = pyvips.Image.new_from_file(str(path)).thumbnail_image(32, height=32)
    reference = vips.Preview(
        general.width, general.height, bytes(general.bandjoin(255).write_to_memory())
    )
    assert (sampled.width > sampled.height) == (general.width > general.height)
    assert 24 <= max(sampled.width, sampled.height) <= jobs.PREVIEW_SIZE
    for got, want in zip(quadrants(sampled), quadrants(reference), strict=True):
        assert all(abs(g - w) < 12 for g, w in zip(got, want, strict=True)), (got, want)


def test_a_truncated_jpeg_is_refused_on_the_sampled_path() -> None:
    data = four_colours(1200, 800)
    with pytest.raises(jobs.Refusal) as caught:
        jobs.inspect(data[: len(data) * 6 // 10], "jpeg", LIMITS)
    assert caught.value.fields["reason"] == "corrupt-image"


@pytest.mark.parametrize("space", ["b-w", "cmyk"])
def test_grey_and_cmyk_jpegs_take_the_general_path(space: str) -> None:
    image = photo(300, 200).colourspace(space)
    details = jobs.inspect(bytes(image.jpegsave_buffer(Q=90)), "jpeg", LIMITS)
    assert details.placeholder is not None
    assert (details.width, details.height) == (300, 200)


def test_an_idle_worker_exits_and_the_next_job_starts_one() -> None:
    async def body() -> tuple[bool, int, str, int]:
        pool = WorkerPool(2, timeout=30, idle_timeout=0.3)
        try:
            await pool.run("capabilities")
            (worker,) = pool._all
            await anyio.sleep(1.5)
            worker.process.wait(5)
            gone = worker.process.poll() is not None
            emptied = pool.running
            reply = await pool.run("capabilities")  # a fresh worker, started on demand
            return gone, emptied, reply[0], pool.running
        finally:
            await pool.close()

    assert run(body) == (True, 0, "ok", 1)


def test_prepare_starts_one_worker_that_the_next_job_uses() -> None:
    async def body() -> tuple[int, int, str, int]:
        pool = WorkerPool(2, timeout=30)
        try:
            pool.prepare()
            pool.prepare()  # one on its way is enough
            reply = await pool.run("capabilities")  # waits for it rather than a second
            after_job = pool.running
            pool.prepare()  # one is idle: nothing to do
            await anyio.sleep(0.5)
            return after_job, pool.running, reply[0], len(pool._idle)
        finally:
            await pool.close()

    assert run(body) == (1, 1, "ok", 1)
