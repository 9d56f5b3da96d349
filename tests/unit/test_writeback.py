"""``files.start_writeback``: bytes a body wrote go to the disk while the rest arrives.

The kernel's write-back cannot be watched reliably from a test; what can be checked is that
the call is made where it exists (Linux), succeeds on a regular file, and that a file
descriptor it cannot serve turns it off instead of failing the write.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pixdrop.storage import files

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux call")


@linux_only
def test_the_call_is_found_and_accepted_on_a_regular_file(tmp_path: Path) -> None:
    assert files._start_writeback is not None
    fd = os.open(tmp_path / "staged", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, b"x" * (1 << 20), 0)
        files.start_writeback(fd, 0, 1 << 20)
        assert files._start_writeback is not None  # accepted: still in use
        os.fdatasync(fd)
    finally:
        os.close(fd)


@linux_only
def test_a_descriptor_it_cannot_serve_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_start_writeback", files._start_writeback)
    read, write = os.pipe()  # sync_file_range refuses a pipe (ESPIPE)
    try:
        files.start_writeback(write, 0, 1)  # no exception
        assert files._start_writeback is None
        files.start_writeback(write, 0, 1)  # and no call any more
    finally:
        os.close(read)
        os.close(write)
