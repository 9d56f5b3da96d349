"""``LeaseKeeper``: hold leases (``ports.Leases``) while work runs, and take over from others.

A request that writes an upload or a chunk holds a lease on its key for as long as it works;
no database connection is held meanwhile. One background ticker per keeper (a keeper serves
a whole process) renews every lease the keeper holds, in one statement where the backend
can (:class:`RenewsInBulk`), every ``min(ttl / 3, poll)`` seconds, ``poll`` being
``min(0.25, lock_wait / 4)``; it sleeps, and touches no database, while nothing is held.

A newer request may take over (``hold(key, take_over=True)``): if the holder is a request of
this process, its ``on_stop`` is called at once; else the newer request sets the lease's stop
flag, which the holder's ticker sees at its next renewal (so within ``poll`` seconds) and
passes on to its ``on_stop``. The holder then ends its work and releases; the newer request
retries until then, for at most ``lock_wait`` seconds, and gives up with ``LeaseBusy``.
A lease the ticker finds lost (it lapsed and was taken) also calls ``on_stop``, once.

Inside this process the keeper also keeps requests for the same key apart (they share one
holder name, and the backend lets a holder re-acquire what it holds).

Run the ticker for the keeper's lifetime: ``async with keeper:``, or
``await task_group.start(keeper.run)``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from types import TracebackType
from typing import Protocol, runtime_checkable

import anyio
from anyio.abc import TaskStatus

from pixdrop.holders import new_holder
from pixdrop.ports import LeaseBusy, Leases

__all__ = ["HeldLease", "LeaseKeeper", "RenewsInBulk"]

log = logging.getLogger("pixdrop.leases")

#: Longest pause between two tries of a takeover (each try is an acquire and an ``ask_stop``).
RETRY_CAP = 0.05


@runtime_checkable
class RenewsInBulk(Protocol):
    """Optional ``Leases`` capability: renew every lease of a holder in one statement."""

    async def renew_held(self, holder: str, ttl: float) -> dict[str, bool]:
        """Extend each lease *holder* holds by *ttl* seconds; answer each renewed key and
        whether someone asked it to stop (a key that is missing was lost)."""


class HeldLease:
    """A lease a request holds through ``LeaseKeeper.hold`` (or waits for)."""

    __slots__ = ("_on_stop", "acquired", "ending", "gone", "key", "lost", "stopped")

    def __init__(self, key: str, on_stop: Callable[[], None] | None) -> None:
        self.key = key
        self._on_stop = on_stop
        #: The backend granted it (before that, the request is still waiting for it).
        self.acquired = False
        #: Someone asked the holder to stop, or the lease was lost; ``on_stop`` was called.
        self.stopped = False
        #: The ticker found it taken by someone else.
        self.lost = False
        #: Its release has begun: the ticker leaves it alone.
        self.ending = False
        #: Set once it is released and forgotten: a newer request of this process may go on.
        self.gone = anyio.Event()

    def stop(self) -> None:
        """Ask the request to step aside: call ``on_stop`` (once), or, if it is still waiting
        for the lease, make it give up with ``LeaseBusy``."""
        if self.stopped:
            return
        self.stopped = True
        if self.acquired and self._on_stop is not None:
            try:
                self._on_stop()
            except Exception:
                log.exception("on_stop of lease %s failed", self.key)


class LeaseKeeper:
    """Holds leases for the requests of one process; see the module docstring."""

    def __init__(
        self,
        leases: Leases,
        *,
        lock_wait: float,
        ttl: float = 10.0,
        holder: str | None = None,
    ) -> None:
        self.leases = leases
        self.lock_wait = lock_wait
        self.ttl = ttl
        #: This process's name in the lease table (``metadata.leases.new_holder``).
        self.holder = holder if holder is not None else new_holder()
        #: How soon a holder notices a stop flag.
        self.poll = min(0.25, lock_wait / 4)
        #: How often the ticker renews, while anything is held.
        self.interval = min(ttl / 3, self.poll)
        # key -> the request of this process that holds it, or waits for it.
        self._held: dict[str, HeldLease] = {}
        # Keys taken by lead(): renewed in bulk with the others, but not strays.
        self._led: set[str] = set()
        self._wake: anyio.Event | None = None
        #: The ticker waits for a first lease (nothing held at its last look).
        self._idle = False
        self._stack: AsyncExitStack | None = None

    # --- The ticker ---

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Renew the held leases until cancelled (the keeper's lifetime)."""
        if self._wake is not None:
            raise RuntimeError("this LeaseKeeper is already running")
        self._wake = anyio.Event()
        task_status.started()
        try:
            while True:
                if not any(entry.acquired for entry in self._held.values()):
                    self._idle = True
                    await self._wake.wait()
                    self._idle = False
                    self._wake = anyio.Event()
                    continue
                await anyio.sleep(self.interval)
                await self._renew()
        finally:
            self._wake = None

    async def __aenter__(self) -> LeaseKeeper:
        async with AsyncExitStack() as stack:
            tasks = await stack.enter_async_context(anyio.create_task_group())
            await tasks.start(self.run)
            stack.callback(tasks.cancel_scope.cancel)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.__aexit__(exc_type, exc, traceback)

    async def _renew(self) -> None:
        held = [e for e in self._held.values() if e.acquired and not e.ending]
        if not held:
            return
        try:
            if isinstance(self.leases, RenewsInBulk):
                renewed = await self.leases.renew_held(self.holder, self.ttl)
            else:
                renewed = {}
                for entry in held:
                    with suppress(LeaseBusy):  # lost: left out
                        renewed[entry.key] = await self.leases.renew(
                            entry.key, self.holder, self.ttl
                        )
        except Exception:  # the database is unreachable: try again at the next tick
            log.warning("renewing %d leases failed", len(held), exc_info=True)
            return
        for entry in held:
            if self._held.get(entry.key) is not entry or entry.ending:
                continue  # released meanwhile
            stop = renewed.get(entry.key)
            if stop is None:
                entry.lost = True
                log.warning("lease %s was lost", entry.key)
                entry.stop()
            elif stop:
                entry.stop()
        # Ours in the table but held by no request here: a release that failed. Release it
        # now, registered as held meanwhile so that no request of ours takes the key between.
        for key in renewed.keys() - self._held.keys() - self._led:
            stray = HeldLease(key, None)
            self._held[key] = stray
            try:
                with anyio.CancelScope(shield=True):
                    await self.leases.release(key, self.holder)
            except Exception:
                log.warning("releasing lease %s failed", key, exc_info=True)
            finally:
                self._forget(stray)

    # --- Holding ---

    @asynccontextmanager
    async def hold(
        self,
        key: str,
        *,
        take_over: bool = False,
        on_stop: Callable[[], None] | None = None,
    ) -> AsyncIterator[HeldLease]:
        """Hold the lease of *key* while the block runs; release it after, even if cancelled.

        Without *take_over*, one try: ``LeaseBusy`` at once if anyone else holds it. With it,
        ask the holder to stop and retry for up to ``lock_wait`` seconds, then ``LeaseBusy``.
        *on_stop* is called (once, on the event loop) if a newer request asks this one to step
        aside, or if the lease is lost; the block should then end soon.
        """
        if self._wake is None:
            raise RuntimeError("LeaseKeeper is not running: use `async with keeper`")
        entry = await self._acquire(key, take_over, on_stop)
        try:
            yield entry
        finally:
            with anyio.CancelScope(shield=True):
                await self._release(entry)

    async def _acquire(
        self, key: str, take_over: bool, on_stop: Callable[[], None] | None
    ) -> HeldLease:
        deadline = time.monotonic() + self.lock_wait
        while (local := self._held.get(key)) is not None:
            if not take_over:
                raise LeaseBusy(key)
            local.stop()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LeaseBusy(key)
            with anyio.move_on_after(remaining):
                await local.gone.wait()
        entry = HeldLease(key, on_stop)
        self._held[key] = entry
        maybe_ours = False
        try:
            delay = 0.005
            while not entry.stopped:  # a newer request of this process came: it goes first
                maybe_ours = True
                if await self.leases.acquire(key, self.holder, self.ttl):
                    break
                maybe_ours = False
                if not take_over:
                    raise LeaseBusy(key)
                await self.leases.ask_stop(key)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LeaseBusy(key)
                await anyio.sleep(min(delay, remaining))
                delay = min(delay * 2, RETRY_CAP)
            if entry.stopped:
                raise LeaseBusy(key)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if maybe_ours:
                    await self._release(entry)
                else:
                    self._forget(entry)
            raise
        entry.acquired = True
        if self._idle and self._wake is not None:
            # Only an idle ticker is woken: a busy one sees this lease at its next tick, so a
            # stream of short holds (one per chunk) costs no task switch each.
            self._wake.set()
        return entry

    async def _release(self, entry: HeldLease) -> None:
        # Released before forgotten: a request of this process waiting for the key must not
        # acquire it (same holder: granted) before this release, which would delete its lease.
        entry.ending = True
        try:
            await self.leases.release(entry.key, self.holder)
        except Exception:  # it lapses after its ttl, or the ticker releases it (a stray)
            log.warning("releasing lease %s failed", entry.key, exc_info=True)
        finally:
            self._forget(entry)

    def _forget(self, entry: HeldLease) -> None:
        if self._held.get(entry.key) is entry:
            del self._held[entry.key]
        entry.gone.set()

    # --- Leading ---

    async def lead(self, key: str, ttl: float) -> bool:
        """One acquire-or-renew of *key* for *ttl* seconds: True on the one process that
        holds it. For a periodic job one process runs at a time (the sweeper): call it each
        period, with *ttl* longer than the period."""
        self._led.add(key)
        return await self.leases.acquire(key, self.holder, ttl)
