"""The cost of resolving an API key (``KeyResolver.resolve``: parse, one primary-key read, a
constant-time compare), on the path of every request that carries a key.

    PYTHONPATH=src python bench/key_lookup.py [postgresql://USER@HOST/DB]

SQLite always (a temporary file); PostgreSQL too when a URL is given (its database must
exist). Prints the median over 5 runs of 2,000 resolutions: wall time and CPU time.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time

import anyio

from pixdrop.auth.keys import KeyResolver, issue_key
from pixdrop.metadata import open_metadata_store

RUNS, PER_RUN, WARM_UP = 5, 2000, 200


async def measure(url: str) -> tuple[float, float]:
    """Median (wall, cpu) microseconds per resolution against the store at *url*."""
    meta = open_metadata_store(url)
    try:
        secret = (await issue_key(meta, name="bench", scopes=["upload"])).secret
        resolver = KeyResolver(meta)
        for _ in range(WARM_UP):
            await resolver.resolve(secret)
        wall, cpu = [], []
        for _ in range(RUNS):
            started, used = time.perf_counter(), time.process_time()
            for _ in range(PER_RUN):
                assert await resolver.resolve(secret) is not None
            wall.append((time.perf_counter() - started) / PER_RUN * 1e6)
            cpu.append((time.process_time() - used) / PER_RUN * 1e6)
        return statistics.median(wall), statistics.median(cpu)
    finally:
        await meta.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        urls = [f"sqlite:///{scratch}/bench.db", *sys.argv[1:]]
        for url in urls:
            wall, cpu = anyio.run(measure, url)
            print(f"{url.split(':')[0]:12} {wall:8.0f} us wall  {cpu:8.0f} us cpu  per key")


if __name__ == "__main__":
    main()
