"""The ``Leases`` contract, on both backends ``open_leases`` picks: ``FileLeases`` (SQLite, one
machine: kernel file locks) and ``SqlLeases`` (PostgreSQL: rows with a time to live), and
``LeaseKeeper`` on them.

Every test runs on both backends, except those about a lease lapsing after its time to live,
which only a lease row does (a file lock lasts as long as its process). On PostgreSQL the
tests of a session share one database, so each test uses keys of its own.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from pixdrop.metadata import SqlMetadataStore, open_metadata_store
from pixdrop.metadata.leases import (
    FileLeases,
    SqlLeases,
    holder_is_dead,
    new_holder,
    open_leases,
)
from pixdrop.ports import LeaseBusy
from pixdrop.services.leases import LeaseKeeper, RenewsInBulk
from tests.e2e import pixdrop_env

T = TypeVar("T")


Leases = SqlLeases | FileLeases


def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    return anyio.run(function, *args)


def lapses(leases: Leases) -> None:
    """Skip a test about leases lapsing after their time to live, where they do not."""
    if isinstance(leases, FileLeases):
        pytest.skip("on one machine a lease lasts as long as its process, not a time to live")


def new_key() -> str:
    return f"upload/{secrets.token_hex(8)}"


@pytest.fixture
def store(database_url: str) -> Iterator[SqlMetadataStore]:
    opened = open_metadata_store(database_url)
    yield opened
    run(opened.close)


@pytest.fixture
def leases(store: SqlMetadataStore) -> Iterator[Leases]:
    opened = open_leases(store)
    yield opened
    run(opened.close)


@pytest.fixture
def other_leases(store: SqlMetadataStore) -> Iterator[Leases]:
    """A second instance on the same database: what another process would open."""
    opened = open_leases(store)
    yield opened
    run(opened.close)


# --- Holders ---


def test_holders_are_unique_and_name_this_process() -> None:
    a, b = new_holder(), new_holder()
    assert a != b
    assert len(a) <= 128
    assert f"/{os.getpid()}/" in a
    assert not holder_is_dead(a)  # this very process


def test_a_gone_process_of_this_host_is_dead_and_others_are_not() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    mine = new_holder()
    host = mine.split("/", 1)[0]
    assert holder_is_dead(f"{host}/{child.pid}/abc")
    assert not holder_is_dead(f"another-host/{child.pid}/abc")
    assert not holder_is_dead("not a holder name")
    assert not holder_is_dead(f"{host}/1/abc")  # init: alive (not ours to signal)


# --- The port ---


def test_acquire_is_exclusive(leases: Leases) -> None:
    key, a, b = new_key(), new_holder(), new_holder()
    assert run(leases.acquire, key, a, 30)
    assert not run(leases.acquire, key, b, 30)
    assert run(leases.acquire, new_key(), b, 30)  # other keys are free


def test_the_holder_may_acquire_again_which_clears_the_stop_flag(leases: Leases) -> None:
    key, a = new_key(), new_holder()
    assert run(leases.acquire, key, a, 30)
    run(leases.ask_stop, key)
    assert run(leases.acquire, key, a, 30)
    assert run(leases.renew, key, a, 30) is False


def test_an_expired_lease_may_be_taken_and_its_holder_then_lost_it(leases: Leases) -> None:
    lapses(leases)
    key, a, b = new_key(), new_holder(), new_holder()
    assert run(leases.acquire, key, a, 0.3)
    assert not run(leases.acquire, key, b, 30)
    time.sleep(0.4)
    assert run(leases.acquire, key, b, 30)
    with pytest.raises(LeaseBusy):
        run(leases.renew, key, a, 30)
    assert run(leases.renew, key, b, 30) is False


def test_renewal_keeps_a_lease_past_its_first_ttl(leases: Leases) -> None:
    key, a, b = new_key(), new_holder(), new_holder()
    assert run(leases.acquire, key, a, 0.3)
    for _ in range(3):
        time.sleep(0.15)
        assert run(leases.renew, key, a, 0.3) is False
    assert not run(leases.acquire, key, b, 30)


def test_renewing_a_released_lease_raises(leases: Leases) -> None:
    key, a = new_key(), new_holder()
    assert run(leases.acquire, key, a, 30)
    run(leases.release, key, a)
    with pytest.raises(LeaseBusy):
        run(leases.renew, key, a, 30)


def test_ask_stop_is_seen_by_renew(leases: Leases, other_leases: Leases) -> None:
    key, a = new_key(), new_holder()
    run(other_leases.ask_stop, key)  # nobody holds it: nothing happens
    assert run(leases.acquire, key, a, 30)
    assert run(leases.renew, key, a, 30) is False
    run(other_leases.ask_stop, key)
    assert run(leases.renew, key, a, 30) is True
    assert run(leases.renew, key, a, 30) is True  # until it is released or re-acquired


def test_renew_held_renews_every_lease_of_a_holder(leases: Leases) -> None:
    assert isinstance(leases, RenewsInBulk)
    a, b = new_holder(), new_holder()
    k1, k2, k3 = new_key(), new_key(), new_key()
    assert run(leases.acquire, k1, a, 0.3)
    assert run(leases.acquire, k2, a, 0.3)
    assert run(leases.acquire, k3, b, 30)
    run(leases.ask_stop, k2)
    assert run(leases.renew_held, a, 30) == {k1: False, k2: True}
    time.sleep(0.4)
    assert not run(leases.acquire, k1, b, 30)  # renewed past 0.3 s
    assert run(leases.renew_held, new_holder(), 30) == {}


def test_only_the_holder_releases(leases: Leases) -> None:
    key, a, b = new_key(), new_holder(), new_holder()
    assert run(leases.acquire, key, a, 30)
    run(leases.release, key, b)
    assert not run(leases.acquire, key, b, 30)
    run(leases.release, key, a)
    assert run(leases.acquire, key, b, 30)
    run(leases.release, key, a)  # holds none: no error


def test_purge_deletes_long_expired_leases(leases: Leases) -> None:
    lapses(leases)
    old, live, a = new_key(), new_key(), new_holder()
    assert run(leases.acquire, old, a, 0.01)
    assert run(leases.acquire, live, a, 30)
    time.sleep(0.1)
    assert run(leases.purge, 0.05) >= 1
    assert run(leases.renew_held, a, 30) == {live: False}


def acquire_from_threads(leases: Leases, key: str, threads: int) -> list[bool]:
    """Let *threads* threads, each its own holder, acquire *key* at the same moment."""
    barrier = threading.Barrier(threads)
    results: list[bool] = []

    def contend() -> None:
        holder = new_holder()
        barrier.wait()
        results.append(anyio.run(leases.acquire, key, holder, 30))

    workers = [threading.Thread(target=contend) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(results)


def test_concurrent_acquires_from_threads_one_wins(leases: Leases) -> None:
    for _ in range(5):
        assert acquire_from_threads(leases, new_key(), 8) == [False] * 7 + [True]


def test_concurrent_takeovers_of_an_expired_lease_one_wins(leases: Leases) -> None:
    lapses(leases)
    key = new_key()
    assert run(leases.acquire, key, new_holder(), 0.05)
    time.sleep(0.1)
    assert acquire_from_threads(leases, key, 6) == [False] * 5 + [True]


# A process that opens the leases of a database, waits for a line on stdin, acquires KEY for
# a holder of its own and prints the outcome; with "hold", it then waits (to be killed).
CHILD = """
import sys, anyio
from pixdrop.metadata import open_metadata_store
from pixdrop.metadata.leases import new_holder, open_leases
url, key, mode = sys.argv[1:]
leases = open_leases(open_metadata_store(url))
print("ready", flush=True)
sys.stdin.readline()
print(anyio.run(leases.acquire, key, new_holder(), 60), flush=True)
if mode == "hold":
    sys.stdin.readline()
"""


def spawn_child(database_url: str, key: str, mode: str) -> subprocess.Popen[str]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, database_url, key, mode],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=pixdrop_env(),
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    return child


def child_acquires(child: subprocess.Popen[str]) -> None:
    assert child.stdin is not None
    child.stdin.write("go\n")
    child.stdin.flush()


def test_concurrent_acquires_from_processes_one_wins(database_url: str) -> None:
    key = new_key()
    children = [spawn_child(database_url, key, "once") for _ in range(3)]
    for child in children:
        child_acquires(child)
    outcomes = []
    for child in children:
        out, _ = child.communicate(timeout=30)
        outcomes.append(out.strip())
    assert sorted(outcomes) == ["False", "False", "True"]


def test_a_killed_holder_on_this_host_counts_as_expired(database_url: str, leases: Leases) -> None:
    key, mine = new_key(), new_holder()
    child = spawn_child(database_url, key, "hold")
    try:
        child_acquires(child)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "True"
        assert not run(leases.acquire, key, mine, 30)  # alive: its 60 s lease stands
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                pipe.close()
    started = time.monotonic()
    assert run(leases.acquire, key, mine, 30)  # without waiting for the 60 s
    assert time.monotonic() - started < 1
    assert run(leases.renew, key, mine, 30) is False


# --- LeaseKeeper ---


class Counting:
    """A ``Leases`` that counts the calls it passes on (no ``renew_held`` unless *bulk*)."""

    def __init__(self, inner: SqlLeases) -> None:
        self.inner = inner
        self.calls: list[str] = []

    async def acquire(self, key: str, holder: str, ttl: float) -> bool:
        self.calls.append("acquire")
        return await self.inner.acquire(key, holder, ttl)

    async def renew(self, key: str, holder: str, ttl: float) -> bool:
        self.calls.append("renew")
        return await self.inner.renew(key, holder, ttl)

    async def ask_stop(self, key: str) -> None:
        self.calls.append("ask_stop")
        await self.inner.ask_stop(key)

    async def release(self, key: str, holder: str) -> None:
        self.calls.append("release")
        await self.inner.release(key, holder)


class CountingBulk(Counting):
    async def renew_held(self, holder: str, ttl: float) -> dict[str, bool]:
        self.calls.append("renew_held")
        return await self.inner.renew_held(holder, ttl)


def test_keeper_hold_is_exclusive_and_released_on_exit(leases: Leases) -> None:
    key, other = new_key(), new_holder()

    async def main() -> None:
        async with LeaseKeeper(leases, lock_wait=1) as keeper:
            async with keeper.hold(key) as held:
                assert held.acquired
                assert not await leases.acquire(key, other, 30)
                with pytest.raises(LeaseBusy):  # another request of this process
                    async with keeper.hold(key):
                        pass
            assert await leases.acquire(key, other, 30)
            with pytest.raises(LeaseBusy):  # another process's: one try, at once
                async with keeper.hold(key):
                    pass

    run(main)


def test_keeper_needs_its_ticker(leases: Leases) -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="not running"):
            async with LeaseKeeper(leases, lock_wait=1).hold(new_key()):
                pass

    run(main)


def test_keeper_takes_over_in_process_at_once(leases: Leases) -> None:
    key = new_key()

    async def main() -> None:
        async with LeaseKeeper(leases, lock_wait=5) as keeper:
            stopped = anyio.Event()
            held = anyio.Event()
            order: list[str] = []

            async def old() -> None:
                async with keeper.hold(key, take_over=True, on_stop=stopped.set):
                    held.set()
                    await stopped.wait()
                    order.append("old stopped")

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(old)
                await held.wait()
                started = time.monotonic()
                async with keeper.hold(key, take_over=True):
                    order.append("new holds")
                    elapsed = time.monotonic() - started
            assert order == ["old stopped", "new holds"]
            assert elapsed < keeper.interval  # not by a renewal: on_stop was called directly

    run(main)


def test_keeper_takes_over_from_another_process_through_the_stop_flag(
    leases: Leases, other_leases: Leases
) -> None:
    key = new_key()

    async def main() -> None:
        async with (
            LeaseKeeper(leases, lock_wait=2, ttl=30) as first,
            LeaseKeeper(other_leases, lock_wait=2, ttl=30) as second,
        ):
            assert first.holder != second.holder
            stopped = anyio.Event()
            held = anyio.Event()

            async def old() -> None:
                async with first.hold(key, on_stop=stopped.set) as lease:
                    held.set()
                    await stopped.wait()
                    assert lease.stopped
                    assert not lease.lost

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(old)
                await held.wait()
                started = time.monotonic()
                async with second.hold(key, take_over=True):
                    elapsed = time.monotonic() - started
                    assert not await leases.acquire(key, first.holder, 30)
            # the holder notices at its next renewal (every `poll` s), then releases
            assert elapsed < first.poll + 0.5

    run(main)


def test_keeper_gives_up_after_lock_wait_if_the_holder_never_yields(
    leases: Leases, other_leases: Leases
) -> None:
    key = new_key()

    async def main() -> None:
        async with (
            LeaseKeeper(leases, lock_wait=1) as first,
            LeaseKeeper(other_leases, lock_wait=0.8) as second,
        ):
            asked: list[str] = []
            async with first.hold(key, on_stop=lambda: asked.append("stop")):
                started = time.monotonic()
                with pytest.raises(LeaseBusy):
                    async with second.hold(key, take_over=True):
                        pass
                elapsed = time.monotonic() - started
                await anyio.sleep(first.interval * 2)
            assert 0.8 <= elapsed < 1.8
            assert asked == ["stop"]  # once, though asked again and again

    run(main)


def test_keeper_renews_in_one_statement_and_is_silent_when_idle(leases: Leases) -> None:
    counting = CountingBulk(leases)
    keys, other = [new_key(), new_key()], new_holder()

    async def main() -> None:
        async with LeaseKeeper(counting, lock_wait=0.4, ttl=0.3) as keeper:
            assert keeper.interval == pytest.approx(0.1)
            await anyio.sleep(0.5)
            assert counting.calls == []  # nothing held: no database traffic
            async with keeper.hold(keys[0]), keeper.hold(keys[1]):
                await anyio.sleep(0.8)  # well past the 0.3 s ttl
                for key in keys:
                    assert not await leases.acquire(key, other, 30)
            renewals = counting.calls.count("renew_held")
            assert 4 <= renewals <= 9
            assert "renew" not in counting.calls
            counting.calls.clear()
            await anyio.sleep(0.4)
            assert counting.calls == []

    run(main)


def test_keeper_renews_key_by_key_without_bulk_renewal(leases: Leases) -> None:
    counting = Counting(leases)
    key, other = new_key(), new_holder()

    async def main() -> None:
        async with LeaseKeeper(counting, lock_wait=0.4, ttl=0.3) as keeper:
            assert not isinstance(counting, RenewsInBulk)
            async with keeper.hold(key):
                await anyio.sleep(0.6)
                assert not await leases.acquire(key, other, 30)
            assert counting.calls.count("renew") >= 3

    run(main)


def test_keeper_calls_on_stop_when_a_lease_is_lost(leases: Leases) -> None:
    key, thief = new_key(), new_holder()

    async def main() -> None:
        async with LeaseKeeper(leases, lock_wait=0.4) as keeper:
            lost = anyio.Event()
            async with keeper.hold(key, on_stop=lost.set) as lease:
                await leases.release(key, keeper.holder)  # behind its back
                assert await leases.acquire(key, thief, 30)
                with anyio.fail_after(1):
                    await lost.wait()
                assert lease.lost
            assert not await leases.acquire(key, keeper.holder, 30)  # the thief's still

    run(main)


def test_keeper_releases_when_cancelled(leases: Leases) -> None:
    key, other = new_key(), new_holder()

    async def main() -> None:
        async with LeaseKeeper(leases, lock_wait=1) as keeper:
            with anyio.move_on_after(0.2):
                async with keeper.hold(key):
                    await anyio.sleep(5)
            assert await leases.acquire(key, other, 30)

    run(main)


def test_lead_elects_one(leases: Leases, other_leases: Leases) -> None:
    key = f"sweeper/{secrets.token_hex(4)}"

    async def main() -> None:
        async with (
            LeaseKeeper(leases, lock_wait=1) as first,
            LeaseKeeper(other_leases, lock_wait=1) as second,
        ):
            assert await first.lead(key, 0.3)
            assert not await second.lead(key, 0.3)
            assert await first.lead(key, 0.3)  # renewed
            async with first.hold(new_key()):  # renewing in bulk does not drop the lead
                await anyio.sleep(first.interval * 3)
                assert await first.lead(key, 0.3)
            if isinstance(leases, FileLeases):
                return  # a file lock lasts while its process lives: no lapse to wait for
            await anyio.sleep(0.4)  # the leader stopped leading
            assert await second.lead(key, 0.3)
            assert not await first.lead(key, 0.3)

    run(main)


def test_sqlite_leases_live_beside_the_metadata_database(tmp_path: Path) -> None:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'pixdrop.db'}")
    leases = open_leases(store)
    try:
        assert isinstance(leases, FileLeases)
        assert (tmp_path / "pixdrop-leases.lock").exists()
        assert (tmp_path / "pixdrop-leases.db").exists()
    finally:
        run(leases.close)
        run(store.close)


def test_a_file_lease_outlives_its_ttl_while_its_process_lives(tmp_path: Path) -> None:
    store = open_metadata_store(f"sqlite:///{tmp_path / 'pixdrop.db'}")
    leases, other = open_leases(store), open_leases(store)
    key, a, b = new_key(), new_holder(), new_holder()
    try:
        assert run(leases.acquire, key, a, 0.05)
        time.sleep(0.1)
        assert not run(other.acquire, key, b, 30)  # another open file: excluded, no lapse
        run(leases.close)  # as if its process died: the kernel drops the lock
        assert run(other.acquire, key, b, 30)
    finally:
        run(other.close)
        run(store.close)
