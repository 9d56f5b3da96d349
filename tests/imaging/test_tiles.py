"""The decoders lower libvips' tile height (``imaging/tiles.py``), so that decoding a wide
image holds fewer of its rows: the peak memory of a real inspect job in a fresh process,
with and without the setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyvips

from pixdrop.imaging import tiles

MiB = 1024 * 1024

#: Runs one inspect job as a decoder does (``jobs.setup_worker`` first) and prints how far
#: the process's peak resident memory rose during it, in bytes.
JOB = """
import sys
from pathlib import Path
from pixdrop.imaging import jobs, tiles
from pixdrop.models import ImageLimits

if sys.argv[2] == "libvips-default":
    tiles.set_tile_height = lambda rows=tiles.TILE_HEIGHT: False

def peak():
    with open("/proc/self/status") as status:
        line = next(l for l in status if l.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024

jobs.setup_worker()
before = peak()
limits = ImageLimits(max_width=32768, max_height=32768, max_pixels=10**9, max_frames=1)
details = jobs.inspect(Path(sys.argv[1]), "tiff", limits)
assert (details.width, details.height) == (8191, 1000), details
print(peak() - before)
"""


def wide_tiff(path: Path) -> Path:
    """8,191 pixels wide, four 16-bit samples: rows of 64 KiB, 62 MiB uncompressed."""
    image = pyvips.Image.black(8191, 1000, bands=4).copy(interpretation="rgb16") + 1000
    image.cast("ushort").tiffsave(str(path), compression="none")
    return path


def peak_growth(path: Path, mode: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", JOB, str(path), mode],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.split()[-1])


def test_the_bundled_libvips_takes_the_tile_height() -> None:
    assert tiles.set_tile_height() is True


def test_a_wide_image_decodes_in_less_memory(tmp_path: Path) -> None:
    path = wide_tiff(tmp_path / "wide.tif")
    default = [peak_growth(path, "libvips-default") for _ in range(2)]
    lowered = [peak_growth(path, "lowered") for _ in range(2)]
    # libvips' line cache alone: 512 rows of 64 KiB at its default, 128 rows at 32.
    assert max(lowered) < min(default) - 12 * MiB, (default, lowered)
