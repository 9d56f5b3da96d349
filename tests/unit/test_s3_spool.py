"""The S3 store's part spools keep at most the process's budget in memory, all together."""

from __future__ import annotations

from pathlib import Path

from pixdrop.storage.s3_client import MemoryBudget, Spool


def test_parts_past_the_budget_go_through_scratch_files(tmp_path: Path) -> None:
    budget = MemoryBudget(total=10)
    first, second = Spool(100, tmp_path, budget), Spool(100, tmp_path, budget)
    first.add(b"12345678")
    second.add(b"abcdef")  # 8 + 6 > 10: this one spills to a file
    second.add(b"gh")
    assert first.file is None
    assert second.file is not None
    assert budget.used == 8
    assert first.body() == b"12345678"
    body = second.body()
    assert not isinstance(body, (bytes, bytearray))
    assert body.read() == b"abcdefgh"
    first.close()
    second.close()
    assert budget.used == 0
    third = Spool(100, tmp_path, budget)
    third.add(b"0123456789")  # the memory given back serves the next part
    assert third.file is None
    assert budget.used == 10
    third.close()


def test_a_spool_that_spills_gives_its_memory_back_at_once(tmp_path: Path) -> None:
    budget = MemoryBudget(total=10)
    spool = Spool(8, tmp_path, budget)
    spool.add(b"123456")
    assert budget.used == 6
    spool.add(b"789")  # past the part's own limit: to a file, the 6 bytes given back
    assert spool.file is not None
    assert budget.used == 0
    spool.close()
