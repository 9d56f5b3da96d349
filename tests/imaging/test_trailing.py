"""Bytes after the end of an image are refused (issue 16): ``imaging.ends`` finds where each
format's structure ends, and the completion pipeline refuses more than ``TRAILING_SLACK``
bytes after it with ``422 trailing-data`` (docs/images.md, "Trailing data")."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pixdrop.imaging.ends import end_in, end_of
from pixdrop.services.completion import TRAILING_SLACK
from tests.conftest import LiveServer
from tests.http.helpers import assert_problem
from tests.imaging.corpus import animation, photo, tiff_exif, with_app1
from tests.tus.wire import create as tus_create
from tests.tus.wire import location_path, patch

#: Hostile filler: random bytes with JPEG markers, PNG chunk types and GIF trailers in it.
JUNK = random.Random(16).randbytes(300_000) + b"\xff\xd9IEND\x3b" * 100


def jpeg() -> bytes:
    return bytes(photo(64, 48).jpegsave_buffer())


def jpeg_with_thumbnail() -> bytes:
    """A JPEG whose APP1 segment holds a whole JPEG (a thumbnail, with its own EOI)."""
    thumbnail = bytes(photo(16, 12, seed=1).jpegsave_buffer())
    return with_app1(jpeg(), b"Exif\x00\x00" + thumbnail)


def jpeg_with_mpf() -> bytes:
    """A JPEG with an MPF segment, followed by a second image (as an Ultra HDR gain map)."""
    mpf = b"\xff\xe2" + struct.pack(">H", 2 + 4 + 8) + b"MPF\x00" + b"II*\x00\x08\x00\x00\x00"
    first = jpeg()
    return first[:2] + mpf + first[2:] + bytes(photo(32, 24, seed=2).jpegsave_buffer())


def progressive_jpeg() -> bytes:
    return bytes(photo(64, 48).jpegsave_buffer(interlace=True, restart_interval=2))


def png() -> bytes:
    return bytes(photo(64, 48).pngsave_buffer())


def webp() -> bytes:
    return bytes(photo(63, 47).webpsave_buffer())


def avif() -> bytes:
    return bytes(photo(64, 48).heifsave_buffer(compression="av1"))


BUILDERS: dict[str, tuple[str, Callable[[], bytes]]] = {
    "jpeg": ("jpeg", jpeg),
    "jpeg-with-thumbnail": ("jpeg", jpeg_with_thumbnail),
    "jpeg-with-mpf": ("jpeg", jpeg_with_mpf),
    "jpeg-progressive": ("jpeg", progressive_jpeg),
    "png": ("png", png),
    "gif-animated": ("gif", lambda: animation("gif")),
    "webp": ("webp", webp),
    "webp-animated": ("webp", lambda: animation("webp")),
    "avif": ("avif", avif),
}


def measure(tmp_path: Path, fmt: str, data: bytes) -> int | None:
    """Where the image ends, read from a file; the same answer from the bytes in memory."""
    path = tmp_path / "image"
    path.write_bytes(data)
    found = end_of(path, fmt, len(data))
    assert end_in(data, fmt) == found
    return found


@pytest.mark.parametrize("name", BUILDERS)
def test_the_end_of_an_image_is_its_last_byte(tmp_path: Path, name: str) -> None:
    fmt, build = BUILDERS[name]
    data = build()
    assert measure(tmp_path, fmt, data) == len(data)


@pytest.mark.parametrize("name", BUILDERS)
def test_bytes_after_the_image_are_not_part_of_it(tmp_path: Path, name: str) -> None:
    fmt, build = BUILDERS[name]
    data = build()
    assert measure(tmp_path, fmt, data + JUNK) == len(data)


@pytest.mark.parametrize("name", BUILDERS)
def test_damaged_structures_still_answer_an_end_within_the_file(tmp_path: Path, name: str) -> None:
    """Cut short, or with bytes overwritten anywhere, a file gets an end in ``[0, size]``:
    never an exception (which would be a 500) and never a loop without end."""
    fmt, build = BUILDERS[name]
    data = build()
    rnd = random.Random(name)
    for _ in range(60):
        damaged = bytearray(data[: rnd.randrange(1, len(data) + 1)])
        for _ in range(rnd.randrange(4)):
            at = rnd.randrange(len(damaged))
            damaged[at : at + 4] = rnd.choice([b"\xff\xff\xff\xff", b"\x00" * 4, rnd.randbytes(4)])
        end = measure(tmp_path, fmt, bytes(damaged))
        assert end is not None
        assert 0 <= end <= len(damaged), (end, len(damaged))


def test_a_truncated_image_ends_with_the_file(tmp_path: Path) -> None:
    data = png()[:-30]  # no IEND: the decoder's to refuse
    assert measure(tmp_path, "png", data) == len(data)


def test_tiff_has_no_determined_end(tmp_path: Path) -> None:
    assert measure(tmp_path, "tiff", tiff_exif() + JUNK) is None


# --- over HTTP -------------------------------------------------------------------------------


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_a_png_followed_by_megabytes_is_refused(client: httpx.Client) -> None:
    image = png()
    response = client.post("/v1/images", content=image + JUNK * 4)

    body = assert_problem(response, 422, "trailing-data")

    assert body["reason"] == "trailing-data"
    assert body["image_size"] == len(image)
    assert body["trailing"] == len(JUNK) * 4
    assert body["allowed"] == TRAILING_SLACK


def test_a_jpeg_followed_by_bytes_is_refused_on_the_last_tus_patch(client: httpx.Client) -> None:
    data = jpeg_with_thumbnail() + JUNK
    path = location_path(tus_create(client, len(data)))

    assert_problem(patch(client, path, 0, data), 422, "trailing-data")

    assert client.head(path, headers={"Tus-Resumable": "1.0.0"}).status_code == 404  # freed


def test_padding_up_to_the_slack_is_kept_and_one_byte_more_is_not(client: httpx.Client) -> None:
    image = png()
    over = client.post("/v1/images", content=image + b"\x00" * (TRAILING_SLACK + 1))
    assert_problem(over, 422, "trailing-data", trailing=TRAILING_SLACK + 1)

    padded = image + b"\x00" * TRAILING_SLACK
    response = client.post("/v1/images", content=padded)
    assert response.status_code == 201, response.text
    assert response.json()["size"] == len(padded)  # the bytes as sent: sha256 and all
