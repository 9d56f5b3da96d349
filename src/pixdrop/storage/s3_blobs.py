"""``Blobs`` on S3: ``blobs/<sha256>``, ``derived/<sha256>/<name>`` and ``staging/<upload id>``
under the store's prefix. Reads stream (ranged GETs, a block at a time); ``materialize``
streams the object into a temporary file under the scratch directory.

A finished upload (``staging/<upload id>``) whose every byte this node sent to the bucket has
a sealed node-local copy (``storage.s3_local``): ``materialize`` answers that file itself and
``open_range`` reads it, so the decoder and the sha256 read no byte back from the bucket."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from anyio import to_thread
from botocore.exceptions import ClientError

from pixdrop.ports import Blobs
from pixdrop.storage import files
from pixdrop.storage.layout import CONTENT_KEY, STAGED_PREFIX
from pixdrop.storage.s3_client import (
    READ_BLOCK,
    Bucket,
    derived_name,
    error_code,
    is_missing,
    object_name,
)
from pixdrop.storage.s3_local import LocalCopies


class S3Blobs(Blobs):
    """``Blobs`` as objects in a bucket (see the module docstring)."""

    def __init__(self, bucket: Bucket, scratch: Path, local: LocalCopies | None = None) -> None:
        self.bucket = bucket
        self.scratch = scratch
        self.local = local if local is not None else LocalCopies(scratch, 0)

    def _local_copy(self, key: str) -> Path | None:
        """The sealed node-local copy of a staged key, if this node has one."""
        if not key.startswith(STAGED_PREFIX):
            return None
        return self.local.sealed(key[len(STAGED_PREFIX) :])

    async def _get(self, name: str, start: int = 0, end: int | None = None) -> Any:
        """The streaming body of bytes ``[start, end)`` of *name* (all of it without *end*),
        or ``None`` if that is empty; ``FileNotFoundError`` if there is no such object."""
        try:
            if end is not None and end <= start:
                await self.bucket.call(self.bucket.client.head_object, Key=self.bucket.key(name))
                return None
            ranged = {} if end is None else {"Range": f"bytes={start}-{end - 1}"}
            answer = await self.bucket.call(
                self.bucket.client.get_object, Key=self.bucket.key(name), **ranged
            )
        except ClientError as exc:
            if is_missing(exc):
                raise FileNotFoundError(f"no blob {name}") from exc
            if error_code(exc) == "InvalidRange":  # starts at or past the end
                return None
            raise
        return answer["Body"]

    async def open_range(self, key: str, start: int, end: int) -> AsyncIterator[bytes]:
        name = object_name(key)
        copy = self._local_copy(key)
        if copy is not None:
            async for block in files.read_range(copy, start, end):
                yield block
            return
        body = await self._get(name, start, end)
        if body is None:
            return
        try:
            while True:
                block = await self.bucket.run(body.read, READ_BLOCK)
                if not block:
                    break
                yield block
        finally:
            body.close()

    async def size(self, key: str) -> int:
        name = object_name(key)
        found = await self.bucket.head(name)
        if found is None:
            raise FileNotFoundError(f"no blob {key}")
        return found

    async def delete(self, key: str) -> None:
        names = [object_name(key)]
        if CONTENT_KEY.fullmatch(key):  # a source takes its renditions with it
            names += [name for name, _ in await self.bucket.list_keys(f"derived/{key}/")]
        await self.bucket.delete_keys(names)

    async def put_small(self, key: str, data: bytes) -> None:
        name = derived_name(key)
        await self.bucket.call(self.bucket.client.put_object, Key=self.bucket.key(name), Body=data)

    @asynccontextmanager
    async def materialize(self, key: str) -> AsyncIterator[Path]:
        name = object_name(key)
        copy = self._local_copy(key)
        if copy is not None:
            yield copy  # the copy itself: no GET (``abort`` removes it with the upload)
            return
        body = await self._get(name)

        def download() -> Path:
            self.scratch.mkdir(parents=True, exist_ok=True)
            fd, path = tempfile.mkstemp(dir=self.scratch, prefix="blob-")
            try:
                with os.fdopen(fd, "wb") as out:
                    while body is not None and (block := body.read(READ_BLOCK)):
                        out.write(block)
            except BaseException:
                os.unlink(path)
                raise
            return Path(path)

        try:
            path = await self.bucket.run(download)
        finally:
            if body is not None:
                body.close()
        try:
            yield path
        finally:
            with contextlib.suppress(FileNotFoundError):
                await to_thread.run_sync(path.unlink)

    def presign(self, key: str, expires: int = 3600) -> str:
        """A URL that GETs *key* without credentials for *expires* seconds (signed locally:
        no request is made)."""
        return self.bucket.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket.name, "Key": self.bucket.key(object_name(key))},
            ExpiresIn=expires,
        )
