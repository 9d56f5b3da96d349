"""Server CPU per operation, two revisions of pixdrop side by side (issue 18's A/B runs).

    python -m bench.ab HEAD~1 HEAD                       # photos, 6 rounds
    python -m bench.ab b47f443 . --workload chunks       # "." is the working tree
    python -m bench.ab HEAD~1 HEAD --workload tus-patch --rounds 4

Both revisions are served at once (``pixdrop serve`` on 127.0.0.1, each revision's ``src/``
exported with ``git archive`` and put first on ``PYTHONPATH``), and the rounds alternate
which goes first, so both see the same machine. Each round sends, one request at a time:

* ``photos``: 150 distinct JPEGs of about 100 KiB (``POST /v1/images``), new ones every round;
* ``chunks``: 20 JPEGs of about 32 KiB, each as a native upload of 1 KiB chunks (``POST
  /v1/uploads``, a ``PUT`` per chunk, ``POST .../complete``);
* ``tus-patch``: one 512 MiB TIFF of new random pixels in one tus ``PATCH`` (recorded every
  8 MiB; the file is written before the round's clock starts).

The figures are CPU seconds from ``/proc`` (the server process, and its decoder workers
apart), per operation (photo, request, or PATCH), and the wall time; the report gives
medians with their spread and the ratio of the second revision to the first, paired by
round. The machine is shared: read ratios, run it twice. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from bench.payload import write_tiff
from bench.peers import data, envs
from bench.peers.drivers import export_rev
from bench.peers.procs import CLOCK_TICKS, cpu_ticks, tree
from bench.server import BenchServer

MiB = 1024 * 1024
TUS = {"Tus-Resumable": "1.0.0"}
#: (server CPU, decoder CPU, wall) of one round, each per operation.
Figures = tuple[float, float, float]


class Workload:
    """What a round sends; ``run`` answers how many operations it made."""

    def __init__(self, name: str, work: Path) -> None:
        self.name = name
        cache = envs.default_cache()
        if name == "photos":
            self.bodies = [p.read_bytes() for p in data.photos(cache, 2000, 100 * 1024)]
        elif name == "chunks":
            self.bodies = [p.read_bytes() for p in data.photos(cache, 20, 32 * 1024, seed=4)]
        else:
            self.work = work
        self.next = 0

    def run(self, client: httpx.Client) -> int:
        if self.name == "photos":
            bodies = self.bodies[self.next : self.next + 150]
            self.next = (self.next + 150) % (len(self.bodies) - 150)
            for body in bodies:
                _expect(client.post("/v1/images", content=body), 201)
            return len(bodies)
        if self.name == "chunks":
            return sum(_chunked(client, body) for body in self.bodies)
        return self._tus_patch(client)

    def prepare(self) -> None:
        """Before a round's clock starts: for a PATCH, a file of new random pixels (a copy of
        a stored blob would cost the server freeing its 512 MiB staging file, not a link)."""
        if self.name == "tus-patch":
            self.payload = write_tiff(self.work / "payload.tif", 512 * MiB).path

    def _tus_patch(self, client: httpx.Client) -> int:
        payload = self.payload
        size = payload.stat().st_size
        created = client.post("/files", headers={**TUS, "Upload-Length": str(size)})
        _expect(created, 201)

        def body() -> Iterator[bytes]:
            with payload.open("rb") as file:
                while block := file.read(MiB):
                    yield block

        headers = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
        _expect(client.patch(created.headers["location"], content=body(), headers=headers), 204)
        return 1


def _expect(answer: httpx.Response, status: int) -> None:
    if answer.status_code != status:
        raise RuntimeError(f"{answer.request.method} {answer.request.url}: {answer.text[:300]}")


def _chunked(client: httpx.Client, body: bytes) -> int:
    spec = {"size": len(body), "chunk_size": 1024, "sha256": hashlib.sha256(body).hexdigest()}
    created = client.post("/v1/uploads", json=spec)
    _expect(created, 201)
    upload = created.json()["id"]
    for index, start in enumerate(range(0, len(body), 1024)):
        put = client.put(f"/v1/uploads/{upload}/chunks/{index}", content=body[start : start + 1024])
        _expect(put, 201)
    _expect(client.post(f"/v1/uploads/{upload}/complete"), 201)
    return 2 + -(-len(body) // 1024)


def one_round(server: BenchServer, workload: Workload) -> Figures:
    workload.prepare()
    run = workload.run
    with httpx.Client(base_url=server.url, timeout=600) as client:
        own = cpu_ticks(server.pid) or 0
        everyone = {pid: cpu_ticks(pid) or 0 for pid in tree(server.pid)}
        started = time.perf_counter()
        count = run(client)
        wall = time.perf_counter() - started
        server_cpu = ((cpu_ticks(server.pid) or 0) - own) / CLOCK_TICKS
        workers = [pid for pid in tree(server.pid) if pid != server.pid]
        decoder_cpu = sum((cpu_ticks(p) or 0) - everyone.get(p, 0) for p in workers)
    return server_cpu / count, decoder_cpu / CLOCK_TICKS / count, wall / count


def _source(rev: str, work: Path) -> tuple[Path, str]:
    if rev == ".":
        return Path(__file__).resolve().parent.parent / "src", "the working tree"
    work.mkdir()
    return export_rev(rev, work)


def _spread(values: list[float], scale: float) -> str:
    scaled = [v * scale for v in values]
    return f"{statistics.median(scaled):.2f} ({min(scaled):.2f}-{max(scaled):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("before", help="a git revision, or . for the working tree")
    parser.add_argument("after", help="a git revision, or . for the working tree")
    parser.add_argument("--workload", choices=["photos", "chunks", "tus-patch"], default="photos")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pixdrop-bench-ab-") as tmp:
        work = Path(tmp)
        workload = Workload(args.workload, work)
        servers: list[BenchServer] = []
        names: list[str] = []
        try:
            for label, rev in (("a", args.before), ("b", args.after)):
                src, name = _source(rev, work / f"rev-{label}")
                names.append(f"{rev} ({name})")
                server = BenchServer(
                    work / f"data-{label}",
                    work / f"{label}.log",
                    extra_args=["--decode-timeout", "600", "--min-chunk-size", "1KiB"],
                    env={"PYTHONPATH": str(src)},
                )
                server.start()
                servers.append(server)
            warm = data.photos(envs.default_cache(), 1, 32 * 1024, seed=9)[0].read_bytes()
            for server in servers:  # a decoder starts, caches fill
                with httpx.Client(base_url=server.url, timeout=60) as client:
                    _expect(client.post("/v1/images", content=warm), 201)
            rounds: list[list[Figures]] = [[], []]
            for number in range(args.rounds):
                order = [0, 1] if number % 2 == 0 else [1, 0]
                for index in order:
                    rounds[index].append(one_round(servers[index], workload))
                    cpu, decoder, wall = rounds[index][-1]
                    print(
                        f"round {number + 1}: {names[index]}: server {cpu:.5f} s, "
                        f"decoder {decoder:.5f} s, wall {wall:.5f} s per operation",
                        file=sys.stderr,
                    )
        finally:
            for server in servers:
                server.stop()
    unit = {"photos": "photo", "chunks": "request", "tus-patch": "PATCH"}[args.workload]
    scale = 1.0 if args.workload == "tus-patch" else 1000.0
    what = "s" if args.workload == "tus-patch" else "ms"
    print(f"{args.workload}, {args.rounds} rounds, per {unit} (median, min-max), {what}\n")
    print("| revision | server process CPU | decoder CPU | wall |")
    print("|---|---:|---:|---:|")
    for name, figures in zip(names, rounds, strict=True):
        columns = [_spread([f[k] for f in figures], scale) for k in range(3)]
        print(f"| {name} | " + " | ".join(columns) + " |")
    ratios = [
        _spread([b[k] / a[k] if a[k] else 0.0 for a, b in zip(*rounds, strict=True)], 1.0)
        for k in range(3)
    ]
    print("| second / first, paired by round | " + " | ".join(ratios) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
