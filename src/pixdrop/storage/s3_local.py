"""Node-local copies of the bytes a node sends to the bucket, so that completing an upload
whose every byte came through this node reads no byte back from the bucket (issue 18).

**What.** When ``S3Staging.put_part`` sends bytes of an upload to the bucket (a native chunk,
a one-request body, a tus or IETF append), it also ``pwritev``\\ s the same buffers at their
final offset into a sparse file in the scratch directory: no extra copy in memory, no fsync
(it is a cache; the bucket stays the truth). At ``finish``, once the multipart upload is
complete, the copy is checked against the upload's receipts (``seal``); if it holds every byte
``[0, size)`` of the finished object, ``S3Blobs.materialize`` and ``open_range`` of the staged
key read the local file instead of GETting the object, so the decoder and the sha256 read it.
Otherwise (a node that did not see every chunk: many nodes without sticky routing; a copy
dropped for room; a writer that died) the copy is deleted and everything falls back to the
GET, as without copies.

**Layout**, under ``<scratch>/copies/<boot id>/``::

    <upload id>/data            the sparse file: bytes at their offsets in the upload
    <upload id>/log             one line per put that wrote into it (below)
    <upload id>.sealed/         the same directory once ``seal`` accepted it, plus
    <upload id>.sealed/parts    the fingerprint of the receipts it was accepted for

**The log: what the file holds, shared by every process of the node.** Each put that writes
into a copy is a *writer* with a random name. It appends (``O_APPEND``, one ``write`` per
line: atomic for lines this short) ``o <writer> <start> <limit or ->`` before its first
byte; then, once all its bytes are written, ``c <writer> <end> <sha256>`` (the sha256 of its
receipt: the same hasher saw the same buffers), or ``a <writer> <end>`` if the put failed
(the body broke off, the client went away). ``seal`` accepts the copy only if, for every
receipt ``(start, end, sha256)`` of the finished object, the last writer that touched any of
those bytes wrote exactly that range, closed cleanly with that sha256, and every other
writer of any of those bytes had closed before it opened. So:

* a byte that reached the bucket through another node, or a chunk re-sent elsewhere with
  other bytes, has a receipt that no local write matches: no copy;
* a part re-sent to this node (a retry) is written again at the same offsets, from the same
  kind of buffers, and its latest clean write is the one that counts;
* two writers of the same bytes at once (a stalled request and the one that took over from
  it) spoil those bytes, whichever landed last;
* a writer that never closed (its process was killed mid-write) spoils its range, up to its
  limit (a native chunk's size) or to the end of the upload when that is unknown.

If the copy holds the object, it is cut to the object's size (bytes past it are a refused
request's) and its directory renamed ``.sealed``; if not, it is removed: the receipts of a
finished object do not change, so it never will.

**Writers against the sealer.** A writer holds a shared ``flock`` on the log from its open
record to its close (taken without waiting: a copy being sealed or pruned is skipped), and
checks after taking it that the log is still the one at the copy's path (not renamed by a
seal nor removed meanwhile). ``seal`` takes the lock exclusively without waiting (a writer
still at it means no copy this time) and renames the directory while it holds it: so every
writer it does not see in the log has not written and never will write into the sealed file.
A killed process drops its locks.

**Restarts and reboots.** A process that restarts finds the log as it was: the page cache
outlives the process, so data and log agree, and an unfinished write is an unclosed writer
(above). A machine that crashes may lose dirty pages of the data file, or of the log, in
any order (nothing is flushed): copies live under the kernel's boot id, and every store that
opens removes the copies of other boots. Without a boot id (not Linux) there are no copies.

**Bounds.** Copies count toward the node's disk like the other scratch files: a put writes
no copy while the node's copies already take ``budget`` bytes (``local_copies`` in the
store's URL, default 4 GiB; 0 turns copies off; a put's own bytes may pass it by at most one
request); a write that fails (``ENOSPC``, ``EDQUOT``, anything) drops the upload's copy and
the upload falls back. Copies go when the upload is finished with (``abort``: completed,
refused, aborted or swept), and any copy untouched for ``MAX_IDLE`` seconds is removed by the
next prune (when a store opens; then at most once a minute per process, when it starts a
copy; and on the sweeper's node at each sweep), so a node that never completes an upload it
saw part of, or that died while completing one, does not keep it.

**What it leaves to the bucket.** Without a copy, the object read back was hashed, so a store
that kept other bytes than it was sent would have been caught there. With one, what the store
keeps is checked as for any S3 client: each part's body is signed with its sha256 over plain
HTTP (SigV4; the store verifies it), and TLS protects it over HTTPS.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import hashlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pixdrop.models import Part, is_valid_id
from pixdrop.storage import files

log = logging.getLogger("pixdrop.storage")

MiB = 1024 * 1024
GiB = 1024 * MiB
#: Bytes of local copies a node keeps at most, unless the store's URL says (``local_copies``).
DEFAULT_BUDGET = 4 * GiB
#: A copy nobody wrote to (or sealed) for this many seconds is removed by the next prune.
MAX_IDLE = 3600.0
#: A process prunes at most this often, when it starts a copy.
PRUNE_EVERY = 60.0
DATA = "data"
LOG = "log"
PARTS = "parts"
SEALED = ".sealed"  # not an id character: a sealed directory is never an upload's own
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


def boot_id() -> str:
    """The kernel's id of this boot (hex), or ``""`` where there is none."""
    try:
        text = BOOT_ID.read_text(encoding="ascii")
    except OSError:
        return ""
    value = text.strip().replace("-", "")
    return value if value.isalnum() else ""


@dataclass
class _Write:
    """One writer of a copy, as its log tells it: the bytes it covered and when."""

    start: int
    #: Where its bytes end: the close's (or abandon's) end; before that its limit (``None``:
    #: up to the end of the upload).
    end: int | None
    opened: int  # line of its open record
    closed: int | None = None  # line of its close or abandon; None: never (killed)
    sha256: str | None = None  # of its bytes, if it closed cleanly


def _writes(text: str) -> list[_Write] | None:
    """The writers of a log; ``None`` if it is not a log we wrote (a torn or unknown line)."""
    found: dict[str, _Write] = {}
    try:
        for line, record in enumerate(text.splitlines()):
            kind, name, *rest = record.split(" ")
            if kind == "o" and len(rest) == 2 and name not in found:
                limit = None if rest[1] == "-" else int(rest[1])
                found[name] = _Write(int(rest[0]), limit, line)
            elif kind in ("c", "a") and len(rest) == (2 if kind == "c" else 1) and name in found:
                write, end = found[name], int(rest[0])
                if write.closed is not None or end < write.start:
                    return None
                if write.end is not None and end > write.end:
                    return None
                write.end, write.closed = end, line
                if kind == "c":
                    if len(rest[1]) != 64:
                        return None
                    write.sha256 = rest[1]
            else:
                return None
    except ValueError:
        return None
    return list(found.values())


def mismatch(text: str, parts: Sequence[Part]) -> str | None:
    """Why a copy whose log is *text* does not hold the object made of *parts* (their ranges
    cover ``[0, size)`` without overlap); ``None`` if it does (module docstring): for every
    receipt, the last writer that touched its bytes wrote exactly them, closed cleanly with
    the receipt's sha256, and every other writer of any of those bytes had closed before it
    opened."""
    writes = _writes(text)
    if writes is None:
        return "its log is unreadable"
    receipts = sorted((p for p in parts if p.end > p.start), key=lambda p: p.start)
    if not receipts:
        return "the object is empty"
    starts = [p.start for p in receipts]
    touching: list[list[_Write]] = [[] for _ in receipts]
    room = 4 * len(receipts) + 1024  # a log of pathological overlaps is not worth reading
    for write in writes:
        if write.end is not None and write.end <= write.start:
            continue  # wrote nothing
        index = max(0, bisect.bisect_right(starts, write.start) - 1)
        while index < len(receipts) and (write.end is None or receipts[index].start < write.end):
            if receipts[index].end > write.start:
                touching[index].append(write)
                room -= 1
                if room < 0:
                    return "its log has too many overlapping writes"
            index += 1
    for receipt, writers in zip(receipts, touching, strict=True):
        if not writers:
            return f"no local write of bytes [{receipt.start}, {receipt.end})"
        last = max(writers, key=lambda write: write.opened)
        if (last.start, last.end, last.sha256) != (receipt.start, receipt.end, receipt.sha256):
            return f"bytes [{receipt.start}, {receipt.end}) came another way"
        for other in writers:
            if other is not last and (other.closed is None or other.closed > last.opened):
                return f"bytes [{receipt.start}, {receipt.end}) had two writers at once"
    return None


def _cut(data: Path, parts: Sequence[Part]) -> str | None:
    """Cut the copy's file to the object's size (bytes past it are a refused request's);
    why not, if it is shorter."""
    end = max((part.end for part in parts), default=0)
    size = os.stat(data).st_size
    if size < end:
        return f"the file holds {size} < {end} bytes"
    if size > end:
        os.truncate(data, end)
    return None


def receipts_fingerprint(parts: Sequence[Part]) -> str:
    """One line naming the receipts a copy was sealed for."""
    lines = sorted(f"{p.start} {p.end} {p.sha256}" for p in parts if p.end > p.start)
    return hashlib.sha256("\n".join(lines).encode("ascii")).hexdigest()


def _append(fd: int, line: str) -> None:
    data = line.encode("ascii")
    if os.write(fd, data) != len(data):
        raise OSError(errno.EIO, "a short write to a local copy's log")


def _same_file(fd: int, path: Path) -> bool:
    """Whether *path* still names the file open as *fd*."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _read_all(fd: int) -> str:
    chunks = []
    position = 0
    while block := os.pread(fd, 1024 * 1024, position):
        chunks.append(block)
        position += len(block)
    return b"".join(chunks).decode("ascii", errors="replace")


class LocalCopies:
    """The node-local copies of one store's uploads (module docstring). Every method but
    ``sealed`` blocks and runs on a worker thread."""

    def __init__(self, scratch: Path, budget: int = DEFAULT_BUDGET, *, boot: str | None = None):
        self.budget = budget
        self.boot = boot_id() if boot is None else boot
        self.enabled = budget > 0 and bool(self.boot)
        self.base = scratch / "copies"
        self.root = self.base / (self.boot or "none")
        self._pruned = time.monotonic()
        if self.enabled:  # what a crash left: other boots' copies, and idle ones of this boot
            self._forget_other_boots()
            self.prune(MAX_IDLE)

    def _forget_other_boots(self) -> None:
        try:
            entries = list(os.scandir(self.base))
        except OSError:
            return
        for entry in entries:
            if entry.name != self.boot:
                shutil.rmtree(entry.path, ignore_errors=True)

    def live(self, upload_id: str) -> Path:
        return self.root / upload_id

    def sealed_dir(self, upload_id: str) -> Path:
        return self.root / (upload_id + SEALED)

    # --- writing

    def copy(self, upload_id: str, start: int, limit: int | None) -> Copy | None:
        """The copy of a put of bytes from *start* (up to *limit*, if known); ``None`` when
        copies are off."""
        return Copy(self, upload_id, start, limit) if self.enabled else None

    def writer(self, upload_id: str, start: int, limit: int | None) -> Writer | None:
        """A writer of bytes ``[start, limit)`` (``limit`` ``None``: unknown) into the copy
        of *upload_id*, its open record written; ``None`` if no copy is to be written now
        (off, over the budget, being sealed or pruned, or the disk refused)."""
        if not self.enabled or not is_valid_id(upload_id):
            return None
        live = self.live(upload_id)
        try:
            if self.usage() + (0 if limit is None else limit - start) > self.budget:
                return None
            try:
                live.mkdir(parents=True)
            except FileExistsError:
                pass
            else:
                self._prune_now_and_then()
            fd = os.open(live / LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            if not _same_file(fd, live / LOG):  # sealed or dropped since we opened it
                raise FileNotFoundError(live / LOG)
            data = os.open(live / DATA, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            os.close(fd)
            return None
        writer = Writer(self, upload_id, fd, data, start)
        try:
            _append(fd, f"o {writer.name} {start} {'-' if limit is None else limit}\n")
        except OSError:
            writer.fail()
            return None
        return writer

    def usage(self) -> int:
        """Bytes the node's copies take on disk (allocated blocks of their data files)."""
        total = 0
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return 0
        for entry in entries:
            with contextlib.suppress(OSError):  # gone meanwhile
                total += os.stat(os.path.join(entry.path, DATA)).st_blocks * 512
        return total

    def drop(self, upload_id: str) -> None:
        """Remove the copies of *upload_id*, live and sealed (no error if there are none)."""
        if not is_valid_id(upload_id):
            return
        shutil.rmtree(self.live(upload_id), ignore_errors=True)
        shutil.rmtree(self.sealed_dir(upload_id), ignore_errors=True)

    # --- sealing and reading

    def has_live(self, upload_id: str) -> bool:
        """Whether a copy of *upload_id* is being written (inline: one stat)."""
        return self.enabled and is_valid_id(upload_id) and self.live(upload_id).is_dir()

    def has_any(self, upload_id: str) -> bool:
        """Whether there is a copy of *upload_id*, live or sealed (inline: two stats)."""
        return self.has_live(upload_id) or (
            self.enabled and is_valid_id(upload_id) and self.sealed_dir(upload_id).is_dir()
        )

    def seal(self, upload_id: str, parts: Sequence[Part]) -> bool:
        """Accept the copy of *upload_id* as the finished object made of *parts* (every
        receipt an intact write of the log), cut it to the object's size and rename it
        ``.sealed``; True if there is such a copy now. A copy that does not hold the object
        is removed: the receipts of a finished object do not change."""
        if not self.enabled or not is_valid_id(upload_id):
            return False
        fingerprint = receipts_fingerprint(parts)
        sealed, live = self.sealed_dir(upload_id), self.live(upload_id)
        with contextlib.suppress(FileNotFoundError):
            if (sealed / PARTS).read_text(encoding="ascii") == fingerprint:
                return True  # sealed by an earlier finish of the same object
            shutil.rmtree(sealed, ignore_errors=True)
        try:
            fd = os.open(live / LOG, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if not _same_file(fd, live / LOG):
                return False  # sealed or dropped by someone else meanwhile
            why = mismatch(_read_all(fd), parts) or _cut(live / DATA, parts)
            if why:
                log.debug("upload %s: no local copy (%s): read from the bucket", upload_id, why)
                shutil.rmtree(live, ignore_errors=True)
                return False
            (live / PARTS).write_text(fingerprint, encoding="ascii")
            os.utime(live / LOG)  # the idle clock of pruning starts again
            os.rename(live, sealed)
            return True
        except BlockingIOError:
            return False  # a writer is still at it
        except OSError:
            shutil.rmtree(live, ignore_errors=True)
            return False
        finally:
            os.close(fd)

    def sealed(self, upload_id: str) -> Path | None:
        """The sealed copy's file of *upload_id*, or ``None``. Inline: one stat, answered
        from the inode cache."""
        if not self.enabled or not is_valid_id(upload_id):
            return None
        path = self.sealed_dir(upload_id) / DATA
        try:
            os.stat(path)
        except OSError:
            return None
        return path

    # --- pruning

    def _prune_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._pruned >= PRUNE_EVERY:
            self._pruned = now
            self.prune(MAX_IDLE)

    def prune(self, older_than: float) -> None:
        """Remove copies whose log was last written *older_than* seconds ago (a live one
        only if no writer holds it)."""
        if not self.enabled:
            return
        cutoff = time.time() - older_than
        try:
            entries = list(os.scandir(self.root))
        except OSError:
            return
        for entry in entries:
            path = Path(entry.path)
            try:  # the newest of the directory (a copy just started) and its log
                newest = entry.stat().st_mtime
                with contextlib.suppress(FileNotFoundError):
                    newest = max(newest, os.stat(path / LOG).st_mtime)
            except OSError:
                continue  # gone meanwhile
            if newest >= cutoff:
                continue
            if entry.name.endswith(SEALED):
                shutil.rmtree(path, ignore_errors=True)
                continue
            try:
                fd = os.open(path / LOG, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                shutil.rmtree(path, ignore_errors=True)  # a directory a writer left empty
                continue
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _same_file(fd, path / LOG):
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                continue  # a writer is at it
            finally:
                os.close(fd)


class Copy:
    """What one put writes into its upload's copy: the writer is opened with the first
    batch, on the thread that writes it (so a put with no bytes opens nothing)."""

    def __init__(self, copies: LocalCopies, upload_id: str, start: int, limit: int | None):
        self.copies = copies
        self.upload_id = upload_id
        self.start = start
        self.limit = limit
        self.writer: Writer | None = None
        self.tried = False

    @property
    def open(self) -> bool:
        return self.writer is not None and self.writer.active

    def write(self, batch: Sequence[bytes]) -> None:
        if not self.tried:
            self.tried = True
            self.writer = self.copies.writer(self.upload_id, self.start, self.limit)
        if self.writer is not None:
            self.writer.write(batch)

    def close(self, sha256: str) -> None:
        if self.writer is not None:
            self.writer.close(sha256)

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.abandon()


class Writer:
    """One put's bytes into a copy, from its open record to its close (module docstring):
    ``write`` each batch in order, then ``close`` with the put's sha256, or ``abandon``.
    Whatever fails drops the upload's copy; the put goes on without it."""

    def __init__(self, copies: LocalCopies, upload_id: str, log_fd: int, data_fd: int, start: int):
        self.copies = copies
        self.upload_id = upload_id
        self.name = secrets.token_hex(8)
        self.log_fd: int | None = log_fd
        self.data_fd = data_fd
        self.position = start

    @property
    def active(self) -> bool:
        return self.log_fd is not None

    def write(self, batch: Sequence[bytes]) -> None:
        if self.log_fd is None:
            return
        try:
            self.position += files.pwrite_all(self.data_fd, list(batch), self.position)
        except OSError:
            self.fail()

    def close(self, sha256: str) -> None:
        """All the put's bytes are written: record them (``c``) and let go."""
        if self.log_fd is None:
            return
        try:
            _append(self.log_fd, f"c {self.name} {self.position} {sha256}\n")
        except OSError:
            self.fail()
            return
        self._release()

    def abandon(self) -> None:
        """The put failed: record that its bytes are not to be trusted (``a``)."""
        if self.log_fd is None:
            return
        try:
            _append(self.log_fd, f"a {self.name} {self.position}\n")
        except OSError:
            self.fail()
            return
        self._release()

    def fail(self) -> None:
        """Drop the upload's copy (a full disk, or any other error): the upload falls back."""
        if self.log_fd is not None:
            self._release()
        shutil.rmtree(self.copies.live(self.upload_id), ignore_errors=True)

    def _release(self) -> None:
        if self.log_fd is not None:
            os.close(self.log_fd)  # and its lock
            self.log_fd = None
        os.close(self.data_fd)
