"""What the HTTP stack alone costs per photo, against pixdrop's whole path (issue 18, S3).

    python -m bench.stack_floor                  # 300 photos of ~100 KiB, 3 rounds
    python -m bench.stack_floor --images 100 --rounds 2

Three servers on 127.0.0.1, each under uvicorn with uvloop and httptools, one process:

* ``raw ASGI``: an ASGI callable that stores the body in a new file, fdatasyncs it and its
  directory, and answers 201 with a small JSON body: the stack and the durable write, nothing
  else;
* ``FastAPI``: the same handler as a FastAPI route (``request.stream()``, ``JSONResponse``);
* ``pixdrop``: ``pixdrop serve`` (``POST /v1/images``: check, decode, placeholder, record).

Each gets the same photos one request at a time, in alternating rounds, from one
``httpx.Client``; the figure is the server's CPU per photo (its process tree, from ``/proc``)
and its photos per second. The gap between the first two rows is FastAPI's share; between
the second and the third, pixdrop's own work. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bench.peers import data, envs
from bench.peers.procs import CLOCK_TICKS, cpu_ticks, tree
from bench.server import BenchServer, free_port

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: Where the two bare servers store bodies (set by this tool in their environment).
DATA_ENV = "STACK_FLOOR_DIR"


def _store(chunks: list[bytes]) -> str:
    """Write *chunks* to a new file, durably (data, then its directory entry); its name."""
    folder = Path(os.environ[DATA_ENV])
    name = secrets.token_hex(8)
    fd = os.open(folder / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.writev(fd, chunks)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return name


async def raw_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The bare ASGI server's app: every POST body is stored as above."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks: list[bytes] = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = json.dumps({"id": _store(chunks), "size": sum(map(len, chunks))}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def fastapi_app() -> FastAPI:
    """The FastAPI server's app."""
    app = FastAPI()

    @app.post("/v1/images", status_code=201)
    async def create(request: Request) -> JSONResponse:
        chunks = [chunk async for chunk in request.stream()]
        stored = {"id": _store(chunks), "size": sum(map(len, chunks))}
        return JSONResponse(stored, status_code=201)

    return app


class Bare:
    """``uvicorn TARGET`` on a free port, one process, uvloop and httptools."""

    def __init__(self, label: str, target: str, work: Path, factory: bool = False) -> None:
        self.label = label
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        folder = work / target.rsplit(":", 1)[1]
        folder.mkdir(parents=True)
        command = [
            sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1",
            "--port", str(self.port), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
        if factory:
            command.append("--factory")
        env = {**os.environ, DATA_ENV: str(folder)}
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{label} did not start")

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def tree_cpu(pid: int) -> float:
    return sum(cpu_ticks(p) or 0 for p in tree(pid)) / CLOCK_TICKS


def one_round(url: str, pid: int, photos: list[Path]) -> tuple[float, float]:
    """(photos per second, server CPU ms per photo) of sending *photos* one at a time."""
    bodies = [photo.read_bytes() for photo in photos]
    with httpx.Client(base_url=url, timeout=60) as client:
        client.post("/v1/images", content=bodies[0])  # warm: a decoder starts, caches fill
        before, started = tree_cpu(pid), time.perf_counter()
        for body in bodies:
            answer = client.post("/v1/images", content=body)
            if answer.status_code != 201:
                raise RuntimeError(f"{url}: {answer.status_code} {answer.text[:200]}")
        seconds = time.perf_counter() - started
        cpu = tree_cpu(pid) - before
    return len(bodies) / seconds, cpu / len(bodies) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.stack_floor", description=__doc__)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    photos = data.photos(envs.default_cache(), 2000, 100 * 1024)[: args.images]
    with tempfile.TemporaryDirectory(prefix="pixdrop-stack-floor-") as tmp:
        work = Path(tmp)
        pixdrop = BenchServer(work / "pixdrop", work / "pixdrop.log")
        servers: list[Any] = []
        try:
            servers.append(Bare("raw ASGI", "bench.stack_floor:raw_app", work))
            servers.append(Bare("FastAPI", "bench.stack_floor:fastapi_app", work, factory=True))
            pixdrop.start()
            pixdrop.label = "pixdrop serve"  # type: ignore[attr-defined]
            servers.append(pixdrop)
            figures: dict[str, list[tuple[float, float]]] = {s.label: [] for s in servers}
            for number in range(args.rounds):
                order = servers[number % 3 :] + servers[: number % 3]
                for server in order:
                    rate, cpu = one_round(server.url, server.pid, photos)
                    figures[server.label].append((rate, cpu))
                    print(f"round {number + 1}: {server.label}: {rate:.0f} photos/s, "
                          f"{cpu:.2f} ms CPU per photo", file=sys.stderr)  # fmt: skip
        finally:
            for server in servers:
                server.stop()
    base = statistics.median(cpu for _, cpu in figures["raw ASGI"])
    print(f"{args.images} photos of ~100 KiB, one request at a time, {args.rounds} rounds\n")
    print("| server | photos/s (median) | server CPU ms per photo (median, min-max) | x raw ASGI |")
    print("|---|---:|---:|---:|")
    for label, runs in figures.items():
        cpus = [cpu for _, cpu in runs]
        median = statistics.median(cpus)
        rate = statistics.median(rate for rate, _ in runs)
        print(
            f"| {label} | {rate:.0f} | {median:.2f} ({min(cpus):.2f}-{max(cpus):.2f}) "
            f"| {median / base:.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
