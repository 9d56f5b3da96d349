"""Lockers: exclusive, non-blocking locks that vanish with their holder.

* ``FileLocker`` serves one machine (any number of worker processes): a POSIX record lock on
  one byte of a shared lock file, at an offset derived from the key. The kernel drops the lock
  when the process dies, so a ``kill -9`` never leaves an upload locked.
* ``PostgresLocker`` serves many machines sharing one PostgreSQL: a session advisory lock held
  on a dedicated connection; a dead node's connection closes and its locks go with it.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from anyio import to_thread
from sqlalchemy import Connection, Engine, text

from pixdrop.ports import LockBusy


def _key_number(key: str, bits: int) -> int:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> (64 - bits)


class FileLocker:
    """``Locker`` for processes on one machine (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # POSIX record locks belong to the process and are all released when *any* descriptor
        # of the file is closed, so the process keeps exactly one descriptor open for life.
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        # Record locks do not exclude threads or tasks of the same process: track those here.
        self._held: set[int] = set()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        offset = _key_number(key, 62)
        if offset in self._held:
            raise LockBusy(key)
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError as exc:
            raise LockBusy(key) from exc
        self._held.add(offset)
        try:
            yield
        finally:
            self._held.discard(offset)
            fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)

    def close(self) -> None:
        os.close(self._fd)


class PostgresLocker:
    """``Locker`` backed by PostgreSQL session advisory locks (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def _call(conn: Connection, function: str, number: int) -> bool:
        result = conn.execute(text(f"SELECT {function}(:k)"), {"k": number}).scalar_one()
        conn.commit()
        return bool(result)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        number = _key_number(key, 63)
        conn = await to_thread.run_sync(self._engine.connect)
        try:
            if not await to_thread.run_sync(self._call, conn, "pg_try_advisory_lock", number):
                raise LockBusy(key)
            try:
                yield
            finally:
                await to_thread.run_sync(self._call, conn, "pg_advisory_unlock", number)
        finally:
            await to_thread.run_sync(conn.close)

    def close(self) -> None:
        self._engine.dispose()
