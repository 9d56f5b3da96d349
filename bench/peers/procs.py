"""A server's process tree, read from ``/proc`` (Linux only): CPU seconds and peak RSS.

A server under test may be more than one process: pixdrop decodes images in worker processes
it spawns, so its cost is the whole tree's. ``TreeSampler`` follows the tree while a figure
runs: every 20 ms it reads ``VmRSS`` and ``RssAnon`` of every process in it, and every few
samples it looks for new children (``/proc/PID/task/TID/children``). CPU time is ``utime +
stime`` of every process seen, at the start and at the end; a process that exits meanwhile
keeps the last figure it was seen with (its last 20 ms or so are lost).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from types import TracebackType

SAMPLE_INTERVAL = 0.02
#: Look for new children every this many samples (a decoder pool starts on first use).
REFRESH_EVERY = 10
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The direct children of *pid*, from every one of its threads."""
    found: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children", encoding="ascii") as text:
                    found += [int(part) for part in text.read().split()]
            except (FileNotFoundError, ProcessLookupError):
                continue
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def tree(pid: int) -> list[int]:
    """*pid* and all its descendants."""
    todo, seen = [pid], []
    while todo:
        current = todo.pop()
        seen.append(current)
        todo += children(current)
    return seen


def cpu_ticks(pid: int) -> int | None:
    """``utime + stime`` of *pid* in clock ticks; None once it has gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # After "pid (comm)": state is field 3, utime 14 and stime 15 (proc(5)), here 0-based 11, 12.
    return int(fields[11]) + int(fields[12])


@dataclass(frozen=True, slots=True)
class Memory:
    rss: int  # VmRSS, bytes
    anon: int  # RssAnon, bytes: heap and stacks, not mapped files or shared libraries


def memory(pid: int) -> Memory | None:
    rss = anon = None
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    if rss is None:
        return None  # a zombie has no memory lines
    return Memory(rss, anon or 0)


@dataclass(frozen=True, slots=True)
class TreeUsage:
    """What a server's process tree used while one figure ran."""

    cpu_seconds: float
    #: Peak VmRSS of the server's main process.
    rss_main: int
    #: Peak of the sum of VmRSS over the whole tree (the main process and its workers).
    rss_tree: int
    #: Peak of the sum of RssAnon over the tree: the same without mapped files.
    anon_tree: int
    processes: int


class TreeSampler:
    """Samples the tree under *pid* while the ``with`` block runs; ``usage`` afterwards."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL) -> None:
        self.pid = pid
        self.interval = interval
        self._pids = tree(pid)
        self._start: dict[int, int] = {}
        self._last: dict[int, int] = {}
        self._peaks = [0, 0, 0]
        self._seen: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)
        self.usage: TreeUsage | None = None

    def _ticks(self) -> None:
        for pid in self._pids:
            ticks = cpu_ticks(pid)
            if ticks is not None:
                self._last[pid] = ticks
                self._start.setdefault(pid, ticks if pid in self._initial else 0)

    def _take(self) -> None:
        main = tree_rss = tree_anon = 0
        for pid in self._pids:
            found = memory(pid)
            if found is None:
                continue
            self._seen.add(pid)
            tree_rss += found.rss
            tree_anon += found.anon
            if pid == self.pid:
                main = found.rss
        self._peaks = [
            max(a, b) for a, b in zip(self._peaks, (main, tree_rss, tree_anon), strict=True)
        ]

    def _run(self) -> None:
        count = 0
        while not self._stop.wait(self.interval):
            count += 1
            if count % REFRESH_EVERY == 0:
                self._pids = tree(self.pid)
                self._ticks()
            self._take()

    def __enter__(self) -> TreeSampler:
        self._initial = set(self._pids)
        self._ticks()
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
        self._pids = tree(self.pid)
        self._ticks()
        self._take()
        ticks = sum(self._last[pid] - self._start.get(pid, 0) for pid in self._last)
        self.usage = TreeUsage(
            cpu_seconds=ticks / CLOCK_TICKS,
            rss_main=self._peaks[0],
            rss_tree=self._peaks[1],
            anon_tree=self._peaks[2],
            processes=len(self._seen),
        )
