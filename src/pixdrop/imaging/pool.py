"""A bounded pool of decoder processes; every job runs under a deadline.

Why processes, rather than threads or libvips' own kill flag:

* a thread that misses its deadline cannot be stopped: libvips releases the GIL and goes on
  decoding, holding a core and its memory for as long as the file makes it;
* libvips' kill flag (``vips_image_set_kill``, set from a progress callback) is looked at only
  between tiles of a pipeline, not inside a codec's header parsing or inflate loop, which is
  where hostile files spend their time;
* a codec crash (a bug hit by a crafted file) or the kernel's out-of-memory killer ends one
  worker, not the server.

A worker that misses its deadline is killed (SIGKILL); the next job starts a fresh one. At
most ``size`` jobs run at once; more wait their turn. A worker is a fresh interpreter running
``python -m pixdrop.imaging.worker`` (``worker.py``), which imports the jobs and libvips and
nothing of the server: forking a server that runs threads (and maybe libvips) is unsafe, and
``multiprocessing``'s ``spawn`` would re-import the server's ``__main__`` in every worker.
Jobs and replies travel pickled over a socket pair (a ``multiprocessing`` connection); the
event loop waits for the reply of a job whose messages are small (``SMALL_JOBS``), a worker
thread for the others.

Workers start on demand and a worker left idle for ``idle_timeout`` seconds is stopped: a
server that is not decoding holds no decoder memory (each worker is a Python process with
libvips, about 38 MiB at rest, more after a wide image). Starting one again costs about a
fifth of a second, paid by the first image after a quiet spell.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import socket
import subprocess
import sys
import time
import weakref
from multiprocessing.connection import Connection
from typing import Any

import anyio
from anyio import to_thread

from pixdrop import metrics

__all__ = ["JobTimeout", "WorkerCrashed", "WorkerPool"]


#: Jobs whose arguments (given no ``bytes``) and reply are a few hundred bytes: they are
#: sent and answered on the event loop, without a thread hand-off (``_Worker.call_here``:
#: about 0.1 ms less of the server's CPU per image).
SMALL_JOBS = frozenset({"inspect"})


class JobTimeout(Exception):
    """The job did not finish within its deadline; its worker was killed."""


class WorkerCrashed(Exception):
    """The worker died during the job (a codec crash or the out-of-memory killer)."""


#: Every worker still running, killed when the server's interpreter exits (as daemonic
#: ``multiprocessing`` children are), whichever way it gets there.
_LIVE: weakref.WeakSet[_Worker] = weakref.WeakSet()


@atexit.register
def _kill_all() -> None:
    for worker in list(_LIVE):
        worker.stop()


def _child_environment() -> dict[str, str]:
    """The server's environment, with its import path: a worker imports pixdrop from where the
    server did (a source tree, a benchmark's copy), not only from site-packages."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(path for path in sys.path if path)
    return env


class _Worker:
    def __init__(self) -> None:
        #: When it last finished a job (``time.monotonic()``): the idle reaper's clock.
        self.idle_since = time.monotonic()
        ours, theirs = socket.socketpair()
        try:
            self.process = subprocess.Popen(  # noqa: S603 (our interpreter, fixed arguments)
                [sys.executable, "-m", "pixdrop.imaging.worker", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                env=_child_environment(),
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        _LIVE.add(self)

    def call(self, name: str, args: tuple[Any, ...], timeout: float) -> tuple[Any, ...]:
        try:
            self.conn.send((name, args))
            if not self.conn.poll(timeout):
                raise JobTimeout(name)
            reply: tuple[Any, ...] = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise WorkerCrashed(name) from None
        return reply

    async def call_here(self, name: str, args: tuple[Any, ...], seconds: float) -> tuple[Any, ...]:
        """``call`` without a thread: the job goes out and its reply comes back on the event
        loop, which waits for the socket to turn readable. Only for jobs whose arguments and
        reply are small (a path, limits, an ``ImageDetails``): sending and receiving them
        cannot block. Past *seconds*, ``JobTimeout``. A cancelled wait leaves the worker mid-job;
        the caller stops it."""
        loop = asyncio.get_running_loop()
        fd = self.conn.fileno()
        ready: asyncio.Future[None] = loop.create_future()

        def readable() -> None:
            if not ready.done():
                ready.set_result(None)

        try:
            self.conn.send((name, args))
            loop.add_reader(fd, readable)
            try:
                with anyio.move_on_after(seconds) as waiting:
                    await ready
            finally:
                loop.remove_reader(fd)
                # uvloop leaves a socket it watched non-blocking; recv here and a thread's
                # recv of a later job's reply both need it blocking.
                os.set_blocking(fd, True)
            if waiting.cancelled_caught:
                raise JobTimeout(name)
            reply: tuple[Any, ...] = self.conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            raise WorkerCrashed(name) from None
        return reply

    def stop(self) -> None:
        _LIVE.discard(self)
        with contextlib.suppress(ProcessLookupError):
            self.process.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        self.conn.close()


class WorkerPool:
    """At most *size* worker processes; :meth:`run` sends one job to an idle one."""

    def __init__(self, size: int, timeout: float, idle_timeout: float | None = 30.0) -> None:
        self.size = size
        self.timeout = timeout
        #: Seconds an idle worker lives (``None``: for ever).
        self.idle_timeout = idle_timeout
        self._reaper: asyncio.TimerHandle | None = None
        #: A worker started by prepare(), on its way.
        self._starting: asyncio.Future[_Worker] | None = None
        self._limiter = anyio.CapacityLimiter(size)
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._closed = False

    async def run(self, name: str, *args: Any, deadline: float | None = None) -> tuple[Any, ...]:
        """The worker's reply to job *name*: ``("ok", value)``, ``("refused", detail,
        fields)`` or ``("failed", message)``. Raise ``JobTimeout`` or ``WorkerCrashed``."""
        metrics.DECODE_QUEUE.inc()
        try:
            await self._limiter.acquire()
        finally:
            metrics.DECODE_QUEUE.dec()
        try:
            return await self._run(name, args, deadline)
        finally:
            self._limiter.release()

    async def _run(
        self, name: str, args: tuple[Any, ...], deadline: float | None
    ) -> tuple[Any, ...]:
        if self._closed:
            raise RuntimeError("the image worker pool is closed")
        starting = self._starting
        if not self._idle and starting is not None:
            # The worker prepare() started is nearly there: wait for it, not for a second.
            with contextlib.suppress(Exception):
                await asyncio.shield(starting)
            self._prepared(starting)  # unless its callback already took it
        worker = self._idle.pop() if self._idle else await self._start()
        metrics.DECODE_RUNNING.inc()
        started = time.perf_counter()
        timeout = self.timeout if deadline is None else deadline
        try:
            if name in SMALL_JOBS and not any(isinstance(arg, bytes) for arg in args):
                reply = await worker.call_here(name, args, timeout)
            else:  # bytes may go out, or come back (a variant): a thread waits for them
                reply = await to_thread.run_sync(worker.call, name, args, timeout)
        except BaseException as exc:
            # Timed out, crashed or cancelled: its state is unknown, so it goes.
            if isinstance(exc, JobTimeout | WorkerCrashed):
                reason = "timeout" if isinstance(exc, JobTimeout) else "crashed"
                metrics.DECODE_FAILURES.labels(name, reason).inc()
            self._all.discard(worker)
            with anyio.CancelScope(shield=True):  # a cancelled job's worker must still go
                await to_thread.run_sync(worker.stop)
            raise
        finally:
            metrics.DECODE_RUNNING.dec()
            metrics.DECODE_SECONDS.labels(name).observe(time.perf_counter() - started)
        if self._closed:
            await to_thread.run_sync(worker.stop)
        else:
            worker.idle_since = time.monotonic()
            self._idle.append(worker)
            self._arm_reaper()
        return reply

    @property
    def running(self) -> int:
        """How many worker processes exist (busy or idle)."""
        return len(self._all)

    def _arm_reaper(self) -> None:
        if self.idle_timeout is None or self._reaper is not None or not self._idle:
            return
        oldest = min(worker.idle_since for worker in self._idle)
        delay = max(0.0, oldest + self.idle_timeout - time.monotonic())
        self._reaper = asyncio.get_running_loop().call_later(delay, self._reap)

    def _reap(self) -> None:
        """Stop the workers idle for ``idle_timeout`` or more (in a thread: ``join`` blocks).

        Runs on the event loop, like ``_run``'s pops and appends, so a worker is never taken
        for a job while it is being stopped."""
        self._reaper = None
        assert self.idle_timeout is not None
        due = time.monotonic() - self.idle_timeout
        stale = [worker for worker in self._idle if worker.idle_since <= due]
        if stale:
            self._idle = [worker for worker in self._idle if worker.idle_since > due]
            loop = asyncio.get_running_loop()
            for worker in stale:
                self._all.discard(worker)
                loop.run_in_executor(None, worker.stop)
        self._arm_reaper()

    async def _start(self) -> _Worker:
        worker = await to_thread.run_sync(_Worker)
        self._all.add(worker)
        return worker

    def prepare(self) -> None:
        """Start one worker in the background if none is idle and there is room for one: a
        job is coming (an upload opened), and starting a worker takes about a quarter of a
        second. Returns at once; must be called on the event loop."""
        if self._closed or self._idle or self._starting or len(self._all) >= self.size:
            return
        loop = asyncio.get_running_loop()
        self._starting = loop.run_in_executor(None, _Worker)
        self._starting.add_done_callback(self._prepared)

    def _prepared(self, started: asyncio.Future[_Worker]) -> None:
        """Take the worker prepare() started (once: called back, or by a job first)."""
        if self._starting is not started:
            return
        self._starting = None
        if started.cancelled() or started.exception() is not None:
            return  # the job that comes starts its own, and reports what goes wrong
        worker = started.result()
        if self._closed or len(self._all) >= self.size:
            asyncio.get_running_loop().run_in_executor(None, worker.stop)
            return
        self._all.add(worker)
        worker.idle_since = time.monotonic()
        self._idle.append(worker)
        self._arm_reaper()

    async def stop_idle(self) -> None:
        """Stop the idle workers now (the busy ones finish their jobs)."""
        idle, self._idle = self._idle, []
        for worker in idle:
            self._all.discard(worker)
            await to_thread.run_sync(worker.stop)

    async def close(self) -> None:
        """Stop every worker (a job still running is killed with its worker)."""
        self._closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            self._reaper = None
        workers, self._all, self._idle = list(self._all), set(), []
        for worker in workers:
            await to_thread.run_sync(worker.stop)
