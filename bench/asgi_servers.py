"""pixdrop's app under other ASGI servers: as fast as uvicorn, and what each offers (issue 18).

    python -m bench.asgi_servers             # 5 rounds: the benchmark, then the checks
    python -m bench.asgi_servers --quick     # 3 rounds of smaller runs (a few minutes)
    python -m bench.asgi_servers --no-bench  # the checks only
    python -m bench.asgi_servers --servers pixdrop granian --rounds 3 --json /tmp/asgi.json

pixdrop serves its app with uvicorn and subclasses uvicorn's private protocol classes for
what ASGI has no word for (``src/pixdrop/http/h1.py``, ``connections.py``). This measures the
same app, one process at a time on 127.0.0.1, under four servers:

* ``pixdrop``: ``pixdrop serve`` (uvicorn with uvloop, httptools and pixdrop's protocol class);
* ``uvicorn``: plain uvicorn, same loop and parser, the app from a factory
  (:func:`pixdrop_app`), no pixdrop protocol class;
* ``granian``: ``granian --interface asgi --workers 1`` with its default runtime;
* ``hypercorn``: ``hypercorn --workers 0`` (HTTP/1.1 by h11, served in the main process: its
  worker processes are daemonic by default, and a daemonic process cannot start pixdrop's
  decoder processes), uvloop worker class by default (``--hypercorn-worker asyncio`` for its
  own default).

The app is the same everywhere: SQLite and local disk in a temporary directory, ``Settings``
from ``PIXDROP_*`` variables (``min_chunk_size`` 1 KiB, ``max_request_size`` 4 GiB, access log
off). The servers run from a virtual environment of their own in the bench cache directory
(``asgi/``: pixdrop's dependencies at the versions of the running environment, plus
:data:`REQUIREMENTS`), with pixdrop imported from ``src/``: pixdrop's own dependencies do not
change.

Workloads, per server start (after an untimed warm-up): ``bench.chunk_rate.run`` (1 KiB chunk
PUTs of one native upload) over 1 and 16 connections, then one-request photo uploads
(``POST /v1/images`` of about 100 KiB JPEGs from ``bench.peers.data.photos``, each run with
its own JPEG comment so no bytes repeat) 1 and 16 at once. Each round starts every server once,
the order turning by one each round; ratios are against ``pixdrop`` in the same round. Server
CPU is the process tree's (``bench.peers.procs.TreeSampler``), per request.

The checks start each server again with a tiny ASGI app (:func:`probe_app`) and its public
knobs set to short limits (:data:`PROBE_FLAGS`), and try over raw sockets what pixdrop needs:
request trailers, a 104 interim response, head and body timeouts, a head size cap, a
connection cap, graceful shutdown, and an answer that is slow to come. What they print is what
the client saw. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import http.client
import importlib.metadata
import itertools
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SERVERS = ("pixdrop", "uvicorn", "granian", "hypercorn")
#: The servers pixdrop does not depend on, at the versions this was written against.
REQUIREMENTS = ("granian==2.8.9", "hypercorn==0.18.0")
#: Versions reported with the results.
REPORTED = ("uvicorn", "httptools", "uvloop", "granian", "hypercorn", "h11", "fastapi", "starlette")
WORKLOADS = ("chunks c1", "chunks c16", "photos c1", "photos c16")
PHOTO_SIZE = 100 * 1024
HEALTH_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0

#: The pixdrop settings every server's app gets (as ``pixdrop serve`` flags would set them).
APP_ENV = {
    "PIXDROP_HOST": "127.0.0.1",
    "PIXDROP_MIN_CHUNK_SIZE": "1KiB",
    "PIXDROP_MAX_REQUEST_SIZE": "4GiB",
    "PIXDROP_ACCESS_LOG": "false",
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# --- the apps the servers load ----------------------------------------------------------------


def pixdrop_app() -> Any:
    """App factory (``bench.asgi_servers:pixdrop_app``): what ``pixdrop serve`` builds before
    it starts uvicorn, settings from ``PIXDROP_*``: the data directory and database made, the
    same malloc tuning, the same logging, ``create_app``."""
    from pixdrop.config import load_settings
    from pixdrop.http.app import app_from_environment
    from pixdrop.memory import limit_heap_growth
    from pixdrop.metadata import migrate

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings.resolved_database_url)
    limit_heap_growth()
    return app_from_environment()


#: scope["extensions"] keys of pixdrop's protocol class (``src/pixdrop/http/h1.py``).
PIXDROP_TRAILERS = "pixdrop.request_trailers"
PIXDROP_INFORMATIONAL = "pixdrop.informational"
INTERIM_FIELDS = [(b"upload-draft-interop-version", b"6")]


async def _answer(send: Send, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> tuple[int, list[str]]:
    """Read the request body to its end: (bytes, keys of the messages beyond the standard)."""
    size, keys = 0, set()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        size += len(message.get("body", b""))
        keys |= set(message) - {"type", "body", "more_body"}
        if not message.get("more_body", False):
            return size, sorted(keys)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def probe_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The checks' ASGI app (``bench.asgi_servers:probe_app``); every answer is JSON.

    ``/healthz``: the scope's extensions; ``/trailers``: reads the body, says where a trailer
    field turned up; ``/informational/{asgi,early_hint,pixdrop}``: tries to send a 104 (or a
    103 early hint) one way, then answers 200 with what happened; ``/body``: reads the body,
    answers its size; ``/slow?SECONDS``: reads the body, sleeps, answers.
    """
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        return
    path = scope["path"]
    extensions = scope.get("extensions") or {}
    if path == "/healthz":
        await _answer(send, 200, {"ok": True, "extensions": sorted(extensions)})
    elif path == "/trailers":
        size, keys = await _read_body(receive)
        found = extensions.get(PIXDROP_TRAILERS)
        await _answer(
            send,
            200,
            {
                "body": size,
                "extensions": sorted(extensions),
                "message_keys": keys,
                "pixdrop": [[n.decode(), v.decode()] for n, v in found.headers] if found else None,
                "in_scope_headers": [
                    [n.decode("latin-1"), v.decode("latin-1")]
                    for n, v in scope["headers"]
                    if n.lower() == b"upload-checksum"
                ],
            },
        )
    elif path.startswith("/informational/"):
        how = path.rsplit("/", 1)[1]
        outcome = "sent"
        try:
            if how == "asgi":
                # No ASGI spec defines a message for a 1xx: this is the obvious spelling.
                await send(
                    {
                        "type": "http.response.informational",
                        "status": 104,
                        "headers": INTERIM_FIELDS,
                    }
                )
            elif how == "early_hint":
                if "http.response.early_hint" not in extensions:
                    outcome = "extension not offered"
                else:
                    links = [b'</v1/uploads>; rel="preload"']
                    await send({"type": "http.response.early_hint", "links": links})
            elif PIXDROP_INFORMATIONAL in extensions:
                await extensions[PIXDROP_INFORMATIONAL](104, INTERIM_FIELDS)
            else:
                outcome = "extension not offered"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        await _answer(send, 200, {"outcome": outcome, "extensions": sorted(extensions)})
    elif path in ("/body", "/slow"):
        size, _ = await _read_body(receive)
        if path == "/slow":
            await asyncio.sleep(float(scope["query_string"] or b"1"))
        await _answer(send, 200, {"body": size})
    else:
        await _answer(send, 404, {"path": path})


def serve_probe_pixdrop(port: int) -> None:
    """The probe app as pixdrop serves an app: uvicorn with ``uvicorn_options`` of settings
    with the checks' short limits (pixdrop's protocol class and its connection guard)."""
    import uvicorn

    from pixdrop.config import Settings
    from pixdrop.http.app import uvicorn_options

    settings = Settings(
        data_dir=Path(tempfile.gettempdir()),
        header_timeout=PROBE_LIMIT,
        idle_timeout=PROBE_LIMIT,
        keep_alive_timeout=PROBE_LIMIT,
        max_header_size=16 * 1024,
        max_connections=PROBE_CAP,
        shutdown_timeout=PROBE_GRACE,
    )
    options: dict[str, Any] = {"access_log": False, "log_level": "warning"}
    options.update(uvicorn_options(settings))
    uvicorn.Server(uvicorn.Config(probe_app, host="127.0.0.1", port=port, **options)).run()


# --- the servers' environment ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerEnv:
    python: Path
    versions: dict[str, str]


def server_env(cache: Path) -> ServerEnv:
    """A venv in ``cache/asgi`` with pixdrop's dependencies (pinned to the versions of this
    environment, where it has them) and :data:`REQUIREMENTS`; pixdrop itself is not installed
    (the servers import it from ``src/``)."""
    from bench.peers import envs

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = sorted(
        f"{dist.metadata['Name']}=={dist.version}"
        for dist in importlib.metadata.distributions()
        if dist.metadata["Name"] and dist.metadata["Name"].lower() != "pixdrop"
    )
    text = "\n".join(pins) + "\n"
    cache.mkdir(parents=True, exist_ok=True)
    # Named by its content: the venv's stamp covers the requirement list, so new pins rebuild.
    constraints = cache / f"asgi-constraints-{hashlib.sha256(text.encode()).hexdigest()[:12]}.txt"
    if not constraints.exists():
        constraints.write_text(text)
    requirements = [*project["dependencies"], *REQUIREMENTS, "-c", str(constraints)]
    python = envs._venv(cache / "asgi", requirements, "the ASGI servers' venv")
    probe = (
        "import json, importlib.metadata as m\n"
        f"names = {list(REPORTED)!r}\n"
        "print(json.dumps({n: m.version(n) for n in names}))"
    )
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
    if done.returncode != 0:
        raise envs.EnvError(f"the ASGI servers' venv is broken: {done.stderr.strip()[-500:]}")
    return ServerEnv(python, json.loads(done.stdout))


# --- starting and stopping a server ------------------------------------------------------------

#: The checks' short limits, set through each server's public knobs (:data:`PROBE_FLAGS`).
PROBE_LIMIT = 1.0  # head, body-idle and keep-alive timeouts, seconds
PROBE_CAP = 6  # connections (the checks that wait use 4 at once)
PROBE_GRACE = 2.0  # seconds requests get at shutdown

#: Each server's public knobs for the checks: the nearest it has to pixdrop's limits.
PROBE_FLAGS: dict[str, list[str]] = {
    "uvicorn": [
        "--timeout-keep-alive", "1",
        "--limit-concurrency", str(PROBE_CAP),
        "--timeout-graceful-shutdown", "2",
        "--h11-max-incomplete-event-size", "16384",
    ],
    "granian": [
        "--http1-header-read-timeout", "1000",
        "--backpressure", str(PROBE_CAP),
        "--workers-kill-timeout", "2",
        "--http1-buffer-size", "16384",
    ],
    "hypercorn": ["--read-timeout", "1", "--keep-alive", "1", "--graceful-timeout", "2"],
}  # fmt: skip
PROBE_KNOBS = {
    "pixdrop": "header_timeout=1, idle_timeout=1, keep_alive_timeout=1, max_header_size=16 KiB, "
    f"max_connections={PROBE_CAP}, shutdown_timeout=2, through uvicorn_options",
    **{name: " ".join(flags) for name, flags in PROBE_FLAGS.items()},
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_command(
    name: str, python: Path, port: int, *, probe: bool = False, hypercorn_worker: str = "uvloop"
) -> list[str]:
    """How *name* is started: serving pixdrop's app, or with *probe* the checks' app."""
    py, host = str(python), "127.0.0.1"
    if name == "pixdrop":
        if probe:
            return [py, "-m", "bench.asgi_servers", "--serve-probe", str(port)]
        return [py, "-m", "pixdrop", "serve", "--host", host, "--port", str(port)]
    target = "bench.asgi_servers:probe_app" if probe else "bench.asgi_servers:pixdrop_app"
    extra = PROBE_FLAGS[name] if probe else []
    if name == "uvicorn":
        factory = [] if probe else ["--factory"]
        return [
            py, "-m", "uvicorn", *factory, target, "--host", host, "--port", str(port),
            "--no-access-log", "--log-level", "warning", "--no-proxy-headers", *extra,
        ]  # fmt: skip
    if name == "granian":
        factory = [] if probe else ["--factory"]
        return [
            py, "-m", "granian", "--interface", "asgi", "--host", host, "--port", str(port),
            "--workers", "1", "--log-level", "warning", *factory, *extra, target,
        ]  # fmt: skip
    if name == "hypercorn":
        app = target if probe else target + "()"
        # --workers 0: serve in the main process. A worker process (--workers 1) is daemonic by
        # default (Config.daemon), and a daemonic process cannot start pixdrop's decoders.
        return [
            py, "-m", "hypercorn", "--bind", f"{host}:{port}", "--workers", "0",
            "--worker-class", hypercorn_worker, "--log-level", "warning", *extra, app,
        ]  # fmt: skip
    raise ValueError(f"unknown server {name!r}")


class Server:
    """One server process (a session of its own) on 127.0.0.1; stderr and stdout to *log_path*."""

    def __init__(
        self, name: str, command: list[str], port: int, env: dict[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with self.log_path.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_tail()}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                connection.request("GET", "/healthz")
                if connection.getresponse().status == 200:
                    connection.close()
                    return
            except OSError:
                pass
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"{self.name} not healthy after {HEALTH_TIMEOUT}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def signal(self, sig: int = signal.SIGTERM) -> None:
        """*sig* to the server's main process only (as ``kill PID`` or a container stop)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, sig)

    def wait(self, timeout: float) -> float | None:
        """Seconds until the main process exited, within *timeout*; None if it did not."""
        assert self.process is not None
        started = time.monotonic()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.monotonic() - started

    def kill(self) -> None:
        """SIGKILL whatever is left of the session (workers a supervisor left behind)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait(timeout=STOP_TIMEOUT)

    def stop(self) -> None:
        self.signal()
        self.wait(STOP_TIMEOUT)
        self.kill()


def base_env(python: Path) -> dict[str, str]:
    # A stray PIXDROP_* variable would change (or, if unknown, stop) the server under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXDROP_", "GRANIAN_"))}
    env.pop("VIRTUAL_ENV", None)
    env["PATH"] = f"{python.parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), str(REPO)])
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- the benchmark ---------------------------------------------------------------------------


def post_photos(url: str, bodies: list[bytes], concurrency: int) -> float:
    """``POST /v1/images`` each body, *concurrency* connections at once; seconds taken."""
    host, port = url.removeprefix("http://").split(":")
    numbers = itertools.count()
    failures: list[str] = []

    def send() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=300)
        while (index := next(numbers)) < len(bodies):
            connection.request(
                "POST", "/v1/images", body=bodies[index], headers={"Content-Type": "image/jpeg"}
            )
            response = connection.getresponse()
            text = response.read()
            if response.status != 201:
                failures.append(f"photo {index}: {response.status} {text[:200]!r}")
                return
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise RuntimeError("; ".join(failures[:3]))
    return elapsed


def tagged(photos: list[bytes], tag: str) -> list[bytes]:
    """The JPEGs with a comment segment naming *tag*: bytes no server has seen."""
    from bench.peers.data import comment_segment

    return [
        data[:2] + comment_segment(f"pixdrop-bench {tag} {index}") + data[2:]
        for index, data in enumerate(photos)
    ]


@dataclass(slots=True)
class Sample:
    round: int
    rate: float  # requests per second
    cpu: float  # server CPU seconds per request


@dataclass(slots=True)
class Results:
    rounds: int
    chunks: int
    photos: int
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)

    def add(self, server: str, workload: str, sample: Sample) -> None:
        self.samples.setdefault((server, workload), []).append(sample)


def bench_one(server: Server, workload: str, photos: list[bytes], chunks: int, tag: str) -> Sample:
    from bench.chunk_rate import run
    from bench.peers.procs import TreeSampler

    kind, concurrency = workload.split()[0], int(workload.split()[1][1:])
    bodies = tagged(photos, tag) if kind == "photos" else []
    os.sync()  # no write-back of an earlier run competes with this one
    url = f"http://127.0.0.1:{server.port}"
    with TreeSampler(server.pid) as sampler:
        if kind == "chunks":
            seconds, _ = run(url, chunks, concurrency)
            count = chunks
        else:
            seconds = post_photos(url, bodies, concurrency)
            count = len(bodies)
    cpu = sampler.usage.cpu_seconds if sampler.usage else float("nan")
    return Sample(0, count / seconds, cpu / count)


def run_bench(
    env: ServerEnv,
    work: Path,
    results: Results,
    servers: Sequence[str],
    photos: list[bytes],
    hypercorn_worker: str,
    app_env: dict[str, str],
) -> None:
    from bench.chunk_rate import run

    for number in range(results.rounds):
        shift = number % len(servers)
        order = [*servers[shift:], *servers[:shift]]
        log(f"round {number + 1}/{results.rounds}: {' '.join(order)}")
        for name in order:
            data_dir = work / f"r{number}-{name}"
            server_env_vars = base_env(env.python) | app_env | {"PIXDROP_DATA_DIR": str(data_dir)}
            port = free_port()
            command = server_command(name, env.python, port, hypercorn_worker=hypercorn_worker)
            log_path = work / f"r{number}-{name}.log"
            server = Server(name, command, port, server_env_vars, log_path)
            server.start()
            try:
                url = f"http://127.0.0.1:{server.port}"
                run(url, 64, 4)  # warm-up: imports, caches, the decoder's first start
                post_photos(url, tagged(photos[:4], f"warm {number} {name}"), 2)
                line = []
                for workload in WORKLOADS:
                    sample = bench_one(
                        server, workload, photos, results.chunks, f"{number} {name} {workload}"
                    )
                    sample.round = number
                    results.add(name, workload, sample)
                    line.append(f"{workload} {sample.rate:.0f}/s {sample.cpu * 1e3:.2f} ms")
                log(f"  {name:9}: " + ", ".join(line))
            finally:
                server.stop()
                shutil.rmtree(data_dir, ignore_errors=True)


def _spread(values: list[float], fmt: str) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return format(median, fmt)
    return f"{format(median, fmt)} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def render_bench(results: Results, servers: Sequence[str]) -> str:
    lines = [
        "| workload | server | requests/s | x pixdrop serve | server CPU ms/request "
        "| x pixdrop serve |",
        "|---|---|---|---|---|---|",
    ]
    for workload in WORKLOADS:
        base = {s.round: s for s in results.samples.get(("pixdrop", workload), [])}
        for name in servers:
            samples = results.samples.get((name, workload), [])
            rates = [s.rate for s in samples]
            cpus = [s.cpu * 1e3 for s in samples]
            rate_ratio = [s.rate / base[s.round].rate for s in samples if s.round in base]
            cpu_ratio = [s.cpu / base[s.round].cpu for s in samples if s.round in base]
            same = name == "pixdrop"
            lines.append(
                f"| {workload} | {name} | {_spread(rates, '.0f')} | "
                f"{'1' if same else _spread(rate_ratio, '.2f')} | {_spread(cpus, '.2f')} | "
                f"{'1' if same else _spread(cpu_ratio, '.2f')} |"
            )
    return "\n".join(lines)


# --- the checks ------------------------------------------------------------------------------


@dataclass(slots=True)
class Reply:
    interim: list[int]
    status: int | None  # the final response's; None: none came
    headers: dict[str, str]
    body: bytes
    ended: str  # "answered", "closed", "reset" or "open" (nothing more within the wait)
    seconds: float

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def describe(self) -> str:
        if self.status is None:
            if self.ended == "open":
                return f"no answer, connection still open after {self.seconds:.1f} s"
            return f"no answer, connection {self.ended} after {self.seconds:.1f} s"
        kind = self.headers.get("content-type", "no content-type").split(";")[0]
        return f"{self.status} ({kind}) after {self.seconds:.1f} s"


def _parse(data: bytes) -> tuple[list[int], int | None, dict[str, str], bytes, bool]:
    """(interim statuses, final status, its headers, body, complete) from raw response bytes."""
    interim: list[int] = []
    position = 0
    while True:
        end = data.find(b"\r\n\r\n", position)
        if end < 0:
            return interim, None, {}, b"", False
        lines = data[position:end].decode("latin-1").split("\r\n")
        match = re.match(r"HTTP/\d\.\d (\d{3})", lines[0])
        if match is None:
            return interim, None, {}, b"", False
        status = int(match.group(1))
        if 100 <= status < 200:
            interim.append(status)
            position = end + 4
            continue
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = data[end + 4 :]
        length = headers.get("content-length")
        complete = length is not None and len(body) >= int(length)
        if length is not None:
            body = body[: int(length)]
        return interim, status, headers, body, complete


def read_reply(sock: socket.socket, wait: float, started: float | None = None) -> Reply:
    """Read from *sock* until a final response is complete, the peer closes, or *wait* s pass
    (from *started*, default now)."""
    started = time.monotonic() if started is None else started
    data = b""
    ended = "open"
    while True:
        left = started + wait - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            ended = "reset"
            break
        if not chunk:
            ended = "closed"
            break
        data += chunk
        if _parse(data)[4]:
            ended = "answered"
            break
    interim, status, headers, body, _ = _parse(data)
    return Reply(interim, status, headers, body, ended, time.monotonic() - started)


def exchange(port: int, request: bytes, wait: float = 5.0) -> Reply:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        started = time.monotonic()
        sock.sendall(request)
        return read_reply(sock, wait, started)


def _request(method: str, target: str, headers: Sequence[str] = (), body: bytes = b"") -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers]
    if body and not any(h.lower().startswith("transfer-encoding") for h in headers):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def check_extensions(port: int) -> str:
    reply = exchange(port, _request("GET", "/healthz", ["Connection: close"]))
    found = reply.json()
    if reply.status != 200 or not isinstance(found, dict):
        return reply.describe()
    return ", ".join(f"`{name}`" for name in found["extensions"]) or "none"


def check_trailers(port: int) -> str:
    digest = base64.b64encode(hashlib.sha1(b"hello").digest()).decode()
    request = (
        _request(
            "POST",
            "/trailers",
            ["Transfer-Encoding: chunked", "Trailer: Upload-Checksum", "Connection: close"],
        )
        + f"5\r\nhello\r\n0\r\nUpload-Checksum: sha1 {digest}\r\n\r\n".encode()
    )
    reply = exchange(port, request)
    found = reply.json()
    if reply.status != 200 or not isinstance(found, dict):
        return f"no: the chunked request with a trailer got {reply.describe()}"
    if found.get("pixdrop"):
        return "yes, `pixdrop.request_trailers` (pixdrop's subclass of uvicorn's protocol)"
    if found.get("message_keys"):
        return f"in `http.request` messages: {found['message_keys']}"
    if found.get("in_scope_headers"):
        return (
            "no API: the field is appended to `scope['headers']` once the body is read "
            "(indistinguishable from a header)"
        )
    return f"no: body delivered ({found.get('body')} bytes), the trailer field dropped"


def check_informational(port: int) -> str:
    seen = []
    for how in ("pixdrop", "asgi", "early_hint"):
        reply = exchange(port, _request("GET", f"/informational/{how}", ["Connection: close"]))
        found = reply.json()
        outcome = found.get("outcome") if isinstance(found, dict) else reply.describe()
        if how == "pixdrop" and outcome == "extension not offered":
            continue
        interim = ", ".join(map(str, reply.interim)) or "none"
        label = {
            "pixdrop": "`pixdrop.informational`",
            "asgi": "`http.response.informational`",
            "early_hint": "`http.response.early_hint`",
        }[how]
        seen.append(f"{label}: {outcome}; 1xx received: {interim}")
    got = "yes" if any("1xx received: 10" in line for line in seen) else "no"
    return f"{got}: " + "; ".join(seen)


def check_head_timeout(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # the head never ends
        return read_reply(sock, 5.0, started).describe()


def check_silent(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        return read_reply(sock, 5.0).describe()


def check_body_idle(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_request("POST", "/body", ["Content-Length: 1000"]) + b"x" * 10)
        return read_reply(sock, 5.0).describe()


def check_slow_answer(port: int) -> str:
    """The app answers 2.5 s after the body; the client waits without a byte to send."""
    return exchange(port, _request("POST", "/slow?2.5", [], b"abc"), wait=6.0).describe()


def check_head_size(port: int) -> str:
    request = _request("GET", "/healthz", ["X-Big: " + "a" * 65536, "Connection: close"])
    return "64 KiB head: " + exchange(port, request).describe()


def check_connection_cap(port: int) -> str:
    """Connections opened one after another and kept open, one request on each."""
    sockets, statuses = [], []
    try:
        for _ in range(PROBE_CAP * 2):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sockets.append(sock)
            sock.sendall(_request("GET", "/healthz"))
            reply = read_reply(sock, 1.5)
            statuses.append(
                str(reply.status)
                if reply.status
                else "no answer" + (" (closed)" if reply.ended != "open" else "")
            )
            if reply.status and reply.status != 200:
                kind = reply.headers.get("content-type", "-").split(";")[0]
                statuses[-1] += f" {kind}"
    finally:
        for sock in sockets:
            sock.close()
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return f"{PROBE_CAP * 2} connections kept open: " + ", ".join(
        f"{n} x {status}" for status, n in counts.items()
    )


def check_shutdown(server: Server) -> str:
    """SIGTERM while a request is in progress (its answer due 0.4 s later) and an upload is
    still sending (a byte every 0.3 s); a new connection 0.2 s after it. Each is watched by a
    thread of its own, so every time is when that thing happened, from the signal."""
    port, process = server.port, server.process
    assert process is not None
    slow = socket.create_connection(("127.0.0.1", port), timeout=10)
    upload = socket.create_connection(("127.0.0.1", port), timeout=10)
    stop = threading.Event()
    seen: dict[str, str] = {}

    def trickle() -> None:
        while not stop.wait(0.3):
            try:
                upload.sendall(b"x")
            except OSError:
                return

    def answer(what: str, sock: socket.socket, started: float) -> None:
        seen[what] = read_reply(sock, 12.0, started).describe()
        sock.close()  # as a client does once answered: a server may wait for it

    def new_connection(started: float) -> None:
        time.sleep(0.2)
        try:
            reply = exchange(port, _request("GET", "/healthz", ["Connection: close"]), 3.0)
            seen["new"] = reply.describe()
        except OSError as exc:
            seen["new"] = f"refused ({type(exc).__name__})"

    def exit_watch(started: float) -> None:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            seen["exit"] = "not within 15 s"
        else:
            seen["exit"] = f"{time.monotonic() - started:.1f} s"

    try:
        slow.sendall(_request("POST", "/slow?0.6", [], b"abc"))
        upload.sendall(_request("POST", "/body", ["Content-Length: 100000"]) + b"x")
        threading.Thread(target=trickle, daemon=True).start()
        time.sleep(0.2)
        signalled = time.monotonic()
        server.signal(signal.SIGTERM)
        watchers = [
            threading.Thread(target=answer, args=("slow", slow, signalled)),
            threading.Thread(target=answer, args=("upload", upload, signalled)),
            threading.Thread(target=new_connection, args=(signalled,)),
            threading.Thread(target=exit_watch, args=(signalled,)),
        ]
        for thread in watchers:
            thread.start()
        for thread in watchers:
            thread.join()
    finally:
        stop.set()
        slow.close()
        upload.close()
    return (
        f"after SIGTERM: request in progress {seen['slow']}; upload still sending "
        f"{seen['upload']}; a new connection {seen['new']}; the process exited after "
        f"{seen['exit']}"
    )


#: Checks that wait for a timeout: run side by side.
WAITING = ("head timeout", "silent connection", "body idle timeout", "slow answer")

#: (name, what is looked at: what pixdrop needs, the check).
CHECKS: list[tuple[str, str, Callable[[int], str]]] = [
    ("scope extensions", "what the app finds in `scope['extensions']` on HTTP/1.1",
     check_extensions),
    ("request trailers", "pixdrop needs: a chunked PUT/PATCH with `Upload-Checksum` as a "
     "trailer", check_trailers),
    ("104 interim response", "pixdrop needs: `104 Upload Resumption Supported` before the "
     "answer", check_informational),
    ("head timeout", "pixdrop needs: a head that never ends gets 408 after header_timeout",
     check_head_timeout),
    ("silent connection", "pixdrop needs: a connection that sends nothing is closed after "
     "header_timeout", check_silent),
    ("body idle timeout", "pixdrop needs: 10 of 1000 body bytes, then silence, gets 408 after "
     "idle_timeout", check_body_idle),
    ("head size cap", "pixdrop needs: 431 problem+json beyond max_header_size",
     check_head_size),
    ("connection cap", "pixdrop needs: 503 problem+json beyond max_connections "
     f"({PROBE_CAP})", check_connection_cap),
    ("slow answer", "pixdrop needs: an answer 2.5 s after the body (a big image's check) is "
     "not cut off", check_slow_answer),
]  # fmt: skip


def run_checks(
    env: ServerEnv, work: Path, servers: Sequence[str], hypercorn_worker: str
) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    for name in servers:
        log(f"checks: {name}")
        row: dict[str, str] = {}
        port = free_port()
        command = server_command(
            name, env.python, port, probe=True, hypercorn_worker=hypercorn_worker
        )
        server = Server(name, command, port, base_env(env.python), work / f"probe-{name}.log")
        server.start()
        try:
            for what, _, check in CHECKS:
                if what not in WAITING and what != "connection cap":
                    _attempt(check, port, row, what)
            # The ones that wait for a timeout run side by side, each on its own connection;
            # the connection cap's alone, with no other connection open.
            threads = [
                threading.Thread(target=_attempt, args=(check, port, row, what))
                for what, _, check in CHECKS
                if what in WAITING
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            time.sleep(0.5)  # the server notices those connections closed
            _attempt(check_connection_cap, port, row, "connection cap")
            row["graceful shutdown"] = check_shutdown(server)
        finally:
            server.stop()
        found[name] = row
        for what, text in row.items():
            log(f"  {what}: {text}")
    return found


def _attempt(check: Callable[[int], str], port: int, row: dict[str, str], what: str) -> None:
    try:
        row[what] = check(port)
    except OSError as exc:
        row[what] = f"client error: {type(exc).__name__}: {exc}"


def render_checks(found: dict[str, dict[str, str]]) -> str:
    what_needed = {what: needed for what, needed, _ in CHECKS}
    what_needed["graceful shutdown"] = (
        "pixdrop needs: requests in progress finish; after shutdown_timeout an append's body "
        "ends (its bytes kept, answered)"
    )
    lines = []
    for what, needed in what_needed.items():
        lines.append(f"**{what}** ({needed})\n")
        for name, row in found.items():
            lines.append(f"- {name}: {row.get(what, '-')}")
        lines.append("")
    lines.append("Knobs set for the checks:\n")
    lines += [f"- {name}: `{PROBE_KNOBS[name]}`" for name in found]
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.asgi_servers", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="3 rounds, 500 chunks, 64 photos")
    parser.add_argument("--rounds", type=int, help="rounds (default 5, --quick 3)")
    parser.add_argument("--chunks", type=int, help="chunk PUTs per run (default 1500)")
    parser.add_argument("--photos", type=int, help="photos per run (default 240)")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--hypercorn-worker", choices=("uvloop", "asyncio"), default="uvloop")
    parser.add_argument(
        "--no-fsync", action="store_true", help="the app with fsync off (PIXDROP_FSYNC=false)"
    )
    parser.add_argument("--no-bench", action="store_true", help="the checks only")
    parser.add_argument("--no-checks", action="store_true", help="the benchmark only")
    parser.add_argument("--cache-dir", type=Path, help="default $BENCH_CACHE_DIR or ~/.cache/...")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--serve-probe", type=int, metavar="PORT", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve_probe:
        serve_probe_pixdrop(args.serve_probe)
        return
    from bench.peers import data, envs

    if "pixdrop" not in args.servers and not args.no_bench:
        sys.exit("the ratios need pixdrop among --servers")
    cache = (args.cache_dir or envs.default_cache()).resolve()
    log(f"servers' venv in {cache / 'asgi'} (made once, about a minute)")
    env = server_env(cache)
    results = Results(
        rounds=args.rounds or (3 if args.quick else 5),
        chunks=args.chunks or (500 if args.quick else 1500),
        photos=args.photos or (64 if args.quick else 240),
    )
    started = time.monotonic()
    out = [
        "## pixdrop's app under four ASGI servers (`python -m bench.asgi_servers`)\n",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in env.versions.items())
        + f"; hypercorn worker class {args.hypercorn_worker}; app fsync "
        f"{'off' if args.no_fsync else 'on'}; "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}.\n",
    ]  # fmt: skip
    found: dict[str, dict[str, str]] = {}
    with tempfile.TemporaryDirectory(prefix="pixdrop-asgi-") as scratch:
        work = Path(scratch)
        if not args.no_bench:
            files = data.photos(cache, results.photos, PHOTO_SIZE)
            photos = [path.read_bytes() for path in files]
            app_env = APP_ENV | ({"PIXDROP_FSYNC": "false"} if args.no_fsync else {})
            run_bench(env, work, results, args.servers, photos, args.hypercorn_worker, app_env)
            out += [
                f"{results.rounds} rounds; per run {results.chunks} chunk PUTs of 1 KiB, "
                f"{results.photos} photos of about 100 KiB; median (min-max) over the rounds, "
                "ratios to pixdrop serve in the same round.\n",
                render_bench(results, args.servers),
                "",
            ]
        if not args.no_checks:
            found = run_checks(env, work, args.servers, args.hypercorn_worker)
            out += ["### What each server offers pixdrop (seen by a raw-socket client)\n"]
            out.append(render_checks(found))
    out.append(f"\n({time.monotonic() - started:.0f} s)")
    print("\n".join(out))
    if args.json:
        raw = {
            "versions": env.versions,
            "rounds": results.rounds,
            "chunks": results.chunks,
            "photos": results.photos,
            "samples": {
                f"{server}/{workload}": [[s.round, s.rate, s.cpu] for s in samples]
                for (server, workload), samples in results.samples.items()
            },
            "checks": found,
        }
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
