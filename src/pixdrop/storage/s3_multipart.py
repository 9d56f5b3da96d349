"""The S3 staging's calls on one multipart upload: parts uploaded from a spool, copied
server-side (UploadPartCopy) from ranges of other objects, the check that an upload is still
there, and ranged reads of the small objects (tails) it is built from."""

from __future__ import annotations

import anyio
from botocore.exceptions import ClientError

from pixdrop.storage.s3_client import MAX_PARTS, Bucket, Spool, is_missing
from pixdrop.storage.s3_parts import COPIES_IN_FLIGHT, Token


async def upload_part(bucket: Bucket, key: str, token: Token, number: int, spool: Spool) -> str:
    def upload() -> str:
        answer = bucket.client.upload_part(
            Bucket=bucket.name,
            Key=bucket.key(key),
            UploadId=token.upload_id,
            PartNumber=number,
            Body=spool.body(),
            ContentLength=spool.size,
        )
        return answer["ETag"]

    try:
        return await bucket.run(upload)
    except ClientError as exc:
        if is_missing(exc):
            raise FileNotFoundError(f"no staged upload {key}") from exc
        raise


async def check_upload(bucket: Bucket, key: str, token: Token) -> None:
    """``FileNotFoundError`` unless the multipart upload is there (not aborted)."""
    try:
        await bucket.call(
            bucket.client.list_parts,
            Key=bucket.key(key),
            UploadId=token.upload_id,
            MaxParts=1,
        )
    except ClientError as exc:
        if is_missing(exc):
            raise FileNotFoundError(f"no staged upload {key}") from exc
        raise


async def read(bucket: Bucket, name: str, start: int, end: int) -> bytes:
    """Bytes ``[start, end)`` of object *name* (a tail: under P bytes)."""

    def read() -> bytes:
        answer = bucket.client.get_object(
            Bucket=bucket.name, Key=bucket.key(name), Range=f"bytes={start}-{end - 1}"
        )
        with answer["Body"] as body:
            return body.read()

    got = await bucket.run(read)
    if len(got) != end - start:
        raise OSError(f"{name} holds fewer bytes than [{start}, {end})")
    return got


async def copy_parts(
    bucket: Bucket, key: str, token: Token, source: str, copies: list[tuple[int, int, int]]
) -> list[tuple[int, str]]:
    """UploadPartCopy ``(number, start, end)`` of object *source*; their etags."""
    done: dict[int, str] = {}
    limiter = anyio.Semaphore(COPIES_IN_FLIGHT)

    async def copy(number: int, start: int, end: int) -> None:
        async with limiter:
            try:
                answer = await bucket.call(
                    bucket.client.upload_part_copy,
                    Key=bucket.key(key),
                    UploadId=token.upload_id,
                    PartNumber=number,
                    CopySource={"Bucket": bucket.name, "Key": bucket.key(source)},
                    CopySourceRange=f"bytes={start}-{end - 1}",
                )
            except ClientError as exc:
                if is_missing(exc):
                    raise FileNotFoundError(f"no staged upload {key}") from exc
                raise
            done[number] = answer["CopyPartResult"]["ETag"]

    try:
        async with anyio.create_task_group() as group:
            for number, start, end in copies:
                group.start_soon(copy, number, start, end)
    except ExceptionGroup as failed:  # one copy's error, as a plain exception
        first: BaseException = failed
        while isinstance(first, ExceptionGroup):
            first = first.exceptions[0]
        raise first from None
    return sorted(done.items())


# --- finish, join, keep


async def copy_big(bucket: Bucket, staged: str, blob: str, size: int, part: int) -> None:
    """Copy an object past 5 GiB as a multipart upload of server-side part copies."""
    key = bucket.key(blob)
    created = await bucket.call(bucket.client.create_multipart_upload, Key=key)
    part = max(part, -(-size // MAX_PARTS))
    token = Token(part, created["UploadId"])
    items = [(i // part + 1, i, min(size, i + part)) for i in range(0, size, part)]
    try:
        etags = await copy_parts(bucket, blob, token, staged, items)
        await bucket.call(
            bucket.client.complete_multipart_upload,
            Key=key,
            UploadId=token.upload_id,
            MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in etags]},
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await bucket.call(
                bucket.client.abort_multipart_upload, Key=key, UploadId=token.upload_id
            )
        raise
