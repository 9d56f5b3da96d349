"""Node-local copies of S3 uploads (``storage/s3_local.py``): the rules that decide from a
copy's log whether it holds a finished object, and the copies on a real file system (a
directory of the test's own; no bucket: the HTTP tests in tests/http/test_s3_local_copy.py
drive the whole path against SeaweedFS)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from pixdrop.models import Part, new_id
from pixdrop.storage.s3_local import DATA, LOG, LocalCopies, mismatch

MiB = 1024 * 1024


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


A, B, C = sha(b"a"), sha(b"b"), sha(b"c")
#: An object of three parts of 10 bytes, as the receipts say.
PARTS = [Part(0, 10, A, 1), Part(10, 20, B, 2), Part(20, 25, C, 3)]


def log(*records: str) -> str:
    return "".join(record + "\n" for record in records)


# --- the log's rules


def test_a_clean_write_of_every_receipt_holds_the_object() -> None:
    # Chunks in parallel (their records interleave), the first of unknown length.
    text = log(
        "o w2 10 20", "o w1 0 -", "o w3 20 30", f"c w3 25 {C}", f"c w1 10 {A}", f"c w2 20 {B}"
    )
    assert mismatch(text, PARTS) is None


def test_bytes_that_came_another_way_are_not_held() -> None:
    assert mismatch(log("o w1 0 -", f"c w1 10 {A}", "o w3 20 30", f"c w3 25 {C}"), PARTS) == (
        "no local write of bytes [10, 20)"
    )
    other = log(
        "o w1 0 -", f"c w1 10 {A}", "o w2 10 20", f"c w2 20 {C}", "o w3 20 -", f"c w3 25 {C}"
    )
    assert mismatch(other, PARTS) == "bytes [10, 20) came another way"


def test_the_latest_clean_write_of_a_range_counts() -> None:
    head = ["o w1 0 -", f"c w1 10 {A}", "o w3 20 30", f"c w3 25 {C}"]
    # A part re-sent after a failed put (abandoned), or re-sent whole (the same bytes again).
    again = ["o w2 10 20", f"c w2 20 {B}"]
    assert mismatch(log(*head, "o x 10 20", "a x 14", *again), PARTS) is None
    assert mismatch(log(*head, "o x 10 20", f"c x 20 {B}", *again), PARTS) is None
    # Other bytes written later over the receipt's: not held, whatever came before.
    later = log(*head, "o w2 10 20", f"c w2 20 {B}", "o x 10 20", f"c x 20 {C}")
    assert mismatch(later, PARTS) == "bytes [10, 20) came another way"
    # A later write that failed part-way spoils the range too.
    broken = log(*head, "o w2 10 20", f"c w2 20 {B}", "o x 12 20", "a x 15")
    assert mismatch(broken, PARTS) == "bytes [10, 20) came another way"


def test_two_writers_of_the_same_bytes_at_once_spoil_them() -> None:
    head = ["o w1 0 -", f"c w1 10 {A}", "o w3 20 30", f"c w3 25 {C}"]
    for records in (
        ["o x 10 20", "o w2 10 20", f"c x 20 {C}", f"c w2 20 {B}"],
        ["o x 10 20", "o w2 10 20", f"c w2 20 {B}", f"c x 20 {B}"],
        ["o w2 10 20", "o x 15 -", f"c w2 20 {B}", "a x 16"],
    ):
        assert mismatch(log(*head, *records), PARTS) is not None, records


def test_a_writer_that_never_closed_spoils_its_range() -> None:
    # Killed mid-chunk, then the chunk re-sent: its bytes may have landed after the resend's.
    killed = log("o w1 0 -", f"c w1 10 {A}", "o k 10 20", "o w2 10 20", f"c w2 20 {B}")
    assert mismatch(killed + log("o w3 20 30", f"c w3 25 {C}"), PARTS) == (
        "bytes [10, 20) had two writers at once"
    )
    # Of unknown length (an append): everything after its start.
    append = log("o w1 0 -", f"c w1 10 {A}", "o k 10 -", "o w2 10 20", f"c w2 20 {B}")
    assert mismatch(append + log("o w3 20 30", f"c w3 25 {C}"), PARTS) is not None
    # Killed beside a range it does not touch: no harm.
    aside = log("o w1 0 -", f"c w1 10 {A}", "o k 25 35", "o w2 10 20", f"c w2 20 {B}")
    assert mismatch(aside + log("o w3 20 30", f"c w3 25 {C}"), PARTS) is None


def test_a_log_we_did_not_write_is_not_trusted() -> None:
    good = log(
        "o w1 0 -", f"c w1 10 {A}", "o w2 10 20", f"c w2 20 {B}", "o w3 20 30", f"c w3 25 {C}"
    )
    assert mismatch(good, PARTS) is None
    for bad in (
        good[:-10],  # torn
        good + "x\n",
        good + "o w9 30 -\n w9 40\n",  # no kind
        good + "c w1 10 " + A + "\n",  # closed twice
        good.replace("c w2 20", "c w2 21"),  # past its limit
        good.replace(f" {B}", " beef"),
        "",
    ):
        assert mismatch(bad, PARTS) is not None


# --- copies on disk


@pytest.fixture
def copies(tmp_path: Path) -> LocalCopies:
    return LocalCopies(tmp_path / "scratch", 64 * MiB, boot="thisboot")


def put(copies: LocalCopies, upload_id: str, start: int, data: bytes, limit: int | None) -> Part:
    """What a put does: write in two batches, then close with the sha256."""
    copy = copies.copy(upload_id, start, limit)
    assert copy is not None
    copy.write([data[: len(data) // 2]])
    copy.write([data[len(data) // 2 :]])
    copy.close(sha(data))
    return Part(start, start + len(data), sha(data))


def test_a_copy_is_sealed_for_its_receipts_and_read_back(copies: LocalCopies) -> None:
    upload_id = new_id()
    data = os.urandom(300_000)
    parts = [put(copies, upload_id, 100_000, data[100_000:200_000], 200_000)]
    parts.append(put(copies, upload_id, 0, data[:100_000], None))
    parts.append(put(copies, upload_id, 200_000, data[200_000:], 300_000))
    assert copies.sealed(upload_id) is None
    assert copies.seal(upload_id, parts)
    path = copies.sealed(upload_id)
    assert path is not None
    assert path.read_bytes() == data
    assert not copies.has_live(upload_id)
    assert copies.seal(upload_id, parts)  # a second finish of the same object
    # A late writer of the same upload never touches the sealed file.
    put(copies, upload_id, 0, b"x" * 10, None)
    assert path.read_bytes() == data
    copies.drop(upload_id)
    assert not copies.has_any(upload_id)


def test_a_copy_that_is_not_the_object_is_removed(copies: LocalCopies) -> None:
    upload_id = new_id()
    first = put(copies, upload_id, 0, b"a" * 10, None)
    elsewhere = Part(10, 20, sha(b"b" * 10), 2)
    assert not copies.seal(upload_id, [first, elsewhere])
    assert not copies.has_any(upload_id)


def test_a_copy_being_written_is_not_sealed(copies: LocalCopies) -> None:
    upload_id = new_id()
    first = put(copies, upload_id, 0, b"a" * 10, None)
    copy = copies.copy(upload_id, 10, 20)
    assert copy is not None
    copy.write([b"b" * 10])  # a stalled writer holds the copy
    assert not copies.seal(upload_id, [first, Part(10, 20, sha(b"b" * 10))])
    copy.close(sha(b"b" * 10))
    assert copies.seal(upload_id, [first, Part(10, 20, sha(b"b" * 10))])


def test_bytes_past_the_end_are_cut_and_a_short_file_refused(copies: LocalCopies) -> None:
    upload_id = new_id()
    first = put(copies, upload_id, 0, b"a" * 10, None)
    copy = copies.copy(upload_id, 10, None)
    assert copy is not None
    copy.write([b"refused"])
    copy.abandon()  # past the end: no receipt names them
    assert copies.seal(upload_id, [first])
    path = copies.sealed(upload_id)
    assert path is not None
    assert path.read_bytes() == b"a" * 10


def test_a_failed_write_drops_the_copy(copies: LocalCopies) -> None:
    upload_id = new_id()
    put(copies, upload_id, 0, b"a" * 10, None)
    copy = copies.copy(upload_id, 10, None)
    assert copy is not None
    copy.write([b"b"])
    writer = copy.writer
    assert writer is not None
    os.close(writer.data_fd)  # the next pwritev fails (EBADF), as one on a full disk would
    writer.data_fd = os.open(copies.live(upload_id) / DATA, os.O_RDONLY)
    copy.write([b"c"])
    assert not copy.open
    assert not copies.has_any(upload_id)
    copy.close(sha(b"bc"))  # nothing left to close


def test_copies_stay_within_their_budget(tmp_path: Path) -> None:
    copies = LocalCopies(tmp_path, 1 * MiB, boot="b")
    upload_id = new_id()
    put(copies, upload_id, 0, os.urandom(MiB - 4096), None)
    assert copies.usage() >= MiB - 4096
    assert copies.writer(new_id(), 0, 8 * MiB) is None  # a chunk that would pass the budget
    under = copies.writer(new_id(), 0, None)
    assert under is not None  # under it still: one request's worth
    under.abandon()
    put(copies, upload_id, MiB, os.urandom(8192), None)
    assert copies.writer(new_id(), 0, None) is None  # over it
    assert LocalCopies(tmp_path, 0, boot="b").copy(upload_id, 0, None) is None  # off


def test_copies_of_other_boots_and_idle_copies_go(tmp_path: Path) -> None:
    before = LocalCopies(tmp_path, MiB, boot="before")
    old = new_id()
    put(before, old, 0, b"old boot", None)
    copies = LocalCopies(tmp_path, MiB, boot="now")
    assert not (tmp_path / "copies" / "before").exists()
    idle, fresh, busy = new_id(), new_id(), new_id()
    for upload_id in (idle, fresh, busy):
        put(copies, upload_id, 0, b"bytes", None)
    writing = copies.copy(busy, 5, None)
    assert writing is not None
    writing.write([b"more"])
    hour_ago = time.time() - 3600
    for upload_id in (idle, busy):
        for name in (LOG, DATA, ""):
            os.utime(copies.live(upload_id) / name, (hour_ago, hour_ago))
    copies.prune(600)
    assert not copies.has_any(idle)
    assert copies.has_live(fresh)
    assert copies.has_live(busy)  # a writer holds it
    writing.close(sha(b"more"))
