"""Drive pixdrop's own client (``pixdrop.client``) for the benchmark; print one JSON line.

    python -m bench.peers.pixdrop_client JOB.json

JOB is the same as for the tus drivers, with ``endpoint`` the server's base URL:
``files``, ``chunk_size`` (null: one ``POST /v1/images`` per file, whatever its size, else
chunked uploads with chunks of that size), ``parallel`` (chunks of one file in flight) and
``concurrency`` (files at once). Everything the client does is timed, as ``pixdrop upload``
does it: hashing the file first (the server checks the sha256), then sending it. One file at
a time uses ``Client`` (threads, as the CLI does); several use ``AsyncClient`` with that many
uploads in flight. Resume records are off (``resume=False``). Once timed, every image is
deleted with its delete token, so the next figure starts from the same state; with ``keep``
(as the harness asks, to take the server's CPU before the deletes) the images stay and are
listed in ``images`` as [id, delete token], as the tus drivers list theirs. Prints
{"seconds", "latencies", "requests", "bytes", "ids", "images"}.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pixdrop.client import AsyncClient, Client, Image

#: Per network operation; completing a 1 GiB upload waits for the image check.
TIMEOUT = 1800.0
ONE_REQUEST = 1 << 40


def _options(job: dict[str, Any], state: str, connections: int) -> dict[str, Any]:
    return {
        "timeout": TIMEOUT,
        "resume": False,
        "state_dir": state,
        "max_connections": connections,
        "single_request_limit": ONE_REQUEST if job.get("chunk_size") is None else None,
    }


def _sync(job: dict[str, Any], state: str) -> tuple[float, list[float], list[Image]]:
    files, parallel = job["files"], int(job.get("parallel") or 1)
    latencies, images = [], []
    with Client(job["endpoint"], **_options(job, state, max(parallel, 1))) as client:
        started = time.perf_counter()
        for path in files:
            began = time.perf_counter()
            images.append(client.upload(path, chunk_size=job.get("chunk_size"), parallel=parallel))
            latencies.append(time.perf_counter() - began)
        seconds = time.perf_counter() - started
        if not job.get("keep"):
            for image in images:
                client.delete(image.id, image.delete_token or "")
    return seconds, latencies, images


async def _async(job: dict[str, Any], state: str) -> tuple[float, list[float], list[Image]]:
    files, parallel = job["files"], int(job.get("parallel") or 1)
    concurrency = int(job["concurrency"])
    latencies = [0.0] * len(files)
    images: list[Image | None] = [None] * len(files)
    connections = concurrency * parallel
    async with AsyncClient(job["endpoint"], **_options(job, state, connections)) as client:
        next_index = 0

        async def worker() -> None:
            nonlocal next_index
            while next_index < len(files):
                index = next_index
                next_index += 1
                began = time.perf_counter()
                images[index] = await client.upload(
                    files[index], chunk_size=job.get("chunk_size"), parallel=parallel
                )
                latencies[index] = time.perf_counter() - began

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, len(files)))))
        seconds = time.perf_counter() - started
        done = [image for image in images if image is not None]
        if not job.get("keep"):
            for image in done:
                await client.delete(image.id, image.delete_token or "")
    return seconds, latencies, done


def main() -> None:
    job: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text())
    with tempfile.TemporaryDirectory(prefix="pixdrop-bench-client-") as state:
        if int(job.get("concurrency") or 1) <= 1:
            seconds, latencies, images = _sync(job, state)
        else:
            seconds, latencies, images = asyncio.run(_async(job, state))
    sizes = [os.path.getsize(path) for path in job["files"]]
    chunk = job.get("chunk_size")
    for image, size in zip(images, sizes, strict=True):
        if image.size != size:
            raise SystemExit(f"the server stored {image.size} bytes of a {size}-byte file")
    result = {
        "seconds": seconds,
        "latencies": latencies,
        "requests": sum(max(1, -(-size // chunk)) if chunk else 1 for size in sizes),
        "bytes": sum(sizes),
        "ids": [image.id for image in images],
        "images": [[image.id, image.delete_token] for image in images] if job.get("keep") else [],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # one line for the harness, not a traceback
        print(f"pixdrop client: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
