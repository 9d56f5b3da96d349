"""The data every contender gets: made at run time from the photos in ``tests/data``.

* **Photos** (scenario 3): about 100 KiB JPEGs, each a different crop of a 3x upscale of
  ``rocket.jpg`` or ``chelsea.png`` at a quality from 80 to 95, so every file is distinct and
  photo-like (sizes 50-135 KiB, mean about 97 KiB). Deterministic (seeded), made once and kept
  in the cache directory (2,000 take about 15 s).
* **Small photos** (scenario 4): the same recipe at about 32 KiB.
* **24 MP photo** (scenario 6): ``rocket.jpg`` upscaled to 6000 x 4000 with a little grain
  (an upscale alone would be unnaturally smooth), JPEG quality 90.
* **Big payloads** (scenarios 1, 2, 5): ``bench.payload.write_tiff``, in the run's temporary
  directory.

Before each round the harness copies a set with a JPEG comment segment naming the round
(``variant``), so no server ever sees the same bytes twice: pixdrop stores identical bytes
once, and a repeat would take its cheaper path.
"""

from __future__ import annotations

import hashlib
import math
import os
import random
import struct
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = (REPO / "tests" / "data" / "rocket.jpg", REPO / "tests" / "data" / "chelsea.png")
RECIPE = "v1"
UPSCALE = 3.0


def _bytes_per_pixel(base: object, quality: int) -> float:
    data = base.jpegsave_buffer(Q=quality, keep=0)  # type: ignore[attr-defined]
    return len(data) / (base.width * base.height)  # type: ignore[attr-defined]


def photos(cache: Path, count: int, target: int, seed: int = 1) -> list[Path]:
    """*count* distinct JPEGs of about *target* bytes, made once into the cache."""
    import pyvips

    folder = cache / "data" / f"photos-{RECIPE}-{target}-{count}-{seed}"
    stamp = folder / ".complete"
    names = [folder / f"{index:04d}.jpg" for index in range(count)]
    if stamp.exists():
        return names
    folder.mkdir(parents=True, exist_ok=True)
    bases = [
        pyvips.Image.new_from_file(str(path)).resize(UPSCALE, kernel="lanczos3").copy_memory()
        for path in SOURCES
    ]
    rates = {
        (k, q): _bytes_per_pixel(base, q) for k, base in enumerate(bases) for q in range(80, 96)
    }
    rng = random.Random(seed)
    seen: set[str] = set()
    for path in names:
        while True:
            k = rng.randrange(len(bases))
            base, quality = bases[k], rng.randint(80, 95)
            area = target / rates[k, quality]
            aspect = rng.uniform(0.75, 1.5)
            width = max(16, min(base.width, int(math.sqrt(area * aspect))))
            height = max(16, min(base.height, int(area / width)))
            x = rng.randrange(base.width - width + 1)
            y = rng.randrange(base.height - height + 1)
            data = bytes(base.crop(x, y, width, height).jpegsave_buffer(Q=quality, keep=0))
            digest = hashlib.sha256(data).hexdigest()
            if digest not in seen:
                seen.add(digest)
                break
        path.write_bytes(data)
    stamp.write_text("")
    return names


def photo_24mp(cache: Path) -> Path:
    """A 6000 x 4000 JPEG (24 MP), made once into the cache."""
    import pyvips

    path = cache / "data" / f"photo-24mp-{RECIPE}.jpg"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    source = pyvips.Image.new_from_file(str(SOURCES[0]))
    big = source.resize(6000 / source.width, vscale=4000 / source.height, kernel="lanczos3")
    grain = pyvips.Image.gaussnoise(big.width, big.height, sigma=6)
    big = (big + grain).maxpair(0).minpair(255).cast("uchar").copy(interpretation="srgb")
    temporary = path.with_suffix(".tmp")
    big.jpegsave(str(temporary), Q=90, keep=0)
    temporary.rename(path)
    return path


def comment_segment(text: str) -> bytes:
    """A JPEG COM segment carrying *text*."""
    data = text.encode()
    return b"\xff\xfe" + struct.pack(">H", len(data) + 2) + data


def variant(files: list[Path], folder: Path, tag: str) -> list[Path]:
    """Copies of the JPEGs *files* in *folder*, each with a comment naming *tag*."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for path in files:
        data = path.read_bytes()
        if not data.startswith(b"\xff\xd8"):
            raise ValueError(f"{path} is not a JPEG")
        target = folder / path.name
        target.write_bytes(data[:2] + comment_segment(f"pixdrop-bench {tag}") + data[2:])
        out.append(target)
    # On disk before anything is timed: no write-back of them competes with a figure.
    os.sync()
    return out
