"""Locker contract: exclusive, non-blocking, released on exit and when the holder dies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import create_engine

from pixdrop.locking import FileLocker, PostgresLocker
from pixdrop.metadata import database_url
from pixdrop.ports import LockBusy


@pytest.fixture(params=["file", pytest.param("postgres", marks=pytest.mark.postgres)])
def locker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FileLocker | PostgresLocker]:
    if request.param == "file":
        made: FileLocker | PostgresLocker = FileLocker(tmp_path / "locks")
    else:
        url = database_url(request.getfixturevalue("postgres_url"))
        made = PostgresLocker(create_engine(url))
    yield made
    made.close()


def test_second_holder_is_refused_until_release(locker: FileLocker | PostgresLocker) -> None:
    async def go() -> None:
        async with locker.hold("a"):
            with pytest.raises(LockBusy):
                async with locker.hold("a"):
                    pass
            async with locker.hold("b"):  # other keys are independent
                pass
        async with locker.hold("a"):  # released
            pass

    anyio.run(go)


def test_released_when_the_body_raises(locker: FileLocker | PostgresLocker) -> None:
    async def go() -> None:
        with pytest.raises(RuntimeError):
            async with locker.hold("k"):
                raise RuntimeError("boom")
        async with locker.hold("k"):
            pass

    anyio.run(go)


def test_file_lock_excludes_other_processes_and_dies_with_them(tmp_path: Path) -> None:
    path = tmp_path / "locks"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import anyio, sys, time
                from pixdrop.locking import FileLocker
                async def main():
                    async with FileLocker(__import__("pathlib").Path({str(path)!r})).hold("x"):
                        print("held", flush=True)
                        time.sleep(60)
                anyio.run(main)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        mine = FileLocker(path)

        async def attempt() -> None:
            async with mine.hold("x"):
                pass

        with pytest.raises(LockBusy):
            anyio.run(attempt)
        holder.kill()  # SIGKILL: the kernel drops the dead process's record locks
        holder.wait()
        anyio.run(attempt)
        mine.close()
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout:
            holder.stdout.close()
