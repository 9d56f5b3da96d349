"""ThumbHash placeholder time per call: ``imaging.placeholder.thumbhash`` against its definition.

    python -m bench.thumbhash                 # 9 rounds of 200 calls per case
    python -m bench.thumbhash --rounds 15 --calls 500

The previews are the decoder worker's, built as it builds them (``vips.decode_and_preview``,
at most 32 px a side) from the photos in ``tests/data``: ``chelsea.png`` (32 x 21), the same
with an alpha band made from its green band (32 x 21, with alpha), ``rocket.jpg`` (27 x 18: a
JPEG's preview samples its 1/8-scale decode); then 100 x 100 centre crops, the largest input
the function takes, and a single-colour 32 x 21 image, whose terms are exactly 0 where the
definition's bytes rest on rounding noise: it goes to the definition at once.

The reference is the implementation before the fast path, kept in
``tests/imaging/test_placeholder_reference.py``; without the tests' dependencies the ratio
column is left out. Each round times *calls* calls (fewer for larger images, in proportion to
their pixels) of one, then of the other (which goes first alternates), in this process, after a
warm-up; the figures are per call, median and min-max
over the rounds, and the ratio is the median of the rounds' ratios. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

DATA = Path(__file__).parents[1] / "tests" / "data"

Hash = Callable[[int, int, bytes], bytes]


def previews() -> list[tuple[str, int, int, bytes]]:
    import pyvips

    from pixdrop.imaging import jobs, vips

    rocket = (DATA / "rocket.jpg").read_bytes()
    chelsea = (DATA / "chelsea.png").read_bytes()
    image = pyvips.Image.new_from_buffer(chelsea, "")
    mask = image[1].linear(2.0, -80.0).maxpair(0).minpair(255).cast("uchar")
    cat = bytes(image.extract_band(0, n=3).bandjoin(mask).pngsave_buffer())
    out = []
    for name, data, fmt in (
        ("chelsea.png, opaque", chelsea, "png"),
        ("chelsea.png + alpha", cat, "png"),
        ("rocket.jpg (JPEG path)", rocket, "jpeg"),
    ):
        preview = vips.decode_and_preview(data, fmt, vips.header(data, fmt), jobs.PREVIEW_SIZE)
        out.append((name, preview.width, preview.height, preview.rgba))
    for name, data in (("rocket.jpg crop, opaque", rocket), ("chelsea.png crop + alpha", cat)):
        crop = pyvips.Image.thumbnail_buffer(data, 100, height=100, crop="centre")
        if not crop.hasalpha():
            crop = crop.bandjoin(255)
        out.append((name, crop.width, crop.height, bytes(crop.write_to_memory())))
    out.append(("one colour", 32, 21, bytes((200, 120, 40, 255)) * (32 * 21)))
    return out


def per_call(function: Hash, width: int, height: int, rgba: bytes, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        function(width, height, rgba)
    return (time.perf_counter() - started) / calls


def path_taken(width: int, height: int, rgba: bytes) -> str:
    from pixdrop.imaging import placeholder

    if rgba == rgba[:4] * (width * height):
        return "definition"
    has_alpha = rgba[3::4] != b"\xff" * (width * height)
    fields = placeholder._fast_fields(width, height, rgba, has_alpha)
    left = [name for name, got in zip("LPQA", fields, strict=False) if got is None]
    return "fast" if not left else "fast, definition for " + "".join(left)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.thumbhash", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args(argv)

    from pixdrop.imaging.placeholder import thumbhash

    reference: Hash | None
    try:
        from tests.imaging.test_placeholder_reference import reference_thumbhash
    except ImportError as exc:  # the tests' dependencies are not installed
        print(f"no reference ({exc}): times of the new function only", file=sys.stderr)
        reference = None
    else:
        reference = reference_thumbhash

    print(
        f"Python {sys.version.split()[0]}; {args.rounds} rounds of {args.calls} calls "
        "(for 32 x 21; fewer for larger); ms per call, median (min-max)"
    )
    print()
    print("| preview | size | path | new ms | reference ms | reference / new |")
    print("|---|---|---|---:|---:|---:|")
    for name, width, height, rgba in previews():
        if reference is not None:
            assert thumbhash(width, height, rgba) == reference(width, height, rgba), name
        calls = max(5, args.calls * 32 * 21 // (width * height))
        new: list[float] = []
        old: list[float] = []
        per_call(thumbhash, width, height, rgba, calls // 10 + 1)  # warm-up
        for index in range(args.rounds):
            order = [(thumbhash, new), (reference, old)]
            for function, times in order if index % 2 == 0 else order[::-1]:
                if function is not None:
                    times.append(per_call(function, width, height, rgba, calls))
        cells = [f"{name}", f"{width} x {height}", path_taken(width, height, rgba), _ms(new)]
        if old:
            ratios = [o / n for o, n in zip(old, new, strict=True)]
            cells += [_ms(old), f"{statistics.median(ratios):.2f}x"]
        else:
            cells += ["-", "-"]
        print("| " + " | ".join(cells) + " |")


def _ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1e3:.3f} ({min(times) * 1e3:.3f}-{max(times) * 1e3:.3f})"


if __name__ == "__main__":
    main()
