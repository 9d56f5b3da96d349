"""Resident memory of another process, read from ``/proc/PID/status`` (Linux only)."""

from __future__ import annotations

import threading
from types import TracebackType

#: How often the sampler reads VmRSS, in seconds.
SAMPLE_INTERVAL = 0.02


def read_rss(pid: int) -> int:
    """The process's resident set size in bytes (``VmRSS``); 0 once it has exited."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024  # the kernel reports kB
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class RssSampler:
    """Samples a process's VmRSS every 20 ms in a thread while the ``with`` block runs.

    ``peak`` is the largest value seen, including one reading at entry and one at exit, so a
    block shorter than the interval still gets a figure.
    """

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _take(self) -> None:
        self.peak = max(self.peak, read_rss(self.pid))
        self.samples += 1

    def _run(self) -> None:
        # Ends when the block exits; wait() returns True then, so the loop is bounded by it.
        while not self._stop.wait(self.interval):
            self._take()

    def __enter__(self) -> RssSampler:
        self._take()
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._take()
