"""Waiting on a non-blocking ``Locker`` for short critical sections."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import anyio

from pixdrop.errors import Conflict
from pixdrop.ports import LockBusy, Locker


@asynccontextmanager
async def hold_waiting(locker: Locker, key: str, patience: float = 30.0) -> AsyncIterator[None]:
    """Hold *key*, retrying while it is held elsewhere; ``Conflict`` after *patience* seconds.

    Only for sections that take milliseconds (linking a blob, recording a row): a chunk write,
    which lasts as long as its request body, is refused at once instead (``ChunkBusy``).
    """
    deadline = time.monotonic() + patience
    delay = 0.005
    async with AsyncExitStack() as stack:
        while True:
            try:
                await stack.enter_async_context(locker.hold(key))
                break
            except LockBusy:
                if time.monotonic() > deadline:
                    raise Conflict(
                        "The server is busy with the same image; try again in a moment."
                    ) from None
                await anyio.sleep(delay)
                delay = min(delay * 2, 0.2)
        yield
