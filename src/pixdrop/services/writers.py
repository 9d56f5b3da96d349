"""One writer per resumable upload, and a newer request may take over from an older one.

A client that lost its connection often retries before the server has noticed the old request
is dead: its body is just quiet. Waiting for the old request to time out would stall the
resume, so the newer request asks it to stop instead. The old request then records what it has
(the bytes reached the disk) and answers 409; the newer one takes the lock and goes on.

The lock (``Locker``) works across processes; the request to stop reaches only a writer in the
same process (a request in another process ends at its idle timeout). If the lock stays held
for ``lock_wait`` seconds, the newer request is refused with 423 and ``Retry-After``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from pixdrop.errors import UploadLocked
from pixdrop.ports import LockBusy, Locker
from pixdrop.services.appends import AppendBody

__all__ = ["WriterSlot", "Writers"]


class WriterSlot:
    """The registration of the request that currently writes an upload in this process."""

    def __init__(self) -> None:
        #: Set once the request reads its body: what a newer request asks to stop.
        self.body: AppendBody | None = None


class Writers:
    """The write locks of resumable uploads, with takeover inside this process."""

    def __init__(self, locker: Locker, lock_wait: float) -> None:
        self.locker = locker
        self.lock_wait = lock_wait
        self._current: dict[str, WriterSlot] = {}

    @asynccontextmanager
    async def hold(self, upload_id: str) -> AsyncIterator[WriterSlot]:
        """Hold the upload's write lock, asking a current writer to step aside."""
        deadline = time.monotonic() + self.lock_wait
        async with AsyncExitStack() as stack:
            while True:
                try:
                    await stack.enter_async_context(self.locker.hold(f"resumable/{upload_id}"))
                    break
                except LockBusy:
                    current = self._current.get(upload_id)
                    if current is not None and current.body is not None:
                        current.body.stop()
                    if time.monotonic() > deadline:
                        error = UploadLocked(
                            f"Upload {upload_id} is being written by another request that did "
                            f"not yield within {self.lock_wait:g} s; retry shortly."
                        )
                        error.headers["Retry-After"] = "1"
                        raise error from None
                    await anyio.sleep(0.01)
            slot = WriterSlot()
            self._current[upload_id] = slot
            try:
                yield slot
            finally:
                if self._current.get(upload_id) is slot:
                    del self._current[upload_id]
