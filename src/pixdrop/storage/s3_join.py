"""tus concatenation on S3 (``S3Staging.join``), apart from the rest of staging."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pixdrop.models import Part
from pixdrop.storage.s3_client import Spool, upload_key
from pixdrop.storage.s3_multipart import copy_parts, read, upload_part
from pixdrop.storage.s3_parts import Token, extent, quoted, spans

if TYPE_CHECKING:
    from pixdrop.storage.s3_staging import S3Staging


async def join_uploads(
    staging: S3Staging,
    upload_id: str,
    token: str,
    sources: Sequence[tuple[str, str, Sequence[Part]]],
) -> str:
    """``S3Staging.join``: the target's parts, on its grid of size P, copied server-side
    (UploadPartCopy) from the sources' finished objects; a part that spans two sources goes
    through memory (under P bytes)."""
    key = upload_key(upload_id)
    for source, _, _ in sources:
        upload_key(source)
        if source == upload_id:
            raise ValueError(f"upload {upload_id} cannot join itself")
    parsed = Token.parse(token)
    if await staging.bucket.head(key) is not None:
        return key  # joined before
    pieces: list[tuple[str, int]] = []
    for source, source_token, parts in sources:
        source_key = await staging.finish(source, source_token, parts)
        size = extent(source, parts)[-1].end if parts else 0
        if size:
            pieces.append((source_key, size))
    total = sum(size for _, size in pieces)
    if total == 0:
        return await staging.finish(upload_id, token, [])
    size = parsed.part_size
    etags: dict[int, str] = {}
    copies: dict[str, list[tuple[int, int, int]]] = {}
    for cell in range(0, total, size):
        number, span = cell // size + 1, spans(pieces, cell, min(total, cell + size))
        if len(span) == 1:
            name, start, end = span[0]
            copies.setdefault(name, []).append((number, start, end))
        else:  # across sources: through memory (under P bytes)
            body = b"".join(
                [await read(staging.bucket, name, start, end) for name, start, end in span]
            )
            spool = Spool(size, staging.scratch)
            spool.add(body)
            etags[number] = await upload_part(staging.bucket, key, parsed, number, spool)
    for source, items in copies.items():
        etags.update(await copy_parts(staging.bucket, key, parsed, source, items))
    await staging.bucket.call(
        staging.bucket.client.complete_multipart_upload,
        Key=staging.bucket.key(key),
        UploadId=parsed.upload_id,
        MultipartUpload={
            "Parts": [{"PartNumber": n, "ETag": quoted(etags[n])} for n in sorted(etags)]
        },
    )
    return key
