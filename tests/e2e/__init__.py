"""End-to-end tests: the real ``python -m pixdrop`` in a subprocess.

``ServerProcess`` starts a server and keeps its stderr in a file for the log checks; the HTTP
helpers (raw sockets, uploads, problem checks) come from ``tests.http.helpers``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pixdrop
from tests.http.helpers import free_port, wait_for_health

#: The ``src`` directory of the pixdrop the tests import, so the subprocess runs the same code.
SRC = str(Path(pixdrop.__file__).resolve().parents[1])


def pixdrop_env(**extra: str) -> dict[str, str]:
    """The test's environment without any ``PIXDROP_*`` variable, plus *extra*."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIXDROP_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (SRC, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def pixdrop_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "pixdrop", *args]


class ServerProcess:
    """``pixdrop serve`` on a free port; stdout and stderr go to files under *log_dir*."""

    def __init__(
        self,
        log_dir: Path,
        data_dir: Path,
        database_url: str,
        extra_args: Sequence[str] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.stderr_path = log_dir / f"serve-{self.port}.stderr"
        self.stdout_path = log_dir / f"serve-{self.port}.stdout"
        args = [
            "serve",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--data-dir", str(data_dir),
            "--database-url", database_url,
            *extra_args,
        ]  # fmt: skip
        with self.stderr_path.open("wb") as err, self.stdout_path.open("wb") as out:
            self.process = subprocess.Popen(
                pixdrop_command(*args),
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                env=pixdrop_env(**(env or {})),
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.process.poll() is None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_healthy(self, timeout: float = 30.0) -> None:
        try:
            wait_for_health(self.url, timeout, alive=self.alive)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- server stderr ---\n{self.stderr()[-3000:]}") from None

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and any worker processes)."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop within ten seconds."""
        if self.alive():
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
