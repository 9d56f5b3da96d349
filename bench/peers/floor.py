"""The floor of a scenario: the same work without a server, measured by the harness itself.

An upload service that keeps what it acknowledges has to write every byte it receives and
make it durable, and pixdrop also decodes every image once to check it. The floor is exactly
that, done as plainly as Python allows in the harness process, on the same bytes the
contenders get in the same round and at the same concurrency:

* ``big`` (scenarios 1 and 2): the payload written to a new file in 1 MiB writes and fsynced
  (as the *disk* limit), then decoded once with pyvips from memory.
* ``photos`` (scenario 3): per photo, a new file with its bytes, fsynced, then the photo
  decoded once; *concurrency* photos at a time (threads), as the clients send them.
* ``chunks`` (scenario 4): per file a new file, and per chunk of *chunk_size* bytes one
  ``write`` and one ``fsync``; *concurrency* files at a time. No decode.

A decode is ``pyvips.Image.new_from_buffer(data, "", access="sequential").avg()``: the
average reads every pixel, and sequential access streams the pixels through in strips. A JPEG
is decoded at 1/8 scale (``shrink=8``): the decoder still reads and checks every entropy-coded
coefficient, which is where corruption shows, and skips most of the inverse DCT; it is the
cheapest complete check, 2-3 times cheaper than a full-resolution decode of a 100 KiB photo
(and what pixdrop's own check does for a photo). The operation cache is off, so a decode is
never answered from an earlier one. No directory is fsynced and no hash is computed.

The files are read into memory before the clock starts and deleted after it stops; the
harness runs ``sync`` after the floor as after any contender. Besides the wall-clock time the
result carries the floor's own CPU seconds (``getrusage`` of the harness process, which does
nothing else meanwhile) and how the time of each operation split between writing (with
fsync) and decoding, summed over the operations.
"""

from __future__ import annotations

import resource
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import baselines

BLOCK = baselines.BLOCK
_cache_off = False


def _pyvips() -> Any:
    global _cache_off
    import pyvips  # type: ignore[import-untyped]

    if not _cache_off:
        pyvips.cache_set_max(0)
        _cache_off = True
    return pyvips


def write_fsync(data: bytes | memoryview, path: Path, block: int = BLOCK) -> None:
    """*data* into a new file at *path* in writes of *block* bytes, then one fsync."""
    baselines.disk(data, path, block)


def append_fsync(data: bytes, path: Path, chunk: int) -> None:
    """*data* into a new file at *path*, one ``write`` and one ``fsync`` per *chunk* bytes."""
    baselines.disk(data, path, chunk, fsync_each=True)


def decode(data: bytes) -> float:
    """Decode the image in *data* (every pixel; a JPEG at 1/8 scale); its mean."""
    pyvips = _pyvips()
    options: dict[str, Any] = {"access": "sequential"}
    if data[:3] == b"\xff\xd8\xff":  # a JPEG
        options["shrink"] = 8  # every coefficient is still read: a complete check, cheaper
    image = pyvips.Image.new_from_buffer(data, "", **options)
    return float(image.avg())


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(job: dict[str, Any], files: list[Path], scratch: Path) -> dict[str, Any]:
    """One run of the floor described by *job* on *files*; figures like a client's."""
    kind = job["kind"]
    concurrency = max(1, int(job.get("concurrency") or 1))
    chunk = int(job.get("chunk_size") or 0)
    datas = [path.read_bytes() for path in files]
    if kind == "chunks" and chunk <= 0:
        raise ValueError("the chunks floor needs a chunk_size")
    _pyvips()  # imported and set up before the clock starts
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    latencies = [0.0] * len(datas)
    parts = [[0.0, 0.0] for _ in datas]  # per operation: writing (with fsync), decoding

    def one(index: int) -> None:
        began = time.perf_counter()
        target = scratch / f"{index:05d}.bin"
        if kind == "chunks":
            append_fsync(datas[index], target, chunk)
        else:
            write_fsync(datas[index], target)
        written = ended = time.perf_counter()
        if kind != "chunks":
            decode(datas[index])
            ended = time.perf_counter()
        parts[index] = [written - began, ended - written]
        latencies[index] = ended - began

    cpu = _cpu()
    started = time.perf_counter()
    _run_all(one, len(datas), concurrency)
    seconds = time.perf_counter() - started
    cpu = _cpu() - cpu
    shutil.rmtree(scratch, ignore_errors=True)
    sizes = [len(data) for data in datas]
    requests = sum(max(1, -(-size // chunk)) for size in sizes) if kind == "chunks" else len(datas)
    return {
        "seconds": seconds,
        "bytes": sum(sizes),
        "requests": requests,
        "files": len(datas),
        "latencies": latencies,
        "write_seconds": sum(p[0] for p in parts),
        "decode_seconds": sum(p[1] for p in parts),
        "floor_cpu": cpu,
    }


def _run_all(one: Callable[[int], None], count: int, concurrency: int) -> None:
    """``one(i)`` for every i < *count*, *concurrency* at a time, in order of i."""
    if concurrency <= 1 or count <= 1:
        for index in range(count):
            one(index)
        return
    next_index = [0]
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
            if index >= count:
                return
            one(index)

    with ThreadPoolExecutor(min(concurrency, count)) as pool:
        for future in [pool.submit(worker) for _ in range(min(concurrency, count))]:
            future.result()
