"""Sample the server with py-spy while one scenario runs, and name its hottest functions.

py-spy (``pip install py-spy``; not a pixdrop dependency) attaches to the running server from
outside, so the server runs unmodified. It records only threads that are on a CPU (waiting
threads are left out), without pausing the server (``--nonblocking``). Time spent in C code
(hashing, ``pwritev``) is charged to the Python line that called it.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

RATE = 250  # samples per second
ATTACH_SECONDS = 1.0
_LINE = re.compile(r":\d+\)$")
#: Frames on every stack of the main thread: their cumulative share says nothing.
ENTRY_POINTS = ("pixdrop/__main__.py", "pixdrop/cli")


def py_spy() -> str:
    """The py-spy executable next to this Python, or on PATH; ``RuntimeError`` if missing."""
    local = Path(sys.executable).parent / "py-spy"
    found = str(local) if local.exists() else shutil.which("py-spy")
    if not found:
        raise RuntimeError("--profile needs py-spy: pip install py-spy")
    return found


@contextmanager
def record(
    pid: int, output: Path, *, subprocesses: bool = False, gil: bool = False
) -> Iterator[None]:
    """Record the process's stacks in py-spy's raw (collapsed) format to *output*.

    With *subprocesses*, its child processes too (each stack then starts with the process).
    With *gil*, only the thread holding the GIL is sampled: Python's CPU time, without the
    threads that wait in system calls (fsync, reads) that py-spy would otherwise count.
    """
    command = [
        py_spy(), "record", "--pid", str(pid), "--rate", str(RATE),
        "--format", "raw", "--nonblocking", "--output", str(output),
    ]  # fmt: skip
    if subprocesses:
        command.append("--subprocesses")
    if gil:
        command.append("--gil")
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(ATTACH_SECONDS)
        if spy.poll() is not None:
            error = spy.stderr.read().decode(errors="replace") if spy.stderr else ""
            raise RuntimeError(f"py-spy could not attach to {pid}: {error}")
        yield
    finally:
        if spy.poll() is None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(timeout=10)
        if spy.stderr:
            spy.stderr.close()


def _frame(text: str) -> str:
    """``name (path/to/file.py:123)`` without the line number, so lines of one function add up."""
    return _LINE.sub(")", text.strip())


@dataclass(frozen=True, slots=True)
class Hotspots:
    samples: int
    by_self: list[tuple[str, int]]
    by_cumulative: list[tuple[str, int]]


def hotspots(raw: Path, top: int = 5, own_code: str = "pixdrop/") -> Hotspots:
    """The *top* functions by self samples, and *own_code*'s functions by cumulative samples.

    Cumulative counts for the event loop, uvicorn and runpy frames would all be ~100 %, so
    that list is kept to pixdrop's own functions, the ones a change could speed up.
    """
    own: Counter[str] = Counter()
    cumulative: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            cumulative[frame] += count
    mine = [
        (frame, n)
        for frame, n in cumulative.most_common()
        if own_code in frame and not any(entry in frame for entry in ENTRY_POINTS)
    ]
    return Hotspots(total, own.most_common(top), mine[:top])


def render(spots: Hotspots, what: str) -> str:
    """The hotspots as two Markdown tables."""
    total = max(spots.samples, 1)
    lines = [f"### Profile: {what} ({spots.samples} on-CPU samples at {RATE} Hz)", ""]
    for title, rows in (("self", spots.by_self), ("cumulative, pixdrop code", spots.by_cumulative)):
        lines += [f"| function ({title}) | samples | share |", "|---|---:|---:|"]
        lines += [f"| `{name}` | {n} | {100 * n / total:.1f} % |" for name, n in rows]
        lines.append("")
    return "\n".join(lines)
