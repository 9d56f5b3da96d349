"""Which S3 client for the S3 blob store: measured, not guessed.

Uploads the same 256 MiB as one multipart upload of 8 MiB parts, 4 parts in flight, to a
throwaway SeaweedFS (started here, as the tests do) with:

* ``aiobotocore``: the async botocore client, on the event loop (aiohttp);
* ``boto3-threads``: boto3's client, each ``upload_part`` on a worker thread
  (``anyio.to_thread``), a ``CapacityLimiter`` of 4;
* ``obstore``: checked for an API with explicit parts (CreateMultipartUpload, UploadPart by
  number, Complete with our own ETags) — it has none (``obstore.put`` cuts and completes the
  upload itself, so an upload cannot be continued by another process or node from recorded
  receipts); measured anyway with ``put(..., chunk_size=8 MiB, max_concurrency=4)``, as a
  ceiling of what a Rust client would give.

Three rounds, the clients interleaved within each round; for each: MB/s (wall clock) and the
process's CPU seconds (user + system, all threads: what the upload costs the service), and
the ratio of both to ``boto3-threads`` in the same round. The resident memory after import and
client creation is measured in a fresh interpreter per client.

Run: ``PYTHONPATH=src python -m bench.s3_clients [--size-mib 256] [--rounds 3]``; aiobotocore
and obstore are not pixdrop dependencies (``pip install aiobotocore obstore`` first; a client
that is not installed is left out).
(or against an existing store with ``--endpoint http://...`` and a bucket that exists).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
PART = 8 * MiB
IN_FLIGHT = 4
BUCKET = "bench-s3-clients"
REGION = "us-east-1"

RSS_PROBES = {
    "aiobotocore": """
import asyncio, aiobotocore.session
async def main():
    session = aiobotocore.session.get_session()
    async with session.create_client("s3", region_name="us-east-1", endpoint_url=EP) as c:
        report()
asyncio.run(main())
""",
    "boto3-threads": """
import boto3
c = boto3.client("s3", region_name="us-east-1", endpoint_url=EP)
report()
""",
    "obstore": """
from obstore.store import S3Store
s = S3Store("bucket", endpoint=EP, region="us-east-1", client_options={"allow_http": True})
report()
""",
}

RSS_PRELUDE = """
import os
EP = os.environ["BENCH_ENDPOINT"]
def report():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            print(int(line.split()[1]) // 1024)
"""


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def baseline_rss(endpoint: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", RSS_PRELUDE + "report()"],
        env={**os.environ, "BENCH_ENDPOINT": endpoint},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


def rss_after_import(name: str, endpoint: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", RSS_PRELUDE + RSS_PROBES[name]],
        env={**os.environ, "BENCH_ENDPOINT": endpoint},
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip())


class Aiobotocore:
    name = "aiobotocore"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._context: Any = None
        self.client: Any = None

    async def open(self) -> None:
        import aiobotocore.session
        from aiobotocore.config import AioConfig

        session = aiobotocore.session.get_session()
        config = AioConfig(request_checksum_calculation="when_required", max_pool_connections=16)
        self._context = session.create_client(
            "s3", region_name=REGION, endpoint_url=self.endpoint, config=config
        )
        self.client = await self._context.__aenter__()

    async def close(self) -> None:
        await self._context.__aexit__(None, None, None)

    async def upload(self, key: str, parts: list[bytes]) -> None:
        client = self.client
        created = await client.create_multipart_upload(Bucket=BUCKET, Key=key)
        upload_id = created["UploadId"]
        etags: dict[int, str] = {}
        limiter = anyio.Semaphore(IN_FLIGHT)

        async def put(number: int, body: bytes) -> None:
            async with limiter:
                answer = await client.upload_part(
                    Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                )
                etags[number] = answer["ETag"]

        async with anyio.create_task_group() as group:
            for number, body in enumerate(parts, 1):
                group.start_soon(put, number, body)
        await client.complete_multipart_upload(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
        )
        await client.delete_object(Bucket=BUCKET, Key=key)


class Boto3Threads:
    name = "boto3-threads"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.client: Any = None

    async def open(self) -> None:
        import boto3
        from botocore.config import Config

        config = Config(request_checksum_calculation="when_required", max_pool_connections=16)
        self.client = boto3.client(
            "s3", region_name=REGION, endpoint_url=self.endpoint, config=config
        )

    async def close(self) -> None:
        self.client.close()

    async def upload(self, key: str, parts: list[bytes]) -> None:
        client = self.client
        run = anyio.to_thread.run_sync
        created = await run(lambda: client.create_multipart_upload(Bucket=BUCKET, Key=key))
        upload_id = created["UploadId"]
        etags: dict[int, str] = {}
        limiter = anyio.CapacityLimiter(IN_FLIGHT)

        async def put(number: int, body: bytes) -> None:
            answer = await run(
                lambda: client.upload_part(
                    Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body
                ),
                limiter=limiter,
            )
            etags[number] = answer["ETag"]

        async with anyio.create_task_group() as group:
            for number, body in enumerate(parts, 1):
                group.start_soon(put, number, body)
        parts_list = [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]
        await run(
            lambda: client.complete_multipart_upload(
                Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts_list}
            )
        )
        await run(lambda: client.delete_object(Bucket=BUCKET, Key=key))


class Obstore:
    name = "obstore"

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.store: Any = None

    async def open(self) -> None:
        from obstore.store import S3Store

        self.store = S3Store(
            BUCKET,
            endpoint=self.endpoint,
            region=REGION,
            access_key_id=os.environ["AWS_ACCESS_KEY_ID"],
            secret_access_key=os.environ["AWS_SECRET_ACCESS_KEY"],
            client_options={"allow_http": True},
        )

    async def close(self) -> None:
        pass

    async def upload(self, key: str, parts: list[bytes]) -> None:
        import obstore

        async def body() -> Any:
            for part in parts:
                yield part

        await obstore.put_async(self.store, key, body(), chunk_size=PART, max_concurrency=IN_FLIGHT)
        await obstore.delete_async(self.store, key)


async def measure(client: Any, parts: list[bytes], size: int) -> tuple[float, float]:
    start_cpu, start = cpu_seconds(), time.perf_counter()
    await client.upload(f"bench/{client.name}", parts)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - start_cpu
    return size / MiB / wall, cpu


async def run_rounds(endpoint: str, size: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    parts = [os.urandom(PART) for _ in range(size // PART)]
    clients = [
        client(endpoint)
        for client, module in [
            (Aiobotocore, "aiobotocore"),
            (Boto3Threads, "boto3"),
            (Obstore, "obstore"),
        ]
        if importlib.util.find_spec(module) is not None
    ]
    for client in clients:
        await client.open()
        await client.upload("bench/warm-up", parts[:IN_FLIGHT])  # connections, imports
    results: dict[str, list[tuple[float, float]]] = {client.name: [] for client in clients}
    try:
        for round_no in range(rounds):
            order = clients[round_no % len(clients) :] + clients[: round_no % len(clients)]
            for client in order:
                mbps, cpu = await measure(client, parts, size)
                results[client.name].append((mbps, cpu))
                print(f"round {round_no + 1} {client.name:14} {mbps:8.1f} MB/s {cpu:6.2f} s CPU")
    finally:
        for client in clients:
            await client.close()
    return results


def report(results: dict[str, list[tuple[float, float]]], rss: dict[str, int], base: int) -> None:
    reference = results["boto3-threads"]
    print()
    print(f"{'client':14} {'MB/s (median)':>14} {'CPU s (median)':>15} {'speed ÷ boto3':>14}"
          f" {'CPU ÷ boto3':>12} {'RSS MiB':>8}")  # fmt: skip
    for name, rows in results.items():
        speed = sorted(row[0] for row in rows)[len(rows) // 2]
        cpu = sorted(row[1] for row in rows)[len(rows) // 2]
        speed_ratio = sorted(r[0] / b[0] for r, b in zip(rows, reference, strict=True))
        cpu_ratio = sorted(r[1] / b[1] for r, b in zip(rows, reference, strict=True))
        print(
            f"{name:14} {speed:14.1f} {cpu:15.2f} {speed_ratio[len(rows) // 2]:14.2f}"
            f" {cpu_ratio[len(rows) // 2]:12.2f} {rss[name]:8d}"
        )
    print(f"(RSS of a bare interpreter: {base} MiB; ratios: median of per-round ratios)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--endpoint", help="an S3 endpoint with bucket " + BUCKET)
    args = parser.parse_args()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench-secret")
    os.environ.setdefault("AWS_REGION", REGION)
    server = None
    endpoint = args.endpoint
    if endpoint is None:
        from tests.seaweed import Seaweed

        server = Seaweed.start(BUCKET)
        endpoint = server.endpoint
    try:
        base = baseline_rss(endpoint)
        rss = {
            name: rss_after_import(name, endpoint)
            for name in RSS_PROBES
            if importlib.util.find_spec(name.removesuffix("-threads")) is not None
        }
        body: Callable[[], Awaitable[Any]] = lambda: run_rounds(  # noqa: E731
            endpoint, args.size_mib * MiB, args.rounds
        )
        results = asyncio.run(body())
        report(results, rss, base)
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main()
