"""What local staging costs in CPU for 512 MiB, and whether completion is left a known sha256.

    python -m bench.staging_cpu                  # 5 rounds
    PYTHONPATH=<tree>/src python -m bench.staging_cpu --rounds 3   # another revision

In-process, under uvloop, on a real ``LocalStaging`` in a temporary directory with syncing
off (the disk's fsync is not what is measured), three ways of writing the same 512 MiB:

* ``appends``: 64 parts of 8 MiB at growing offsets, number 0 (a tus PATCH recorded every
  8 MiB);
* ``chunks in order``: 64 chunks of 8 MiB, numbered, one after the other;
* ``chunks, 4 in flight``: the same chunks in the order four parallel senders deliver them
  (each group of four reversed: a chunk past a gap before the one that closes it).

For each: the process's CPU seconds (all threads) to write the parts, and then to learn the
upload's sha256 as completion does: from the running hash (``known_sha256``) or, where it is
not known, by reading the file back and hashing it. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import uvloop

from pixdrop.models import Part, new_id
from pixdrop.storage import files
from pixdrop.storage.layout import Layout
from pixdrop.storage.staging import LocalStaging

MiB = 1024 * 1024
PART = 8 * MiB
PARTS = 64


async def _body(block: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield block


def _order(way: str) -> list[int]:
    if way != "chunks, 4 in flight":
        return list(range(PARTS))
    return [i for group in range(0, PARTS, 4) for i in reversed(range(group, group + 4))]


async def _one(folder: Path, way: str, block: bytes) -> tuple[float, bool]:
    staging = LocalStaging(Layout(folder, sync=False))
    upload = new_id()
    await staging.begin(upload)
    started = time.process_time()
    parts: list[Part] = []
    for index in _order(way):
        number = 0 if way == "appends" else index + 1
        data = _body(block, PART // MiB)
        part = await staging.put_part(upload, "", number=number, offset=index * PART, data=data)
        parts.append(part)
    known = staging.known_sha256(upload, parts)
    if known is None:
        files.digest(folder / "staging" / upload, PARTS * PART)
    seconds = time.process_time() - started
    await staging.abort(upload, "")
    return seconds, known is not None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.staging_cpu", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    block = os.urandom(MiB)
    ways = ("appends", "chunks in order", "chunks, 4 in flight")
    figures: dict[str, list[float]] = {way: [] for way in ways}
    known: dict[str, bool] = {}
    with tempfile.TemporaryDirectory(prefix="pixdrop-staging-cpu-") as tmp:
        for _ in range(args.rounds):
            for way in ways:
                seconds, known[way] = uvloop.run(_one(Path(tmp), way, block))
                figures[way].append(seconds)
    print(f"512 MiB in 8 MiB parts, {args.rounds} rounds")
    print("| way | CPU s (median, min-max) | sha256 known at completion |")
    print("|---|---:|---|")
    for way in ways:
        runs = figures[way]
        spread = f"{statistics.median(runs):.3f} ({min(runs):.3f}-{max(runs):.3f})"
        print(f"| {way} | {spread} | {'yes' if known[way] else 'no: the file is hashed'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
