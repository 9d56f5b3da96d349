"""The markup scan of image ingest: found anywhere, whatever the case, across its windows."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pixdrop.imaging import jobs, markup

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


#: Markup, near misses and GPS names, planted at random places by the comparison below.
PIECES = [
    b"<script>",
    b"<ScRiPt/",
    b"<scripts>",  # no: a different tag
    b"<svg ",  # no: an svg without xmlns
    b'<svg a="1" xmlns="x">',
    b"<svg" + b" " * 250 + b"xmlns",  # no: xmlns too far
    b"<meta  http-equiv>",
    b"<META" + b"\t" * 600 + b"http-equiv>",  # no: too many blanks
    b"javascript:",
    b"JAVASCRIPT:",
    b"javascrip:",  # no
    b"javajavascript:",
    b"<iframe\n",
    b"<body<body>",
    b"<<object ",
    b"GPSLatitude",
    b"GPSDestLongitude",
    b"gpslatitude",  # no: XMP names are case-sensitive
]


@pytest.mark.skipif(markup.ENGINE != "hyperscan", reason="hyperscan is not installed here")
def test_hyperscan_finds_what_re_finds() -> None:
    """The fast path (hyperscan, confirmed by re) and the definition (re alone) agree on the
    first markup's offset and bytes, and, where there is none, on XMP GPS names."""
    rng = random.Random(18)
    for case in range(600):
        size = rng.choice([0, 1, 40, 700, 5000, 70_000])
        data = bytearray(rng.randbytes(size))
        if case % 3 == 0:  # also windows full of "<" and ":" (as real files are not)
            data = bytearray(rng.choice(b"<:sSjJ \t>") for _ in range(size))
        for _ in range(rng.randrange(4)):
            piece = rng.choice(PIECES)
            at = rng.randrange(max(1, size - len(piece) + 1))
            data[at : at + len(piece)] = piece
        window = bytes(data)
        fast, fast_gps = markup.search(window, True)
        slow, slow_gps = markup.search_re(window, True)
        assert fast == slow, (case, fast, slow)
        if slow is None:
            assert fast_gps == slow_gps, case
        view = memoryview(bytearray(window))  # as _scan passes its buffer
        assert markup.search(view, False) == (slow, False), case
