"""Per-request cost of the native chunk path: 1 KiB chunk PUTs, as fast as they are answered.

    python -m bench.chunk_rate              # 1 and 16 connections, with and without fsync
    python -m bench.chunk_rate --chunks 3000 --concurrency 1 4 16
    python -m bench.chunk_rate --pixdrop-src /tmp/old/src    # an older pixdrop, for before/after

The client is as thin as Python allows (``http.client``, one keep-alive connection per thread,
the body and its ``Content-Digest`` computed once), so the figure is mostly the server's. Each
configuration gets a fresh server and one upload of ``--chunks`` chunks; the chunks are sent in
order, spread over the connections. Prints requests per second and p50/p99 latency. A quick,
in-session before/after check for changes to that path; the comparison with the peers is
``python -m bench.peers`` (scenario 4). Also prints the server's CPU per request (its process
tree, from ``/proc``), and with ``--profile DIR`` samples the server with py-spy and prints
its hottest functions (``bench/hotspots.py``).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import itertools
import json
import os
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

from bench import hotspots
from bench.peers.procs import TreeSampler
from bench.server import BenchServer

CHUNK = 1024


def run(server_url: str, chunks: int, concurrency: int) -> tuple[float, list[float]]:
    """Send *chunks* 1 KiB chunks over *concurrency* connections; (seconds, latencies)."""
    host, port = server_url.removeprefix("http://").split(":")
    first = http.client.HTTPConnection(host, int(port))
    body = json.dumps({"size": chunks * CHUNK, "chunk_size": CHUNK})
    first.request("POST", "/v1/uploads", body=body, headers={"Content-Type": "application/json"})
    reply = first.getresponse()
    upload_id = json.loads(reply.read())["id"]
    data = os.urandom(CHUNK)
    digest = f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"
    numbers = itertools.count()
    latencies: list[float] = []
    failures: list[str] = []

    def send() -> None:
        connection = http.client.HTTPConnection(host, int(port))
        while (index := next(numbers)) < chunks:
            started = time.perf_counter()
            connection.request(
                "PUT",
                f"/v1/uploads/{upload_id}/chunks/{index}",
                body=data,
                headers={"Content-Digest": digest},
            )
            response = connection.getresponse()
            text = response.read()
            if response.status != 201:
                failures.append(f"chunk {index}: {response.status} {text[:200]!r}")
                return
            latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=send) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError("; ".join(failures[:3]))
    return elapsed, sorted(latencies)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chunks", type=int, default=1500, help="chunks per run (default 1500)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--pixdrop-src", type=Path, help="run the server from this src directory")
    parser.add_argument("--profile", type=Path, help="py-spy each run into this directory")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    env = {"PYTHONPATH": str(args.pixdrop_src.resolve())} if args.pixdrop_src else None
    with tempfile.TemporaryDirectory(prefix="pixdrop-chunk-rate-") as work:
        for flags in ([], ["--no-fsync"]):
            for concurrency in args.concurrency:
                key = f"c{concurrency}{'-nofsync' if flags else ''}"
                server = BenchServer(
                    Path(work) / key,
                    Path(work) / f"{key}.log",
                    extra_args=["--min-chunk-size", "1KiB", *flags],
                    env=env,
                )
                server.start()
                raw = args.profile / f"{key}.txt" if args.profile else None
                spy = hotspots.record(server.pid, raw, gil=True) if raw else nullcontext()
                try:
                    with spy, TreeSampler(server.pid) as sampler:
                        seconds, lat = run(server.url, args.chunks, concurrency)
                finally:
                    server.stop()
                p50, p99 = lat[len(lat) // 2] * 1e3, lat[int(len(lat) * 0.99)] * 1e3
                cpu = sampler.usage.cpu_seconds if sampler.usage else float("nan")
                print(
                    f"{' '.join(flags) or 'fsync':10} connections {concurrency:3}: "
                    f"{args.chunks / seconds:7.0f} requests/s, p50 {p50:.2f} ms, p99 {p99:.2f} ms,"
                    f" server CPU {cpu / args.chunks * 1e3:.2f} ms/request"
                )
                if raw:
                    print(hotspots.render(hotspots.hotspots(raw, top=12), key))


if __name__ == "__main__":
    main()
