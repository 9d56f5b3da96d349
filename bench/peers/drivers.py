"""Contenders and how one of their runs is measured.

A contender is a server and a client: ``pixdrop`` (``pixdrop_client.py``, in this Python),
``tus-js-client`` (``node/tus_client.mjs``, in the cached Node.js environment) or ``tuspy``
(``tuspy_client.py``, in the cached venv); or a limit or the floor (``floor.py``), measured in
this process. A client runs as its own process, times its own work from its first request to
its last answer (its start-up and imports are not timed) and prints the figures as JSON.
Meanwhile the harness samples the server's process tree (``procs.TreeSampler``): CPU seconds
and peak RSS, from the client's start to its exit. What a run stored is deleted after that
(pixdrop's images with their delete tokens, a peer's files by ``Session.after_run``), so no
row's server CPU includes deleting.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench import baselines
from bench.peers import floor
from bench.peers.procs import TreeSampler
from bench.peers.servers import Server

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DRIVER_TIMEOUT = 3600.0


class RunFailed(Exception):
    """A client reported a failure (or the server died); the message says what."""


@dataclass(frozen=True, slots=True)
class Contender:
    """One row of a scenario's table."""

    id: str
    label: str
    #: Key of the server (``Runner.servers``), or None for a baseline.
    server: str | None
    #: ``pixdrop``, ``tus-js-client``, ``tuspy``; ``loopback``, ``disk`` or ``floor`` (no server).
    client: str
    #: chunk_size, parallel, concurrency, creation_with_upload (see the drivers); for the
    #: floor kind, concurrency and chunk_size (``floor.measure``).
    job: dict[str, Any] = field(default_factory=dict)
    #: tus extensions the server must list for this row to run.
    needs: tuple[str, ...] = ()
    note: str = ""


def export_rev(rev: str, work: Path) -> tuple[Path, str]:
    """``src/`` as committed at *rev*, exported into *work*; and how to name it."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    target = work / "pixdrop-rev"
    target.mkdir()
    archive = subprocess.run(
        ["git", "archive", head, "src"], cwd=REPO, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target / "src", f"commit {head}, exported with git archive"


def percentile(values: list[float], share: float) -> float:
    """The *share* quantile (0-1) by the nearest-rank method."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-share * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass
class Runner:
    """Runs contenders against the servers; keeps what the clients need to be started."""

    servers: dict[str, Server]
    work: Path
    node: str | None = None
    node_dir: Path | None = None
    peer_python: Path | None = None
    pixdrop_src: Path | None = None

    def client_command(self, client: str, job_path: Path) -> tuple[list[str], Path, dict[str, str]]:
        env = dict(os.environ)
        if client == "pixdrop":
            env["PYTHONPATH"] = os.pathsep.join(
                [str(p) for p in (self.pixdrop_src, REPO) if p is not None]
                + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
            )
            command = [sys.executable, "-m", "bench.peers.pixdrop_client", str(job_path)]
            return command, REPO, {k: v for k, v in env.items() if not k.startswith("PIXDROP_")}
        if client == "tus-js-client":
            assert self.node
            assert self.node_dir
            return [self.node, str(self.node_dir / "tus_client.mjs"), str(job_path)], REPO, env
        if client == "tuspy":
            assert self.peer_python
            command = [str(self.peer_python), str(HERE / "tuspy_client.py"), str(job_path)]
            return command, REPO, env
        raise ValueError(f"unknown client {client}")

    def _drive(self, contender: Contender, files: list[Path]) -> dict[str, Any]:
        """Run the client; what it printed."""
        assert contender.server is not None
        server = self.servers[contender.server]
        endpoint = server.url if contender.client == "pixdrop" else server.endpoint
        job = {"endpoint": endpoint, "files": [str(f) for f in files], **contender.job}
        if contender.client == "pixdrop":
            job["keep"] = True  # deleted by run(), after the server's CPU is taken
        with tempfile.NamedTemporaryFile(
            "w", suffix=".json", dir=self.work, delete=False
        ) as handle:
            json.dump(job, handle)
        job_path = Path(handle.name)
        command, cwd, env = self.client_command(contender.client, job_path)
        try:
            process = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            try:
                out, err = process.communicate(timeout=DRIVER_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
                raise RunFailed(f"{contender.client} took more than {DRIVER_TIMEOUT}s") from None
            # communicate() has reaped the child: its CPU is in our RUSAGE_CHILDREN now.
        finally:
            job_path.unlink(missing_ok=True)
        if process.returncode != 0:
            message = err.decode(errors="replace").strip().splitlines()[-3:]
            tail = server.log_tail(1500) if not server.alive() else ""
            raise RunFailed(" / ".join(message) + (f"\nserver log: {tail}" if tail else ""))
        lines = out.decode(errors="replace").strip().splitlines()
        if not lines:
            raise RunFailed(f"{contender.client} printed nothing")
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def run(self, contender: Contender, files: list[Path]) -> dict[str, Any]:
        """One run of *contender* on *files*: its figures, the server's CPU and memory."""
        if contender.server is None:
            return self._baseline(contender, files)
        server = self.servers[contender.server]
        before = _children_cpu()
        with TreeSampler(server.pid) as sampler:
            result = self._drive(contender, files)
        usage = sampler.usage
        assert usage is not None
        latencies = result.pop("latencies", [])
        run: dict[str, Any] = {
            "seconds": result["seconds"],
            "bytes": result["bytes"],
            "requests": result["requests"],
            "files": len(files),
            "server_cpu": usage.cpu_seconds,
            "rss_main": usage.rss_main,
            "rss_tree": usage.rss_tree,
            "anon_tree": usage.anon_tree,
            "processes": usage.processes,
            "client_cpu": _children_cpu() - before,
        }
        _latencies(run, latencies)
        if not server.alive():
            raise RunFailed(f"{server.label} died:\n{server.log_tail()}")
        _delete_images(server.url, result.get("images") or [])
        return run

    def _baseline(self, contender: Contender, files: list[Path]) -> dict[str, Any]:
        if contender.client == "floor":
            try:
                run = floor.measure(contender.job, files, self.work / "floor")
            except Exception as exc:  # a libvips error, a full disk: the row fails, not the run
                raise RunFailed(f"floor: {type(exc).__name__}: {exc}") from exc
            _latencies(run, run.pop("latencies"))
            return run
        data = files[0].read_bytes()
        scratch = self.work / "disk-baseline.bin"
        started = time.perf_counter()
        if contender.client == "loopback":
            baselines.loopback(data)
        elif contender.client == "disk":
            baselines.disk(data, scratch)
        else:
            raise ValueError(contender.client)
        seconds = time.perf_counter() - started
        scratch.unlink(missing_ok=True)
        return {"seconds": seconds, "bytes": len(data), "requests": 0, "files": 1}


def _latencies(run: dict[str, Any], latencies: list[float]) -> None:
    """p50 and p99 of per-file *latencies* into *run* (nothing when there are none)."""
    if latencies:
        run["p50"] = statistics.median(latencies)
        run["p99"] = percentile(latencies, 0.99)


def _delete_images(url: str, images: list[list[str]]) -> None:
    """Delete the images a tus client's uploads created on pixdrop (untimed)."""
    with httpx.Client(base_url=url, timeout=120.0) as client:
        for image_id, token in images:
            response = client.delete(
                f"/v1/images/{image_id}", headers={"Authorization": f"Bearer {token}"}
            )
            if response.status_code not in (204, 404):
                raise RunFailed(f"deleting image {image_id}: HTTP {response.status_code}")


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
