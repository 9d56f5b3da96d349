"""The running sha256 of an upload (storage/running.py): trusted only for exactly its parts."""

from __future__ import annotations

import hashlib

from pixdrop.models import Part
from pixdrop.storage.running import RunningDigests


def write(digests: RunningDigests, upload: str, start: int, data: bytes, *, fail: bool = False):
    """What LocalStaging.put_part does with a part: hash it in if it continues the run."""
    extension = digests.begin(upload, start)
    own = extension.hasher if extension and extension.first else hashlib.sha256()
    for block in (data[:3], data[3:]):
        own.update(block)
        if extension is not None and not extension.first:
            extension.hasher.update(block)
    if fail:
        if extension is not None:
            extension.drop()
        return None
    part = Part(start, start + len(data), own.hexdigest(), 0)
    if extension is not None:
        extension.commit(part)
    return part


def test_parts_in_order_give_the_whole_hash() -> None:
    digests = RunningDigests()
    data = bytes(range(256)) * 40
    parts = [write(digests, "u", at, data[at : at + 1000]) for at in range(0, 10240, 1000)]
    assert digests.sha256("u", parts) == hashlib.sha256(data).hexdigest()


def test_a_part_out_of_order_stops_the_run() -> None:
    digests = RunningDigests()
    data = b"abcdefghij" * 100
    second = write(digests, "u", 500, data[500:])
    first = write(digests, "u", 0, data[:500])
    assert digests.sha256("u", [first, second]) is None  # completion hashes the file
    assert digests.begin("u", 1000) is None


def test_a_failed_part_leaves_the_run_where_it_was() -> None:
    digests = RunningDigests()
    data = b"0123456789" * 50
    first = write(digests, "u", 0, data[:200])
    assert write(digests, "u", 200, b"x" * 300, fail=True) is None
    second = write(digests, "u", 200, data[200:])
    assert digests.sha256("u", [first, second]) == hashlib.sha256(data).hexdigest()


def test_a_part_written_but_not_recorded_is_never_trusted() -> None:
    """A part refused after it was written (a checksum mismatch), then sent again right."""
    digests = RunningDigests()
    data = b"0123456789" * 50
    first = write(digests, "u", 0, data[:200])
    write(digests, "u", 200, b"wrong bytes" * 10 + data[310:])  # written, then refused
    again = write(digests, "u", 200, data[200:])  # not at the run's end any more
    assert digests.sha256("u", [first, again]) is None


def test_one_extension_at_a_time_and_a_bounded_memory() -> None:
    digests = RunningDigests(limit=2)
    held = digests.begin("a", 0)
    assert held is not None
    assert digests.begin("a", 0) is None  # a second part at the same offset meanwhile
    digests.begin("b", 0)
    digests.begin("c", 0)  # "a" is the least recently extended: forgotten
    held.commit(Part(0, 5, hashlib.sha256(b"").hexdigest(), 0))
    assert digests.sha256("a", []) is None
    digests.forget("b")
    assert digests.sha256("b", []) is None
