"""The markup scan of image ingest: found anywhere, whatever the case, across its windows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pixdrop.imaging import jobs

WINDOW = jobs._SCAN_WINDOW


@pytest.mark.parametrize(
    ("offset", "markup"),
    [
        (0, b"<script>"),
        (WINDOW - 3, b"<ScRiPt src=x>"),  # straddles the first window's end
        (WINDOW - jobs._SCAN_OVERLAP - 2, b"<IFRAME "),
        (2 * WINDOW - 100, b'<svg width="1" xmlns="http://www.w3.org/2000/svg">'),
        (WINDOW + 17, b"JavaScript:alert(1)"),
        (3 * WINDOW - 5, b"<meta   http-equiv content=0>"),
    ],
)
def test_markup_is_found_at_its_offset(tmp_path: Path, offset: int, markup: bytes) -> None:
    data = bytearray(os.urandom(3 * WINDOW + 1000).replace(b"<", b"(").replace(b"j", b"J"))
    data[offset : offset + len(markup)] = markup
    path = tmp_path / "image.bin"
    path.write_bytes(bytes(data))
    found = jobs._scan(path).markup
    assert found is not None
    assert found[0] == offset
    assert found == jobs._scan(bytes(data)).markup


def test_clean_bytes_have_no_markup(tmp_path: Path) -> None:
    data = os.urandom(WINDOW + 5).replace(b"<", b"(").replace(b"j", b"J")
    path = tmp_path / "image.bin"
    path.write_bytes(data)
    assert jobs._scan(path).markup is None
    assert jobs._scan(b"").markup is None


def test_the_same_pass_finds_xmp_gps_anywhere(tmp_path: Path) -> None:
    data = bytearray(os.urandom(2 * WINDOW + 500).replace(b"<", b"(").replace(b"j", b"J"))
    path = tmp_path / "image.bin"
    path.write_bytes(bytes(data))
    assert jobs._scan(path).xmp_gps is False
    at = WINDOW - 4  # the name straddles the first window's end
    data[at : at + 11] = b"GPSLatitude"
    path.write_bytes(bytes(data))
    assert jobs._scan(path) == jobs._Scan(None, True)
    assert jobs._scan(bytes(data)).xmp_gps is True
