"""``Staging`` on S3: each upload is a multipart upload of ``staging/<upload id>``.

Objects under the store's prefix::

    staging/<upload id>          the finished upload (the multipart upload's object)
    tails/<upload id>/<end>      bytes [start, end) of an upload not yet in a full part
    kept/<upload id>             the content key ``keep`` copied the upload to (``kept_as``)

**Token**: ``s3:<part size P>:<S3 UploadId>``; with the receipts it is all any node needs.

**Parts and receipts.** ``Part.etag`` lists the S3 parts a put uploaded, as
``"<number>:<etag> <number>:<etag> ..."`` (empty if none), so ``finish`` completes from the
recorded receipts alone, never from ListParts.

* number >= 2 (native chunk *number - 1*, of size C = offset / (number - 1)): one S3 part
  of that number. C must be at least 5 MiB (S3's minimum but for the last part), checked from
  the offset before a byte is read; the chunk grid gives every part but the last size C.
* number 1 (at offset 0: native chunk 0, a one-request body, a tus/IETF creation carrying
  bytes) and number 0 (an append at the upload's offset): the bytes go on a grid of parts of
  size P (part k + 1 is ``[kP, (k+1)P)``; equal sizes, as Cloudflare R2 demands). A part is
  uploaded as soon as it is full; what is left below the next grid line is written as the
  object ``tails/<id>/<end>`` before ``put_part`` returns, so every byte acknowledged is in
  the bucket. The next append at offset O reads ``tails/<id>/<O>`` (its length says where it
  starts), copies the full parts in it server-side (UploadPartCopy), prepends the rest (under
  P bytes) to its own bytes and goes on. A put of number 1 writes only its tail (a part 1
  that is also a chunk's must not be cut), so a single-part upload is one PutObject and, at
  ``finish``, one CopyObject. Tails are named by their end so that bytes an unrecorded put
  wrote never shadow the recorded ones: a put that carries bytes never writes the tail it
  started from.

**Node-local copies** (``storage.s3_local``): every put also writes its bytes at their offsets
into a local sparse file, from the buffers it sends; ``finish`` seals that copy if it holds
the whole object, for ``S3Blobs`` to read instead of the object; ``abort`` removes it, and
``stale`` (the sweeper's node) prunes copies left idle.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterable, Callable, Sequence
from pathlib import Path

from botocore.exceptions import ClientError

from pixdrop.models import Part, is_valid_id
from pixdrop.ports import Observer, Staging
from pixdrop.storage.s3_client import (
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    Bucket,
    MemoryBudget,
    Spool,
    content_name,
    error_code,
    is_missing,
    upload_key,
)
from pixdrop.storage.s3_join import join_uploads
from pixdrop.storage.s3_local import MAX_IDLE, Copy, LocalCopies
from pixdrop.storage.s3_multipart import (
    check_upload,
    copy_big,
    copy_parts,
    read,
    upload_part,
)
from pixdrop.storage.s3_parts import (
    Grid,
    Token,
    encode_etags,
    extent,
    grid_plan,
    native_plan,
    quoted,
    tail_name,
)


def kept_name(upload_id: str) -> str:
    """The object naming the content blob an upload was kept as (module docstring)."""
    return f"kept/{upload_id}"


#: Gather this many bytes of a body before one thread hop (hash, observe, buffer).
BATCH = 1024 * 1024


class S3Staging(Staging):
    """``Staging`` as S3 multipart uploads (see the module docstring)."""

    #: The smallest part S3 takes but for the last: the smallest native chunk size on S3.
    min_part_size = MIN_PART_SIZE
    #: ``keep`` copies objects up to this size with one CopyObject, larger ones in parts of
    #: ``copy_part_size`` (S3's CopyObject stops at 5 GiB).
    copy_limit = MAX_PART_SIZE
    copy_part_size = 512 * 1024 * 1024

    def __init__(self, bucket: Bucket, scratch: Path, local: LocalCopies | None = None) -> None:
        self.bucket = bucket
        self.scratch = scratch
        self.part_size = bucket.location.part_size
        self.part_memory = MemoryBudget()
        self.local = local if local is not None else LocalCopies(scratch, 0)

    # --- begin, stale, abort

    async def begin(self, upload_id: str, *, durable: bool = True) -> str:
        key = self.bucket.key(upload_key(upload_id))
        existing = await self._uploads_of(key)
        if existing:  # begun already: the same multipart upload, the same token
            return str(Token(self.part_size, existing[0]))
        answer = await self.bucket.call(self.bucket.client.create_multipart_upload, Key=key)
        return str(Token(self.part_size, answer["UploadId"]))

    async def _uploads_of(self, key: str) -> list[str]:
        """UploadIds of the multipart uploads of *key*, oldest first."""
        answer = await self.bucket.call(self.bucket.client.list_multipart_uploads, Prefix=key)
        found = [
            (upload["Initiated"], upload["UploadId"])
            for upload in answer.get("Uploads", [])
            if upload["Key"] == key
        ]
        return [upload_id for _, upload_id in sorted(found)]

    async def stale(self, older_than: float) -> list[tuple[str, str]]:
        cutoff = time.time() - older_than
        newest: dict[str, float] = {}
        tokens: dict[str, str] = {}

        def touched(upload_id: str, when: float) -> None:
            if is_valid_id(upload_id):
                newest[upload_id] = max(newest.get(upload_id, when), when)

        def multipart() -> None:
            strip = len(self.bucket.key("staging/"))
            pages = self.bucket.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket.name, Prefix=self.bucket.key("staging/")
            )
            for page in pages:
                for upload in page.get("Uploads", []):
                    upload_id = upload["Key"][strip:]
                    touched(upload_id, upload["Initiated"].timestamp())
                    tokens.setdefault(upload_id, str(Token(self.part_size, upload["UploadId"])))

        await self.bucket.run(multipart)
        await self.bucket.run(self.local.prune, min(older_than, MAX_IDLE))
        for name, when in await self.bucket.list_keys("staging/"):
            touched(name.removeprefix("staging/"), when)
        for name, when in await self.bucket.list_keys("tails/"):
            touched(name.split("/")[1], when)
        return [(uid, tokens.get(uid, "")) for uid, when in sorted(newest.items()) if when < cutoff]

    async def abort(self, upload_id: str, token: str) -> None:
        key = self.bucket.key(upload_key(upload_id))
        if self.local.has_any(upload_id):
            await self.bucket.run(self.local.drop, upload_id)
        try:
            uploads = [Token.parse(token).upload_id]
        except ValueError:  # no token (an orphan the sweeper found): whatever is there
            uploads = await self._uploads_of(key)
        for s3_upload in uploads:
            try:
                await self.bucket.call(
                    self.bucket.client.abort_multipart_upload, Key=key, UploadId=s3_upload
                )
            except ClientError as exc:
                if not is_missing(exc):
                    raise
        tails = [name for name, _ in await self.bucket.list_keys(f"tails/{upload_id}/")]
        await self.bucket.delete_keys([upload_key(upload_id), kept_name(upload_id), *tails])

    async def kept_as(self, upload_id: str, token: str) -> str | None:
        def said() -> str | None:
            try:
                answer = self.bucket.client.get_object(
                    Bucket=self.bucket.name, Key=self.bucket.key(kept_name(upload_id))
                )
            except ClientError as exc:
                if is_missing(exc):
                    return None
                raise
            with answer["Body"] as body:
                return str(body.read().decode("ascii"))

        key = await self.bucket.run(said)
        if key is None or await self.bucket.head(content_name(key)) is None:
            return None
        return key

    # --- put_part

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
        key = upload_key(upload_id)
        parsed = Token.parse(token)
        if number == 0:
            return await self._append(upload_id, parsed, offset, data, observe)
        if number == 1 and offset != 0:
            raise ValueError(f"part number 1 is at offset 0, not {offset}")
        if number > MAX_PARTS:
            raise ValueError(f"part number {number} is past S3's {MAX_PARTS} parts")
        if number >= 2:
            chunk, rest = divmod(offset, number - 1)
            if rest or chunk < MIN_PART_SIZE:
                raise ValueError(
                    f"part {number} at offset {offset}: on S3 every part but the last must "
                    f"be at least {MIN_PART_SIZE} bytes (5 MiB) and all of one size "
                    f"(offset = (number - 1) * chunk size)"
                )
        else:
            await check_upload(self.bucket, key, parsed)
        # A native chunk's size is offset / (number - 1); a part 1's length is not known.
        limit = offset + offset // (number - 1) if number >= 2 else None
        copy = self.local.copy(upload_id, offset, limit)
        spool = Spool(parsed.part_size, self.scratch, self.part_memory)
        try:
            sha256 = await self._drain(data, observe, spool.add_all, copy)
            if spool.size > MAX_PART_SIZE:
                raise ValueError(f"a part of {spool.size} bytes is past S3's 5 GiB")
            if number == 1:  # kept as a tail: finish makes part 1 of it (module docstring)
                await self.bucket.call(
                    self.bucket.client.put_object,
                    Key=self.bucket.key(tail_name(upload_id, spool.size)),
                    Body=await self.bucket.run(spool.body),
                )
                return Part(0, spool.size, sha256, 1, "")
            answer = await upload_part(self.bucket, key, parsed, number, spool)
        finally:
            spool.close()
        return Part(offset, offset + spool.size, sha256, number, encode_etags([(number, answer)]))

    async def _drain(
        self,
        data: AsyncIterable[bytes],
        observe: Observer | None,
        sink: Callable[[Sequence[bytes]], None],
        copy: Copy | None = None,
    ) -> str:
        """Feed *data* to *sink* on worker threads, a batch at a time, beside the observer,
        the sha256 and the node-local *copy* (the same buffers, at their offsets; closed with
        the sha256 in the last hop, abandoned if *data* or *sink* fails); return the sha256
        (hex)."""
        hasher = hashlib.sha256()

        def see(batch: list[bytes], last: bool = False) -> None:
            if observe is not None:
                observe(batch)
            for block in batch:
                hasher.update(block)
            if copy is not None:
                copy.write(batch)
            sink(batch)
            if last and copy is not None:
                copy.close(hasher.hexdigest())

        batch: list[bytes] = []
        pending = 0
        try:
            async for block in data:
                if not block:
                    continue
                batch.append(block)
                pending += len(block)
                if pending >= BATCH:
                    await self.bucket.run(see, batch)
                    batch, pending = [], 0
            if batch or (copy is not None and copy.open):
                await self.bucket.run(see, batch, True)
        except BaseException:
            if copy is not None:
                copy.abandon()  # two small writes and closes: inline, whatever the cancel
            raise
        return hasher.hexdigest()

    # --- appends

    async def _append(
        self,
        upload_id: str,
        token: Token,
        offset: int,
        data: AsyncIterable[bytes],
        observe: Observer | None,
    ) -> Part:
        key = upload_key(upload_id)
        await check_upload(self.bucket, key, token)
        size = token.part_size
        line = offset - offset % size  # the grid line at or before the offset
        etags: list[tuple[int, str]] = []
        head = b""
        if offset > 0:
            tail = await self.bucket.head(tail_name(upload_id, offset))
            if tail is None and offset != line:
                raise FileNotFoundError(f"upload {upload_id}: no bytes staged up to {offset}")
            start = offset - (tail or 0)  # a grid line: 0 for a part 1's tail, else `line`
            # Full parts still in that tail (a part 1 longer than P): copied server-side.
            cells = [(cell, cell - start) for cell in range(start, line, size)]
            etags = await copy_parts(
                self.bucket,
                key,
                token,
                tail_name(upload_id, offset),
                [(c // size + 1, at, at + size) for c, at in cells],
            )
            if offset > line:
                head = await read(
                    self.bucket, tail_name(upload_id, offset), line - start, offset - start
                )
        grid = Grid(self.bucket, self.bucket.key(key), token, line, head)
        try:
            sha256 = await self._drain(
                data, observe, grid.feed, self.local.copy(upload_id, offset, None)
            )
        except ClientError as exc:
            if is_missing(exc):
                raise FileNotFoundError(f"no staged upload {key}") from exc
            raise
        end = grid.cell_start + len(grid.cell)
        if end == offset:  # nothing arrived: nothing written, the old tail stands
            return Part(offset, offset, sha256, 0, encode_etags(etags))
        if grid.cell:
            await self.bucket.call(
                self.bucket.client.put_object,
                Key=self.bucket.key(tail_name(upload_id, end)),
                Body=bytes(grid.cell),
            )
        return Part(offset, end, sha256, 0, encode_etags(etags + grid.etags))

    async def finish(self, upload_id: str, token: str, parts: Sequence[Part]) -> str:
        key = await self._finish(upload_id, token, parts)
        if self.local.has_live(upload_id):  # this node wrote bytes of it: do they make it?
            await self.bucket.run(self.local.seal, upload_id, parts)
        return key

    async def _finish(self, upload_id: str, token: str, parts: Sequence[Part]) -> str:
        key = upload_key(upload_id)
        ordered = extent(upload_id, parts)
        parsed = Token.parse(token)
        end = ordered[-1].end if ordered else 0
        if end == 0:
            await self._check_upload_or_object(key, parsed)
            await self.bucket.call(
                self.bucket.client.put_object, Key=self.bucket.key(key), Body=b""
            )
            return key
        if any(part.number >= 2 for part in ordered):
            plan, copies = native_plan(upload_id, ordered)
        else:
            tail = await self.bucket.head(tail_name(upload_id, end))
            start = end - (tail or 0)
            if start == 0:  # all of it in one tail (a part 1, grown by appends below P)
                return await self._finish_by_copy(key, parsed, tail_name(upload_id, end))
            plan, copies = grid_plan(upload_id, parsed, ordered, end, start)
        try:
            for source, items in copies.items():
                plan.update(await copy_parts(self.bucket, key, parsed, source, items))
            await self.bucket.call(
                self.bucket.client.complete_multipart_upload,
                Key=self.bucket.key(key),
                UploadId=parsed.upload_id,
                MultipartUpload={
                    "Parts": [
                        {"PartNumber": number, "ETag": quoted(plan[number])}
                        for number in sorted(plan)
                    ]
                },
            )
        except (ClientError, FileNotFoundError) as exc:
            # Finished before (the multipart upload is gone): the object is the answer.
            if (isinstance(exc, FileNotFoundError) or is_missing(exc)) and await self.bucket.head(
                key
            ) is not None:
                return key
            if isinstance(exc, ClientError) and error_code(exc) == "EntityTooSmall":
                raise ValueError(
                    f"upload {upload_id}: S3 refuses parts under {MIN_PART_SIZE} bytes "
                    "(5 MiB) but for the last"
                ) from exc
            if isinstance(exc, ClientError) and is_missing(exc):
                raise FileNotFoundError(f"no staged upload {upload_id}") from exc
            raise
        return key

    async def _finish_by_copy(self, key: str, token: Token, source: str) -> str:
        try:
            await self.bucket.call(
                self.bucket.client.copy_object,
                Key=self.bucket.key(key),
                CopySource={"Bucket": self.bucket.name, "Key": self.bucket.key(source)},
            )
        except ClientError as exc:
            if is_missing(exc):
                if await self.bucket.head(key) is not None:
                    return key  # finished, then its tails were removed
                raise FileNotFoundError(f"nothing staged for {key}") from exc
            raise
        return key

    async def _check_upload_or_object(self, key: str, token: Token) -> None:
        try:
            await check_upload(self.bucket, key, token)
        except FileNotFoundError:
            if await self.bucket.head(key) is None:
                raise

    async def join(
        self, upload_id: str, token: str, sources: Sequence[tuple[str, str, Sequence[Part]]]
    ) -> str:
        return await join_uploads(self, upload_id, token, sources)

    async def keep(self, upload_id: str, token: str, key: str) -> bool:
        staged, blob = upload_key(upload_id), content_name(key)
        if await self.bucket.head(blob) is not None:
            return False  # identical content stored already
        size = await self.bucket.head(staged)
        if size is None:
            if await self.bucket.head(blob) is not None:
                return False
            raise FileNotFoundError(f"nothing staged for upload {upload_id}")
        # Said before it is done, so that a completion killed before it records the image
        # leaves a trace for ``kept_as`` (``abort`` removes it with the rest).
        await self.bucket.call(
            self.bucket.client.put_object, Key=self.bucket.key(kept_name(upload_id)), Body=key
        )
        source = {"Bucket": self.bucket.name, "Key": self.bucket.key(staged)}
        if size <= self.copy_limit:
            await self.bucket.call(
                self.bucket.client.copy_object, Key=self.bucket.key(blob), CopySource=source
            )
            return True
        await copy_big(self.bucket, staged, blob, size, self.copy_part_size)
        return True
