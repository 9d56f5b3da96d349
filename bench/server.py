"""The server under test: the real ``python -m pixdrop serve`` in a subprocess on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import httpx

HEALTH_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # A stray PIXDROP_* variable would change (or, if unknown, stop) the server under test.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXDROP_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class BenchServer:
    """``pixdrop serve`` with its data under *data_dir*; stderr goes to *log_path*.

    *extra_args* are more ``pixdrop serve`` flags; *env* adds to (or overrides) the
    environment the server inherits, e.g. ``LD_PRELOAD`` or ``PYTHONPATH``.
    """

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        database_url: str | None = None,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = [
            sys.executable, "-m", "pixdrop", "serve",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--data-dir", str(data_dir),
            "--no-access-log",
            "--max-request-size", "4GiB",
        ]  # fmt: skip
        if database_url:
            self.command += ["--database-url", database_url]
        self.command += list(extra_args)
        self.env = _server_env(env)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self.process is None:
            raise RuntimeError("the server is not running")
        return self.process.pid

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + HEALTH_TIMEOUT
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise RuntimeError(f"pixdrop exited before it was healthy:\n{self.log_tail()}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"pixdrop not healthy after {HEALTH_TIMEOUT}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """SIGTERM the server's process group; SIGKILL it if it is still there after 10 s."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT)

    def __enter__(self) -> BenchServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
