"""Thumbnail latency and memory: pixdrop's libvips path against Pillow, on the same images.

    python -m bench.images                # 5 rounds per image and library
    python -m bench.images --rounds 9 --write    # also write bench/images.md

It makes photo-like test images (gradients under grain, so nothing compresses away) in a
temporary directory, then, for each image and each library, runs a fresh Python process that
makes a 256 px thumbnail *rounds* times and reports every latency and its own peak RSS. A fresh
process per (image, library) keeps one library's caches and heap out of the other's figures.

The work is what a variant request costs: decode (with shrink-on-load where the format has it),
turn upright, shrink into a 256 x 256 box, encode JPEG at quality 82 without metadata.

* pixdrop / libvips: ``pixdrop.imaging.vips.render`` (``thumbnail`` plus ``jpegsave``), the
  function the decode workers run.
* Pillow: ``Image.open``, ``ImageOps.exif_transpose``, ``Image.thumbnail`` (which asks the JPEG
  decoder for DCT scaling with ``draft``, Pillow's fastest path), ``save(quality=82)``.

Latency is the median of the rounds after one untimed warm-up; memory is the child's peak RSS
(``VmHWM``) minus its RSS after imports, i.e. what the thumbnails added. It is a
measurement, not a test: nothing passes or fails. All work stays on this machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BOX = 256
QUALITY = 82
LIBRARIES = ("pyvips", "pillow")


@dataclass(frozen=True)
class Subject:
    name: str
    fmt: str
    width: int
    height: int


SUBJECTS = (
    Subject("photo-12mp.jpg", "jpeg", 4000, 3000),
    Subject("photo-24mp.jpg", "jpeg", 6000, 4000),
    Subject("photo-3mp.png", "png", 2000, 1500),
    Subject("photo-6mp.webp", "webp", 3000, 2000),
)


def make_subject(subject: Subject, folder: Path) -> Path:
    import pyvips

    xy = pyvips.Image.xyz(subject.width, subject.height)
    red = xy[0] * (255 / subject.width)
    green = xy[1] * (255 / subject.height)
    blue = (xy[0] + xy[1]) * (255 / (subject.width + subject.height))
    grain = pyvips.Image.gaussnoise(subject.width, subject.height, sigma=12)
    image = (red.bandjoin([green, blue]) + grain).maxpair(0).minpair(255)
    image = image.cast("uchar").copy(interpretation="srgb")
    path = folder / subject.name
    if subject.fmt == "jpeg":
        image.jpegsave(str(path), Q=90)
    elif subject.fmt == "png":
        image.pngsave(str(path), compression=6)
    else:
        image.webpsave(str(path), Q=85)
    return path


# --- the child: one library, one image ----------------------------------------------------------
def _hwm_kib() -> int:
    """This process's peak RSS (``VmHWM``). Not ``ru_maxrss``: Linux carries that over from
    the parent across fork and exec, so a child of a big process would report the parent's."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def _rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _pyvips_thumbnail() -> Any:
    from pixdrop.imaging import vips
    from pixdrop.models import Fit, VariantSpec

    vips.setup()
    spec = VariantSpec(BOX, BOX, Fit.CONTAIN, "jpeg", QUALITY)
    return lambda path: vips.render(path, spec)


def _pillow_thumbnail() -> Any:
    import io

    from PIL import Image, ImageOps

    def thumbnail(path: Path) -> bytes:
        with Image.open(path) as image:
            upright = ImageOps.exif_transpose(image)
            upright.thumbnail((BOX, BOX))
            out = io.BytesIO()
            upright.convert("RGB").save(out, "JPEG", quality=QUALITY)
            return out.getvalue()

    return thumbnail


def child(library: str, path: Path, rounds: int, cold: bool = False) -> None:
    """Print the latencies and memory of *rounds* thumbnails after a warm-up; with *cold*,
    of the first thumbnail this process makes (no warm-up: codecs load on first use)."""
    make = _pyvips_thumbnail if library == "pyvips" else _pillow_thumbnail
    thumbnail = make()
    idle = _rss_kib()
    if cold:
        started = time.perf_counter()
        size = len(thumbnail(path))
        latencies = [time.perf_counter() - started]
        peak = _hwm_kib()
        report = {"latencies": latencies, "idle_kib": idle, "peak_kib": peak, "bytes": size}
        print(json.dumps(report))
        return
    size = len(thumbnail(path))  # warm-up: libraries load codecs lazily
    latencies = []
    for _ in range(rounds):
        started = time.perf_counter()
        thumbnail(path)
        latencies.append(time.perf_counter() - started)
    peak = _hwm_kib()
    print(json.dumps({"latencies": latencies, "idle_kib": idle, "peak_kib": peak, "bytes": size}))


# --- the parent: run every pair, report -------------------------------------------------------
def measure(library: str, path: Path, rounds: int) -> dict[str, Any]:
    command = [sys.executable, "-m", "bench.images", "--child", library, str(path)]
    command += ["--rounds", str(rounds)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def report(rows: list[tuple[Subject, dict[str, Any], dict[str, Any]]], rounds: int) -> str:
    import PIL
    import pyvips

    lines = [
        f"# Thumbnails: libvips (pixdrop) against Pillow, {BOX} px box, JPEG q{QUALITY}",
        "",
        f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)} (pyvips-binary), "
        f"Pillow {PIL.__version__}; median of {rounds} rounds after a warm-up; memory is the "
        "peak RSS a fresh process gained over its RSS after imports.",
        "",
        "| image | pixels | libvips ms | Pillow ms | Pillow / libvips | libvips MiB | "
        "Pillow MiB | Pillow / libvips |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for subject, vips_run, pil_run in rows:
        v_ms = statistics.median(vips_run["latencies"]) * 1000
        p_ms = statistics.median(pil_run["latencies"]) * 1000
        v_mib = max(1, vips_run["peak_kib"] - vips_run["idle_kib"]) / 1024
        p_mib = max(1, pil_run["peak_kib"] - pil_run["idle_kib"]) / 1024
        megapixels = subject.width * subject.height / 1e6
        lines.append(
            f"| {subject.name} | {megapixels:.0f} MP | {v_ms:.0f} | {p_ms:.0f} | "
            f"{p_ms / v_ms:.1f}x | {v_mib:.0f} | {p_mib:.0f} | {p_mib / v_mib:.1f}x |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.images", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write", action="store_true", help="also write bench/images.md")
    parser.add_argument("--child", nargs=2, metavar=("LIBRARY", "PATH"), help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], Path(args.child[1]), args.rounds, cold=args.cold)
        return
    rows = []
    with tempfile.TemporaryDirectory(prefix="pixdrop-bench-images-") as folder:
        for subject in SUBJECTS:
            path = make_subject(subject, Path(folder))
            print(f"{subject.name}: {path.stat().st_size / 1e6:.1f} MB", file=sys.stderr)
            runs = {library: measure(library, path, args.rounds) for library in LIBRARIES}
            rows.append((subject, runs["pyvips"], runs["pillow"]))
    text = report(rows, args.rounds)
    print(text)
    if args.write:
        (Path(__file__).parent / "images.md").write_text(text)


if __name__ == "__main__":
    main()
