"""GroupCommit on a real SQLite file: writes that queue up behind a commit share the next one."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Connection, create_engine, event, text

from pixdrop.metadata.batching import GroupCommit


@pytest.fixture
def engine(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'g.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (k INTEGER PRIMARY KEY)"))
    yield engine
    engine.dispose()


def test_writes_queued_behind_a_commit_share_one_transaction(engine) -> None:
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    group = GroupCommit(engine)

    def insert(key: int):
        def operation(conn: Connection) -> int:
            if key == 3:
                raise ValueError("refused")
            conn.execute(text("INSERT INTO t VALUES (:k)"), {"k": key})
            return key

        return operation

    outcomes: dict[int, object] = {}

    async def attempt(key: int) -> None:
        try:
            outcomes[key] = await group.run(insert(key))
        except ValueError as exc:
            outcomes[key] = exc

    async def main() -> None:
        # Hold the commit lock, as a commit in progress would, until all ten writes queue up.
        group._commit_lock.acquire()
        async with anyio.create_task_group() as tasks:
            for key in range(10):
                tasks.start_soon(attempt, key)
            while len(group._queue) < 10:
                await anyio.sleep(0.01)
            threading.Timer(0.05, group._commit_lock.release).start()

    commits.clear()
    anyio.run(main)
    assert isinstance(outcomes.pop(3), ValueError)
    assert outcomes == {k: k for k in range(10) if k != 3}
    assert len(commits) == 1  # one transaction for the nine that stood
    with engine.connect() as conn:
        keys = [row.k for row in conn.execute(text("SELECT k FROM t ORDER BY k"))]
    assert keys == [k for k in range(10) if k != 3]


def test_a_failed_commit_fails_every_write_of_its_batch(engine) -> None:
    group = GroupCommit(engine)

    def fail_commit(conn: Connection) -> None:
        raise RuntimeError("disk full")

    event.listen(engine, "commit", fail_commit)

    async def write() -> None:
        await group.run(lambda conn: conn.execute(text("INSERT INTO t VALUES (1)")))

    with pytest.raises(RuntimeError, match="disk full"):
        anyio.run(write)
    event.remove(engine, "commit", fail_commit)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 0


def test_batches_share_one_held_connection_until_one_fails(engine) -> None:
    """Commits one after the other take one connection from the pool, not one each; a failed
    lone write gives it back (rolled back), and the next write works on a fresh one."""
    checkouts: list[int] = []
    event.listen(engine, "checkout", lambda *args: checkouts.append(1))
    group = GroupCommit(engine)

    def insert(key: int):
        return lambda conn: conn.execute(text("INSERT INTO t VALUES (:k)"), {"k": key})

    async def main() -> None:
        for key in range(5):
            await group.run(insert(key))
        assert len(checkouts) == 1
        with pytest.raises(Exception, match="UNIQUE"):
            await group.run(insert(0))  # taken: the lone write fails, its connection goes back
        assert group._conn is None
        await group.run(insert(5))
        assert len(checkouts) == 2

    anyio.run(main)
    group.close()
    assert engine.pool.checkedout() == 0
    with engine.connect() as conn:
        keys = [row.k for row in conn.execute(text("SELECT k FROM t ORDER BY k"))]
    assert keys == list(range(6))
