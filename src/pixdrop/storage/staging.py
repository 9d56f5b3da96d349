"""``Staging`` on local disk: one sparse file per upload, ``staging/<upload id>``.

Parts are written at their final offset with ``pwritev`` and made durable with ``fdatasync``
before ``put_part`` returns. ``finish`` answers the staging file itself (key
``staging/<upload id>``), cut to the end of its parts; ``keep`` hard-links it into ``blobs/``
(no byte is copied; a crash before the caller records the image leaves the staging file
intact, so the completion can simply run again; ``kept_as`` finds the blob from the second
link) and ``abort`` removes the staging name.
``begin`` without *durable* (a one-request body) creates nothing: the first write creates
the file, in the thread hop that writes the bytes (one hop less per one-request image).
The token of a local upload is the empty string.

A full file system (``ENOSPC``, ``EDQUOT``) is ``InsufficientStorage`` from every method that
writes (``files.room``); a part that fails so is not returned, so its bytes are not recorded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterable, Sequence

from anyio import to_thread

from pixdrop.models import Part, is_valid_id
from pixdrop.ports import Observer, Staging
from pixdrop.storage import files
from pixdrop.storage.files import WRITE_BATCH
from pixdrop.storage.layout import Layout, staged_key
from pixdrop.storage.running import RunningDigests


def _extent(upload_id: str, parts: Sequence[Part]) -> int:
    """The size of the object *parts* make; ``ValueError`` unless they cover ``[0, size)``
    without gap or overlap."""
    position = 0
    for part in sorted(parts, key=lambda p: (p.start, p.end)):
        if part.start != position or part.end < part.start:
            raise ValueError(
                f"parts of {upload_id} are not contiguous from 0: "
                f"expected a part at {position}, got [{part.start}, {part.end})"
            )
        position = part.end
    return position


class LocalStaging(Staging):
    """``Staging`` as one sparse file per upload (see the module docstring)."""

    #: Parts are written in place: any size will do.
    min_part_size = 1

    def __init__(self, layout: Layout) -> None:
        self._at = layout
        self._running = RunningDigests()
        #: Uploads begun without *durable* whose file the first write creates (O_CREAT).
        self._unborn: set[str] = set()

    async def begin(self, upload_id: str, *, durable: bool = True) -> str:
        path = self._at.staging(upload_id)
        if not durable:
            self._unborn.add(upload_id)  # nothing to make durable: the first write creates it
            return ""

        def create() -> None:
            # Read-only open: creating works, and so does an idempotent call on a kept file.
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
            if durable:  # the name must outlive a power cut once parts are recorded against it
                self._at.fsync_dir(self._at.staging_dir)

        with files.room("a new upload"):
            await to_thread.run_sync(create)
        self._unborn.discard(upload_id)
        return ""

    async def put_part(
        self,
        upload_id: str,
        token: str,
        *,
        number: int,
        offset: int,
        data: AsyncIterable[bytes],
        observe: Observer | None = None,
    ) -> Part:
        if number < 0 or offset < 0:
            raise ValueError(f"bad part number {number} or offset {offset}")
        # In order, the bytes also go into the upload's running hash (running.py). An append
        # (number 0) that continues it gets a prefix receipt, the running hash itself (one
        # pass over its bytes, not two); a chunk (number >= 1) keeps its own sha256, which
        # its client is answered and may have announced.
        extension = self._running.begin(upload_id, offset)
        prefix = extension is not None and (extension.first or number == 0)
        hasher = extension.hasher if extension and prefix else hashlib.sha256()
        running = extension.hasher if extension and not prefix else None

        def see(batch: Sequence[bytes]) -> None:  # on the writer thread, beside the I/O
            if observe is not None:
                observe(batch)
            for block in batch:
                hasher.update(block)
                if running is not None:
                    running.update(block)

        try:
            with files.room(f"{upload_id}'s bytes at {offset}"):
                written = await self._write(upload_id, offset, data, see)
        except BaseException:
            if extension is not None:
                extension.drop()
            raise
        part = Part(offset, offset + written, hasher.hexdigest(), number)
        if extension is not None:
            extension.commit(part)
        return part

    def known_sha256(self, upload_id: str, parts: Sequence[Part]) -> str | None:
        return self._running.sha256(upload_id, parts)

    async def _write(
        self,
        upload_id: str,
        offset: int,
        data: AsyncIterable[bytes],
        observe: Observer | None = None,
    ) -> int:
        """Write *data* at *offset*, durably; return how many bytes were written. *observe*
        sees each batch, in order, on the thread that writes it."""
        path = self._at.staging(upload_id)
        fd: int | None = None

        def write(batch: list[bytes], position: int, last: bool) -> int:
            nonlocal fd
            if fd is None:
                # O_CREAT only for an unborn upload's first write: a part for an upload
                # aborted meanwhile must not resurrect it.
                unborn = upload_id in self._unborn
                fd = os.open(path, os.O_WRONLY | (os.O_CREAT if unborn else 0), 0o600)
                self._unborn.discard(upload_id)
                if os.fstat(fd).st_nlink > 1:
                    raise PermissionError(f"upload {upload_id} is kept: its bytes are a blob's")
            if observe is not None:
                observe(batch)
            written = files.pwrite_all(fd, batch, position)
            if last:
                # Durable before the caller records the part (DESIGN.md, durability rule 1).
                self._at.datasync(fd)
            else:
                self._at.start_writeback(fd, position, written)
            return written

        # One thread hop per WRITE_BATCH bytes; a small body (open, write, sync) takes one.
        try:
            position = offset
            batch: list[bytes] = []
            pending = 0
            async for block in data:
                batch.append(block)
                pending += len(block)
                if pending >= WRITE_BATCH:
                    position += await to_thread.run_sync(write, batch, position, False)
                    batch, pending = [], 0
            position += await to_thread.run_sync(write, batch, position, True)
            return position - offset
        finally:
            if fd is not None:
                os.close(fd)

    async def finish(self, upload_id: str, token: str, parts: Sequence[Part]) -> str:
        size = _extent(upload_id, parts)
        # Inline: a stat of a file just written is answered from the inode cache, and the
        # usual case (nothing to cut) then costs no thread hop (~0.2 ms on every image).
        if os.stat(self._at.staging(upload_id)).st_size != size:
            await self._cut(upload_id, size)
        return staged_key(upload_id)

    async def _cut(self, upload_id: str, size: int) -> None:
        """Cut the staging file to *size* bytes, durably (bytes a refused request left past
        the end go); a shorter file is refused."""
        path = self._at.staging(upload_id)

        def cut() -> None:
            stat = os.stat(path)
            if stat.st_size == size:
                return
            if stat.st_size < size:
                raise ValueError(f"staging of {upload_id} holds {stat.st_size} < {size} bytes")
            if stat.st_nlink > 1:
                raise ValueError(f"upload {upload_id} is kept with {stat.st_size} bytes")
            fd = os.open(path, os.O_WRONLY)
            try:
                os.ftruncate(fd, size)
                self._at.datasync(fd)
            finally:
                os.close(fd)

        with files.room(f"the end of {upload_id}"):
            await to_thread.run_sync(cut)

    async def join(
        self, upload_id: str, token: str, sources: Sequence[tuple[str, str, Sequence[Part]]]
    ) -> str:
        heads = [(source, _extent(source, parts)) for source, _token, parts in sources]
        await self._concat(upload_id, heads)
        return staged_key(upload_id)

    async def _concat(self, upload_id: str, heads: Sequence[tuple[str, int]]) -> None:
        """Fill the staging file of *upload_id* with the first *size* bytes of each staging
        file ``(id, size)`` in *heads*, in order, in the kernel (``copy_file_range``)."""
        target = self._at.staging(upload_id)
        paths = [(self._at.staging(source), size) for source, size in heads]
        if any(source == upload_id for source, _ in heads):
            raise ValueError(f"upload {upload_id} cannot join itself")

        def concat() -> None:
            if os.stat(target).st_nlink > 1:
                return  # kept: it is the joined object already, and its bytes are a blob's
            out = os.open(target, os.O_WRONLY | os.O_TRUNC)
            try:
                position = 0
                for path, size in paths:
                    src = os.open(path, os.O_RDONLY)
                    try:
                        files.copy_range(src, out, size, position)
                    finally:
                        os.close(src)
                    position += size
                self._at.datasync(out)
            finally:
                os.close(out)

        with files.room(f"the joined upload {upload_id}"):
            await to_thread.run_sync(concat)

    async def keep(self, upload_id: str, token: str, key: str) -> bool:
        staging, blob = self._at.staging(upload_id), self._at.content(key)

        def link() -> bool:
            files.make_dirs(blob.parent, self._at.fsync_dir)
            try:
                os.chmod(staging, 0o444)  # before the link: the blob is never writable
                os.link(staging, blob)
            except FileExistsError:
                return False  # identical content already stored (content address)
            except FileNotFoundError:
                if blob.exists():
                    return False  # kept, then aborted: a completion run again
                raise
            except OSError:
                os.chmod(staging, 0o600)  # not kept (a full disk): writable as before
                raise
            self._at.fsync_dir(blob.parent)
            return True

        with files.room(f"the image of {upload_id}"):
            stored = await to_thread.run_sync(link)
        self._running.forget(upload_id)
        return stored

    async def kept_as(self, upload_id: str, token: str) -> str | None:
        path = self._at.staging(upload_id)

        def find() -> str | None:
            # A kept staging file is a hard link of its blob: a second link is the sign (a
            # stat); only then is it hashed, to name the blob (which must be the same file).
            try:
                if os.stat(path).st_nlink < 2:
                    return None
                with path.open("rb") as file:
                    key = hashlib.file_digest(file, "sha256").hexdigest()
                return key if os.path.samefile(path, self._at.content(key)) else None
            except FileNotFoundError:
                return None

        return await to_thread.run_sync(find)

    async def abort(self, upload_id: str, token: str) -> None:
        self._unborn.discard(upload_id)
        self._running.forget(upload_id)
        path = self._at.staging(upload_id)
        try:
            kept = os.stat(path).st_nlink > 1
        except FileNotFoundError:
            return
        if kept:
            # The usual end of a completion: the file is a link of its blob, so the unlink
            # frees no block; inline, like finish's stat, it saves a thread hop per image.
            path.unlink(missing_ok=True)
            return
        await to_thread.run_sync(lambda: path.unlink(missing_ok=True))

    async def stale(self, older_than: float) -> list[tuple[str, str]]:
        names = await to_thread.run_sync(
            files.untouched_since, self._at.staging_dir, older_than, is_valid_id
        )
        return [(name, "") for name in names]
