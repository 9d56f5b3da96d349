"""The servers under test, each one process (plus pixdrop's decoder workers) on 127.0.0.1.

* ``pixdrop``: ``pixdrop serve`` (``bench.server.BenchServer``), one worker, SQLite in its
  data directory, with three flags the scenarios need: ``--max-request-size 4GiB`` (scenario
  2 sends 512 MiB in one request), ``--min-chunk-size 1KiB`` (scenario 4) and
  ``--decode-timeout 600`` (checking a 1 GiB image takes longer than the default 30 s).
  The rows that go through its tus endpoint (``/files/``) use the same server; the images
  their uploads create are deleted afterwards with the delete token pixdrop's last answer
  carries (``Pixdrop-Delete-Token``).
* ``pixdrop-nofsync``: the same with ``--no-fsync`` (or, for a pixdrop without that flag,
  with ``nofsync.so`` preloaded, which makes fsync return at once).
* ``tus-node``: ``node tus_server.mjs`` (@tus/server + @tus/file-store).
* ``tuspyserver``: tuspyserver's router under uvicorn (one worker, uvloop, httptools).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.server import BenchServer, free_port

HERE = Path(__file__).resolve().parent
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
PIXDROP_FLAGS = ("--min-chunk-size", "1KiB", "--decode-timeout", "600")
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}


@dataclass(frozen=True, slots=True)
class TusProbe:
    """What ``OPTIONS /files/`` said: absent (404), or the extensions it lists."""

    present: bool
    extensions: frozenset[str] = frozenset()
    status: int = 0


def pixdrop_has_flag(flag: str, env: Mapping[str, str]) -> bool:
    """Whether this pixdrop's ``serve`` takes *flag* (older ones lack ``--no-fsync``)."""
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "pixdrop", "serve", "--help"],
        capture_output=True,
        text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("PIXDROP_")}, **env},
    )
    return flag in done.stdout


def probe_tus(url: str) -> TusProbe:
    try:
        response = httpx.options(f"{url}/files/", headers=TUS_HEADERS, timeout=10.0)
    except httpx.HTTPError:
        return TusProbe(False)
    if response.status_code == 404 or response.status_code >= 500:
        return TusProbe(False, status=response.status_code)
    names = response.headers.get("tus-extension", "")
    return TusProbe(
        True, frozenset(n.strip() for n in names.split(",") if n.strip()), response.status_code
    )


@dataclass
class Server:
    """A running server: ``url`` is its base, ``endpoint`` where tus clients create uploads."""

    key: str
    label: str
    url: str
    data_dir: Path
    log_path: Path
    tus: TusProbe
    process: subprocess.Popen[bytes] | None = None
    pixdrop: BenchServer | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        if self.pixdrop is not None:
            return self.pixdrop.pid
        assert self.process is not None
        return self.process.pid

    @property
    def endpoint(self) -> str:
        return f"{self.url}/files/"

    def alive(self) -> bool:
        if self.pixdrop is not None:
            return self.pixdrop.process is not None and self.pixdrop.process.poll() is None
        return self.process is not None and self.process.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def wipe(self) -> None:
        """Remove every stored file of a peer (its uploads and their info files)."""
        for path in sorted(self.data_dir.rglob("*"), reverse=True):
            if path.is_file() or path.is_symlink():
                path.unlink(missing_ok=True)

    def stop(self) -> None:
        if self.pixdrop is not None:
            self.pixdrop.stop()
            return
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)


def start_pixdrop(
    key: str,
    label: str,
    work: Path,
    env: Mapping[str, str] | None = None,
    extra_args: Sequence[str] = (),
) -> Server:
    data_dir, log_path = work / key, work / f"{key}.log"
    bench = BenchServer(data_dir, log_path, extra_args=[*PIXDROP_FLAGS, *extra_args], env=env)
    bench.start()
    server = Server(key, label, bench.url, data_dir, log_path, probe_tus(bench.url), pixdrop=bench)
    return server


def start_process(
    key: str, label: str, command: Sequence[str], work: Path, cwd: Path | None = None
) -> Server:
    """A peer: *command* gets the port and the data directory as its last two arguments."""
    port = free_port()
    data_dir, log_path = work / key, work / f"{key}.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [*command, str(port), str(data_dir)],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    server = Server(key, label, url, data_dir, log_path, TusProbe(False), process=process)
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{label} exited before it was ready:\n{server.log_tail()}")
        server.tus = probe_tus(url)
        if server.tus.present:
            return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"{label} not ready after {READY_TIMEOUT}s:\n{server.log_tail()}")
