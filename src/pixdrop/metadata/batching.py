"""Group commit: a process's SQLite writes, queued and committed together.

SQLite has one writer at a time. Writers on worker threads that collide do not queue: the loser
gets ``SQLITE_BUSY`` and its busy handler sleeps (1, 2, 5, 10... ms) before it tries again,
and with ``synchronous=FULL`` every commit is also an fsync of the log. With 16 chunks in flight
that made p99 latency 250 ms.

:class:`GroupCommit` takes the writes of one process instead. A write joins a queue and a
worker thread waits for the commit lock; the thread that gets it takes the whole queue and runs
it as one transaction, each write in a savepoint of its own, so one write's error rolls back
that write alone and is raised to its own caller. One commit, and one fsync, then stands for
every write that queued up while the previous batch was being committed. A lone write runs
without a savepoint, and costs what it did before. Batches are committed one at a time, so
they share one connection, held between them rather than taken from the pool each time
(about 50 us of CPU less per commit, measured).

A caller always waits for its write's outcome, even when cancelled: it must never walk away
from a write that may still commit. The locks are threads' locks, so the store works from any
event loop, or from several.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from anyio import to_thread
from sqlalchemy import Connection, Engine

from pixdrop.tasks import Outcome

T = TypeVar("T")


class _Write(Generic[T]):
    __slots__ = ("done", "operation", "outcome")

    def __init__(self, operation: Callable[[Connection], T]) -> None:
        self.operation = operation
        self.done = False
        self.outcome: Outcome[T] = Outcome()


class GroupCommit:
    """Run write transactions on *engine*, batching those that wait for one another."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._queue: list[_Write[Any]] = []
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        #: The connection of every batch (only under the commit lock); a failed batch's is
        #: given back, and the next batch takes a fresh one.
        self._conn: Connection | None = None

    async def run(self, operation: Callable[[Connection], T]) -> T:
        """Run *operation* in a transaction (perhaps shared); return or raise what it did."""
        write: _Write[T] = _Write(operation)
        with self._queue_lock:
            self._queue.append(write)
        # Not abandoned on cancellation (anyio's default): the caller learns the outcome.
        await to_thread.run_sync(self._drain, write)
        return write.outcome.unwrap()

    def _drain(self, write: _Write[Any]) -> None:
        with self._commit_lock:
            if write.done:  # committed (or failed) in the batch of a thread before this one
                return
            with self._queue_lock:
                batch, self._queue = self._queue, []
            self._commit(batch)

    def close(self) -> None:
        """Give the held connection back to the engine's pool (before it is disposed)."""
        with self._commit_lock:
            self._release()

    def _release(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()

    def _commit(self, batch: list[_Write[Any]]) -> None:
        try:
            if self._conn is None:
                self._conn = self._engine.connect()
            conn = self._conn
            with conn.begin():
                if len(batch) == 1:
                    batch[0].outcome.value = batch[0].operation(conn)
                else:
                    for write in batch:
                        try:
                            with conn.begin_nested():
                                write.outcome.value = write.operation(conn)
                        except Exception as exc:
                            write.outcome.error = exc
        except BaseException as exc:  # the commit failed (or the lone write): none stands
            self._release()
            for write in batch:
                if write.outcome.error is None:
                    write.outcome = Outcome(error=exc)
        finally:
            for write in batch:
                write.done = True
