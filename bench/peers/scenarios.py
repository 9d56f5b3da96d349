"""The six scenarios of the comparison: their contenders, data and interleaved rounds.

Every scenario runs in rounds; a round runs each of its contenders once, and each round
starts one contender later than the one before (A B C, B C A, C A B, ...), so drift on a
noisy machine hits all alike and no contender always follows the same neighbour. Between two
runs the harness deletes what the last one stored (a peer's files; pixdrop's images, with
the delete tokens the clients report) and calls ``sync``, so one contender's write-back never
lands in the next one's time.

Scenarios 1-4 have a **floor** among their contenders (``floor.py``): the same bytes written
and fsynced, and each image decoded once, by the harness itself, in the same rounds. Every
run of a server records the server's CPU seconds (its process tree) and the same per
operation of the scenario (``OPERATIONS``): per upload in scenarios 1, 2 and 5, per image in
3, per chunk request in 4, per thumbnail in 6.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.payload import Payload, vary, write_tiff
from bench.peers import data
from bench.peers.drivers import REPO, Contender, RunFailed, Runner
from bench.peers.procs import TreeSampler
from bench.peers.report import OPERATIONS

MiB = 1024 * 1024
GiB = 1024 * MiB
SETTLE_SECONDS = 0.2


_STARTED = time.monotonic()


def log(message: str) -> None:
    elapsed = time.monotonic() - _STARTED
    print(f"[bench.peers {elapsed:5.0f}s] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Config:
    quick: bool
    rounds: int
    size: int
    images: int
    tiny_files: int
    memory_sizes: tuple[int, ...]
    memory_rounds: int
    concurrency: tuple[int, int] = (1, 32)
    chunk: int = 8 * MiB
    tiny_chunk: int = 1024
    scenarios: frozenset[str] = frozenset("123456")
    #: Pause after each run (after sync), so the next starts on a quiet machine.
    settle: float = 0.2

    @classmethod
    def full(cls) -> Config:
        return cls(False, 5, 512 * MiB, 2000, 16, (MiB, 64 * MiB, GiB), 1)

    @classmethod
    def quick_run(cls) -> Config:
        return cls(True, 1, 16 * MiB, 12, 2, (MiB, 4 * MiB), 1, settle=0.0)


@dataclass
class Scenario:
    """A scenario's table: its rows, each with its runs (one per round)."""

    key: str
    title: str
    unit: str
    what: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self, contender: Contender) -> dict[str, Any]:
        for row in self.rows:
            if row["id"] == contender.id:
                return row
        row = {
            "id": contender.id,
            "label": contender.label,
            "server": contender.server,
            "client": contender.client,
            "job": contender.job,
            "note": contender.note,
            "skipped": None,
            "failed": None,
            "runs": [],
        }
        self.rows.append(row)
        return row

    def record(self, run: dict[str, Any]) -> None:
        """Add the operations *run* did and its CPU per operation (server's, or the floor's)."""
        _, count, _ = OPERATIONS[self.key[:2]]
        operations = int(run.get(count) or 1)
        run["operations"] = operations
        for total, per in (("server_cpu", "server_cpu_per_op"), ("floor_cpu", "floor_cpu_per_op")):
            if total in run:
                run[per] = run[total] / operations

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "what": self.what,
            "operation": OPERATIONS[self.key[:2]][0],
            "rows": self.rows,
            "seconds": self.seconds,
            "extra": self.extra,
        }


# --- contenders -------------------------------------------------------------------------------
PIX, PIX_NOFSYNC, NODE, PY = ("pixdrop", "pixdrop-nofsync", "tus-node", "tuspyserver")
#: pixdrop's tus endpoint is on the same server as its own API.
PIX_TUS = PIX
TUS_CLIENTS = ("tus-js-client", "tuspy")
LOOPBACK = Contender("loopback", "limit: loopback TCP", None, "loopback")
DISK = Contender("disk", "limit: disk write + fsync", None, "disk")
FLOOR_BIG = Contender(
    "floor", "floor: write + fsync, then one decode", None, "floor", {"kind": "big"}
)


def floor_photos(concurrency: int) -> Contender:
    return Contender(
        "floor",
        "floor: per photo write + fsync, then one decode",
        None,
        "floor",
        {"kind": "photos", "concurrency": concurrency},
    )


def floor_chunks(config: Config, concurrency: int) -> Contender:
    return Contender(
        "floor",
        "floor: per chunk write + fsync",
        None,
        "floor",
        {"kind": "chunks", "concurrency": concurrency, "chunk_size": config.tiny_chunk},
    )


def chunked(config: Config) -> list[Contender]:
    def job(parallel: int) -> dict[str, Any]:
        return {"chunk_size": config.chunk, "parallel": parallel, "concurrency": 1}

    concat = ("concatenation",)
    return [
        LOOPBACK,
        DISK,
        FLOOR_BIG,
        Contender("pixdrop-1", "pixdrop · pixdrop client · 1 at a time", PIX, "pixdrop", job(1)),
        Contender("pixdrop-4", "pixdrop · pixdrop client · 4 in parallel", PIX, "pixdrop", job(4)),
        Contender(
            "pixdrop-tus-js-1",
            "pixdrop tus · tus-js-client · 1 at a time",
            PIX_TUS,
            "tus-js-client",
            job(1),
        ),
        Contender(
            "pixdrop-tus-js-4",
            "pixdrop tus · tus-js-client · 4 in parallel",
            PIX_TUS,
            "tus-js-client",
            job(4),
            concat,
        ),
        Contender(
            "pixdrop-tus-tuspy-1", "pixdrop tus · tuspy · 1 at a time", PIX_TUS, "tuspy", job(1)
        ),
        Contender(
            "node-js-1", "@tus/server · tus-js-client · 1 at a time", NODE, "tus-js-client", job(1)
        ),
        Contender(
            "node-js-4",
            "@tus/server · tus-js-client · 4 in parallel",
            NODE,
            "tus-js-client",
            job(4),
            concat,
        ),
        Contender("py-tuspy-1", "tuspyserver · tuspy · 1 at a time", PY, "tuspy", job(1)),
        Contender(
            "py-tuspy-4",
            "tuspyserver · tuspy · 4 in parallel",
            PY,
            "tuspy",
            job(4),
            concat,
            "4 partial uploads, then a final one (concatenation); tuspy has no parallel mode",
        ),
    ]


def one_request(config: Config) -> list[Contender]:
    job = {"chunk_size": None, "parallel": 1, "concurrency": 1}
    return [
        LOOPBACK,
        DISK,
        FLOOR_BIG,
        Contender("pixdrop", "pixdrop · pixdrop client · POST /v1/images", PIX, "pixdrop", job),
        Contender(
            "pixdrop-tus-js",
            "pixdrop tus · tus-js-client · one PATCH",
            PIX_TUS,
            "tus-js-client",
            job,
        ),
        Contender("pixdrop-tus-tuspy", "pixdrop tus · tuspy · one PATCH", PIX_TUS, "tuspy", job),
        Contender("node-js", "@tus/server · tus-js-client · one PATCH", NODE, "tus-js-client", job),
        Contender("py-tuspy", "tuspyserver · tuspy · one PATCH", PY, "tuspy", job),
    ]


def many(concurrency: int) -> list[Contender]:
    job = {"chunk_size": None, "parallel": 1, "concurrency": concurrency}
    cwu = {**job, "creation_with_upload": True}
    return [
        floor_photos(concurrency),
        Contender("pixdrop", "pixdrop · pixdrop client · POST /v1/images", PIX, "pixdrop", job),
        Contender(
            "pixdrop-nofsync",
            "pixdrop without fsync · pixdrop client · POST /v1/images",
            PIX_NOFSYNC,
            "pixdrop",
            job,
            note="nofsync.so preloaded",
        ),
        Contender(
            "pixdrop-tus-js",
            "pixdrop tus · tus-js-client · creation-with-upload",
            PIX_TUS,
            "tus-js-client",
            cwu,
            ("creation-with-upload",),
        ),
        Contender(
            "node-js",
            "@tus/server · tus-js-client · creation-with-upload",
            NODE,
            "tus-js-client",
            cwu,
            ("creation-with-upload",),
        ),
        Contender("py-tuspy", "tuspyserver · tuspy · POST + PATCH", PY, "tuspy", job),
    ]


def tiny(config: Config, concurrency: int) -> list[Contender]:
    job = {"chunk_size": config.tiny_chunk, "parallel": 1, "concurrency": concurrency}
    return [
        floor_chunks(config, concurrency),
        Contender("pixdrop", "pixdrop · pixdrop client · PUT chunks", PIX, "pixdrop", job),
        Contender(
            "pixdrop-nofsync",
            "pixdrop without fsync · pixdrop client · PUT chunks",
            PIX_NOFSYNC,
            "pixdrop",
            job,
            note="nofsync.so preloaded",
        ),
        Contender(
            "pixdrop-tus-js", "pixdrop tus · tus-js-client · PATCH", PIX_TUS, "tus-js-client", job
        ),
        Contender("node-js", "@tus/server · tus-js-client · PATCH", NODE, "tus-js-client", job),
        Contender("py-tuspy", "tuspyserver · tuspy · PATCH", PY, "tuspy", job),
    ]


def memory(config: Config) -> list[Contender]:
    job = {"chunk_size": config.chunk, "parallel": 1, "concurrency": 4}
    return [
        Contender("pixdrop", "pixdrop · pixdrop client", PIX, "pixdrop", job),
        Contender("pixdrop-tus-js", "pixdrop tus · tus-js-client", PIX_TUS, "tus-js-client", job),
        Contender("node-js", "@tus/server · tus-js-client", NODE, "tus-js-client", job),
        Contender("py-tuspy", "tuspyserver · tuspy", PY, "tuspy", job),
    ]


# --- running ----------------------------------------------------------------------------------
@dataclass
class Session:
    runner: Runner
    config: Config
    cache: Path
    work: Path
    #: server key -> why it is not running (no key: it runs)
    missing: dict[str, str] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    #: Stops every server and starts it afresh (scenario 5 measures fresh processes).
    restart: Callable[[], None] | None = None
    _serial: int = 0

    def skip_reason(self, contender: Contender) -> str | None:
        if contender.server is None:
            return None
        if contender.server in self.missing:
            return self.missing[contender.server]
        # A client whose environment was left out (--no-peers) or failed to install.
        if contender.client == "tus-js-client" and self.runner.node is None:
            return self.missing.get("tus-node", "tus-js-client (Node.js) is not installed")
        if contender.client == "tuspy" and self.runner.peer_python is None:
            return self.missing.get("tuspyserver", "tuspy is not installed")
        server = self.runner.servers[contender.server]
        if contender.client in TUS_CLIENTS and not server.tus.present:
            return self.missing.get("pixdrop-tus", f"{server.label} has no tus endpoint")
        for extension in contender.needs:
            if extension not in server.tus.extensions:
                return f"{server.label} does not offer the tus {extension} extension"
        return None

    def serial(self) -> int:
        self._serial += 1
        return self._serial

    def after_run(self, contender: Contender) -> None:
        """Delete what the run stored (peers), then flush the page cache's dirty pages."""
        if contender.server in (NODE, PY):
            self.runner.servers[contender.server].wipe()
        os.sync()
        time.sleep(self.config.settle)

    def rounds(
        self,
        scenario: Scenario,
        contenders: list[Contender],
        rounds: int,
        files_for_round: Callable[[int], list[Path]],
        before_run: Callable[[Contender], None] = lambda contender: None,
        value: Callable[[dict[str, Any]], str] = lambda run: "",
        tag: dict[str, Any] | None = None,
    ) -> None:
        """*rounds* rounds of every contender that can run, rotating the order."""
        started = time.monotonic()
        active = []
        for contender in contenders:
            row = scenario.row(contender)
            reason = self.skip_reason(contender)
            if reason:
                row["skipped"] = reason
            else:
                active.append(contender)
        for number in range(rounds):
            files = files_for_round(number)
            shift = number % max(1, len(active))
            order = active[shift:] + active[:shift]
            log(f"{scenario.key} round {number + 1}/{rounds}{_tag(tag)}")
            for contender in order:
                row = scenario.row(contender)
                if row["failed"]:
                    continue
                before_run(contender)
                try:
                    run = self.runner.run(contender, files)
                except RunFailed as exc:
                    row["failed"] = str(exc)
                    self.failures.append(f"{scenario.key} {contender.label}: {exc}")
                    log(f"  {contender.label}: FAILED {exc}")
                    continue
                finally:
                    self.after_run(contender)
                run.update({"round": number, **(tag or {})})
                scenario.record(run)
                row["runs"].append(run)
                log(f"  {contender.label}: {value(run)}")
        scenario.seconds += time.monotonic() - started


def _tag(tag: dict[str, Any] | None) -> str:
    return "" if not tag else " (" + ", ".join(f"{k}={v}" for k, v in tag.items()) + ")"


def _mbps(run: dict[str, Any]) -> str:
    return f"{run['bytes'] / run['seconds'] / 1e6:.0f} MB/s"


def big_files(session: Session) -> list[Scenario]:
    """Scenarios 1 and 2: one payload, chunked and in one request."""
    config = session.config
    log(f"writing the {config.size // MiB} MiB payload")
    payload = write_tiff(session.work / "payload.tif", config.size)
    done = []

    def before(contender: Contender) -> None:
        if contender.server is not None:
            vary(payload, session.serial())

    for key, title, contenders in (
        ("s1", "Scenario 1: one file, 8 MiB chunks", chunked(config)),
        ("s2", "Scenario 2: the same file in one request", one_request(config)),
    ):
        if key[1] not in config.scenarios:
            continue
        scenario = Scenario(key, title, "MB/s", _payload_text(payload))
        session.rounds(scenario, contenders, config.rounds, lambda n: [payload.path], before, _mbps)
        done.append(scenario)
    payload.path.unlink()
    return done


def _payload_text(payload: Payload) -> str:
    return (
        f"{payload.size / MiB:.0f} MiB ({payload.size} bytes): an uncompressed RGBA TIFF of "
        "random pixels (`bench/payload.py`)"
    )


def small_files(session: Session) -> list[Scenario]:
    """Scenarios 3 and 4: many small real photos, one request each; tiny chunks."""
    config = session.config
    done = []
    if "3" in config.scenarios:
        log(f"making {config.images} photos of about 100 KiB (cached after the first run)")
        photos = data.photos(session.cache, config.images, 100 * 1024)
        sizes = [p.stat().st_size for p in photos]
        for concurrency in config.concurrency:
            scenario = Scenario(
                f"s3-c{concurrency}",
                f"Scenario 3: {len(photos)} photos, one request each, concurrency {concurrency}",
                "images/s",
                f"{len(photos)} JPEGs, {min(sizes) // 1024}-{max(sizes) // 1024} KiB "
                f"(mean {sum(sizes) / len(sizes) / 1024:.0f} KiB)",
                extra={"concurrency": concurrency},
            )
            session.rounds(
                scenario,
                many(concurrency),
                config.rounds,
                _variants(session, photos, f"s3-c{concurrency}"),
                value=lambda run: (
                    f"{run['files'] / run['seconds']:.0f} images/s, p50 {run['p50'] * 1000:.0f} ms"
                ),
            )
            done.append(scenario)
    if "4" in config.scenarios:
        small = data.photos(session.cache, config.tiny_files, 32 * 1024, seed=4)
        requests = sum(-(-p.stat().st_size // config.tiny_chunk) for p in small)
        for concurrency in config.concurrency:
            concurrency = min(concurrency, len(small))
            scenario = Scenario(
                f"s4-c{concurrency}",
                f"Scenario 4: 1 KiB chunks, {concurrency} upload(s) at once",
                "requests/s",
                f"{len(small)} JPEGs of about 32 KiB sent in {config.tiny_chunk}-byte chunks: "
                f"{requests} chunk requests per run",
                extra={"concurrency": concurrency},
            )
            session.rounds(
                scenario,
                tiny(config, concurrency),
                config.rounds,
                _variants(session, small, f"s4-c{concurrency}"),
                value=lambda run: f"{run['requests'] / run['seconds']:.0f} requests/s",
            )
            done.append(scenario)
    return done


def _variants(session: Session, files: list[Path], key: str) -> Callable[[int], list[Path]]:
    folder = session.work / "variants"

    def make(number: int) -> list[Path]:
        shutil.rmtree(folder, ignore_errors=True)
        return data.variant(files, folder, f"{key} round {number}")

    return make


def memory_scenario(session: Session) -> Scenario:
    """Scenario 5: four uploads at once, at each size; the servers' peak RSS.

    Every server is restarted first, so its figure is that of a fresh process, not of one
    that has served the scenarios before (Python keeps the memory it once used), and warmed
    up with one untimed run of each contender on 1 MiB files.
    """
    config = session.config
    if session.restart is not None:
        log("restarting the servers for scenario 5")
        session.restart()
    scenario = Scenario(
        "s5",
        "Scenario 5: server memory, four uploads at once",
        "MiB",
        "four distinct uncompressed RGBA TIFFs of random pixels at once, 8 MiB chunks "
        "(pixdrop's client sends files up to 8 MiB in one request), on servers started "
        "afresh for this scenario and warmed up with one untimed run on 1 MiB files",
        extra={"sizes": list(config.memory_sizes)},
    )
    warm_up(session, memory(config))
    for size in config.memory_sizes:
        log(f"writing four {size // MiB} MiB payloads")
        first = write_tiff(session.work / "memory-0.tif", size)
        payloads = [first]
        for index in range(1, 4):
            path = session.work / f"memory-{index}.tif"
            shutil.copyfile(first.path, path)
            payloads.append(Payload(path, first.size, "", first.data_offset))
        os.sync()

        def before(contender: Contender, payloads: list[Payload] = payloads) -> None:
            for payload in payloads:
                vary(payload, session.serial())

        session.rounds(
            scenario,
            memory(config),
            config.memory_rounds,
            lambda n, payloads=payloads: [p.path for p in payloads],
            before,
            lambda run: (
                f"peak RSS {run['rss_main'] / MiB:.0f} MiB (tree {run['rss_tree'] / MiB:.0f} MiB)"
            ),
            tag={"size": size},
        )
        for payload in payloads:
            payload.path.unlink()
    return scenario


def warm_up(session: Session, contenders: list[Contender]) -> None:
    """One untimed, unrecorded run of each contender on four 1 MiB files: a fresh server
    loads modules and fills caches on its first requests, which is no growth with size."""
    log("warm-up (untimed)")
    files = []
    for index in range(4):
        payload = write_tiff(session.work / f"warm-{index}.tif", MiB)
        files.append(payload.path)
    for contender in contenders:
        if session.skip_reason(contender) is None:
            try:
                session.runner.run(contender, files)
            except RunFailed as exc:
                log(f"  warm-up of {contender.label} failed: {exc}")
            session.after_run(contender)
    for path in files:
        path.unlink()


def thumbnails(session: Session) -> Scenario:
    """Scenario 6: a 256 px thumbnail of a 24 MP JPEG, cold: libvips, Pillow, pixdrop."""
    config = session.config
    photo = data.photo_24mp(session.cache)
    scenario = Scenario(
        "s6",
        "Scenario 6: 256 px thumbnail of a 24 MP JPEG, cold",
        "ms",
        f"6000 x 4000 JPEG, {photo.stat().st_size / 1e6:.1f} MB, made from tests/data/rocket.jpg",
    )
    contenders = [
        Contender("pyvips", "libvips (pyvips), pixdrop's code path", None, "pyvips"),
        Contender("pillow", "Pillow (draft mode, thumbnail)", None, "pillow"),
        Contender("pixdrop-server", "pixdrop server · GET /v1/images/{id}/thumb", PIX, "http"),
    ]
    started = time.monotonic()
    for contender in contenders:
        row = scenario.row(contender)
        reason = session.skip_reason(contender)
        if reason:
            row["skipped"] = reason
    active = [c for c in contenders if not scenario.row(c)["skipped"]]
    for number in range(config.rounds):
        shift = number % len(active)
        log(f"s6 round {number + 1}/{config.rounds}")
        for contender in active[shift:] + active[:shift]:
            row = scenario.row(contender)
            try:
                if contender.server is None:
                    run = _cold_thumbnail(session, contender.client, photo)
                else:
                    run = _server_thumbnail(session, photo, number)
            except (RunFailed, httpx.HTTPError, subprocess.CalledProcessError) as exc:
                row["failed"] = str(exc)
                session.failures.append(f"s6 {contender.label}: {exc}")
                continue
            run["round"] = number
            scenario.record(run)
            row["runs"].append(run)
            log(f"  {contender.label}: {run['seconds'] * 1000:.0f} ms")
    scenario.seconds = time.monotonic() - started
    return scenario


def _cold_thumbnail(session: Session, library: str, photo: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXDROP_")}
    paths = [str(p) for p in (session.runner.pixdrop_src, REPO) if p is not None]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    command = [sys.executable, "-m", "bench.images", "--child", library, str(photo), "--cold"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, check=False)
    if done.returncode != 0:
        raise RunFailed(done.stderr.strip()[-500:])
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "seconds": result["latencies"][0],
        "rss_peak": result["peak_kib"] * 1024,
        "rss_growth": max(0, result["peak_kib"] - result["idle_kib"]) * 1024,
        "bytes": result["bytes"],
    }


def _server_thumbnail(session: Session, photo: Path, number: int) -> dict[str, Any]:
    server = session.runner.servers[PIX]
    body = photo.read_bytes()
    body = body[:2] + data.comment_segment(f"pixdrop-bench s6 round {number}") + body[2:]
    with httpx.Client(base_url=server.url, timeout=600.0) as client:
        created = client.post(
            "/v1/images", content=body, headers={"Content-Type": "application/octet-stream"}
        )
        if created.status_code != 201:
            raise RunFailed(f"upload of the 24 MP photo: HTTP {created.status_code}")
        image = created.json()
        os.sync()
        time.sleep(SETTLE_SECONDS)
        with TreeSampler(server.pid) as sampler:
            began = time.perf_counter()
            response = client.get(f"/v1/images/{image['id']}/thumb", params={"format": "jpeg"})
            seconds = time.perf_counter() - began
        if response.status_code != 200:
            raise RunFailed(f"GET thumb: HTTP {response.status_code}")
        client.delete(
            f"/v1/images/{image['id']}",
            headers={"Authorization": f"Bearer {image['delete_token']}"},
        )
    usage = sampler.usage
    assert usage is not None
    return {
        "seconds": seconds,
        "bytes": len(response.content),
        "files": 1,
        "server_cpu": usage.cpu_seconds,
        "rss_main": usage.rss_main,
        "rss_tree": usage.rss_tree,
        "anon_tree": usage.anon_tree,
    }
