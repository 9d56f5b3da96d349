"""The three ways services claim a key, all on leases (``services/leases.py``), so that they
hold across processes and nodes and no database connection is held meanwhile:

* ``hold`` (a chunk, a completion): one try; ``LeaseBusy`` if another request has it;
* ``hold_waiting`` (linking a blob, rendering a variant once): wait for a short section to end;
* ``take_over`` (a resumable upload's writer): ask the current holder to step aside, and wait
  for it up to ``lock_wait`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager

import anyio

from pixdrop import metrics
from pixdrop.errors import Conflict
from pixdrop.ports import LeaseBusy
from pixdrop.services.leases import LeaseKeeper

__all__ = ["LeaseLocks"]


class LeaseLocks:
    """Claims on keys for the services (see the module docstring)."""

    def __init__(self, keeper: LeaseKeeper) -> None:
        self.keeper = keeper

    def hold(self, key: str) -> AbstractAsyncContextManager[object]:
        """Hold *key* while the block runs; ``LeaseBusy`` at once if it is held elsewhere."""
        return self.keeper.hold(key)

    @asynccontextmanager
    async def take_over(self, key: str, on_stop: Callable[[], None]) -> AsyncIterator[object]:
        """Hold *key*, asking a current holder to step aside (``LeaseBusy`` if it does not
        within ``lock_wait``); *on_stop* runs if a newer request asks this one to."""
        started = time.monotonic()
        async with AsyncExitStack() as stack:
            try:
                held = await stack.enter_async_context(
                    self.keeper.hold(key, take_over=True, on_stop=on_stop)
                )
            except LeaseBusy:
                metrics.LOCK_GIVEUPS.labels("writer").inc()
                raise
            finally:
                metrics.LOCK_WAIT.labels("writer").observe(time.monotonic() - started)
            yield held

    @asynccontextmanager
    async def hold_waiting(self, key: str, patience: float = 30.0) -> AsyncIterator[None]:
        """Hold *key*, retrying while it is held elsewhere; ``Conflict`` after *patience* s.

        Only for sections that take milliseconds (linking a blob, recording a row) or that
        others wait for anyway (rendering a variant once): a chunk write, which lasts as long
        as its request body, is refused at once instead (``ChunkBusy``).
        """
        started = time.monotonic()
        deadline = started + patience
        delay = 0.005
        kind = key.partition("/")[0]  # blob, render: a fixed set, fit for a metric label
        async with AsyncExitStack() as stack:
            while True:
                try:
                    await stack.enter_async_context(self.keeper.hold(key))
                    break
                except LeaseBusy:
                    if time.monotonic() > deadline:
                        metrics.LOCK_GIVEUPS.labels(kind).inc()
                        raise Conflict(
                            "The server is busy with the same image; try again in a moment."
                        ) from None
                    await anyio.sleep(delay)
                    delay = min(delay * 2, 0.2)
            metrics.LOCK_WAIT.labels(kind).observe(time.monotonic() - started)
            yield
