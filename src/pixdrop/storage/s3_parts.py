"""The S3 staging's bookkeeping, without I/O but the grid's uploads: the token, the part
receipts' ETag lists, tail names, and which part comes from where when an upload is finished
or joined (see ``storage.s3_staging``)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pixdrop.models import Part
from pixdrop.storage.s3_client import MAX_PARTS, MIN_PART_SIZE, Bucket

#: How finish and join get each part: its ETag (uploaded), and server-side copies to make,
#: by source object: ``(part number, start, end)``.
Plan = tuple[dict[int, str], dict[str, list[tuple[int, int, int]]]]

#: Server-side copies run at once in one finish or join.
COPIES_IN_FLIGHT = 8
TOKEN_PREFIX = "s3:"  # noqa: S105 - a format tag, not a secret


@dataclass(frozen=True)
class Token:
    part_size: int
    upload_id: str

    def __str__(self) -> str:
        return f"{TOKEN_PREFIX}{self.part_size}:{self.upload_id}"

    @classmethod
    def parse(cls, token: str) -> Token:
        try:
            scheme_size, upload_id = token.removeprefix(TOKEN_PREFIX).split(":", 1)
            part_size = int(scheme_size)
        except ValueError:
            raise ValueError(f"not an S3 staging token: {token!r}") from None
        if not token.startswith(TOKEN_PREFIX) or not upload_id or part_size < MIN_PART_SIZE:
            raise ValueError(f"not an S3 staging token: {token!r}")
        return cls(part_size, upload_id)


def encode_etags(etags: Sequence[tuple[int, str]]) -> str:
    return " ".join(f"{number}:{etag.strip(chr(34))}" for number, etag in etags)


def decode_etags(text: str | None) -> dict[int, str]:
    found: dict[int, str] = {}
    for item in (text or "").split():
        number, _, etag = item.partition(":")
        if not number.isdigit() or not etag:
            raise ValueError(f"not an S3 part receipt: {text!r}")
        found[int(number)] = etag
    return found


def quoted(etag: str) -> str:
    return '"' + etag.strip('"') + '"'


def tail_name(upload_id: str, end: int) -> str:
    return f"tails/{upload_id}/{end}"


def extent(upload_id: str, parts: Sequence[Part]) -> list[Part]:
    """*parts* ordered; ``ValueError`` unless they cover ``[0, end)`` without gap or overlap."""
    ordered = sorted(parts, key=lambda p: (p.start, p.end))
    position = 0
    for part in ordered:
        if part.start != position or part.end < part.start:
            raise ValueError(
                f"parts of {upload_id} are not contiguous from 0: "
                f"expected a part at {position}, got [{part.start}, {part.end})"
            )
        position = part.end
    return ordered


class Grid:
    """Bytes on the grid of parts of size P, fed on worker threads: full parts go up at once,
    the rest stays in one buffer (at most P bytes) for the tail."""

    def __init__(self, bucket: Bucket, key: str, token: Token, start: int, head: bytes) -> None:
        self.bucket = bucket
        self.key = key
        self.token = token
        self.cell_start = start  # a grid line
        self.cell = bytearray(head)
        self.etags: list[tuple[int, str]] = []

    def feed(self, blocks: Sequence[bytes]) -> None:
        size = self.token.part_size
        for block in blocks:
            view = memoryview(block)
            while view:
                room = size - len(self.cell)
                self.cell += view[:room]
                view = view[room:]
                if len(self.cell) == size:
                    self._upload_full()

    def _upload_full(self) -> None:
        number = self.cell_start // self.token.part_size + 1
        if number > MAX_PARTS:
            raise ValueError(
                f"the upload grows past {MAX_PARTS} parts of {self.token.part_size} bytes"
            )
        answer = self.bucket.client.upload_part(
            Bucket=self.bucket.name,
            Key=self.key,
            UploadId=self.token.upload_id,
            PartNumber=number,
            Body=bytes(self.cell),
        )
        self.etags.append((number, answer["ETag"]))
        self.cell_start += self.token.part_size
        self.cell = bytearray()


def native_plan(
    upload_id: str, ordered: list[Part]
) -> tuple[dict[int, str], dict[str, list[tuple[int, int, int]]]]:
    """Parts of a chunked upload: part 1 from its tail, the others from the receipts."""
    plan: dict[int, str] = {}
    copies: dict[str, list[tuple[int, int, int]]] = {}
    for index, part in enumerate(ordered):
        last = index == len(ordered) - 1
        if not last and part.length < MIN_PART_SIZE:
            raise ValueError(
                f"upload {upload_id}: part {part.number} has {part.length} bytes; on S3 "
                f"every part but the last must be at least {MIN_PART_SIZE} bytes (5 MiB)"
            )
        if part.number == 1:
            copies[tail_name(upload_id, part.end)] = [(1, 0, part.length)]
        elif part.number >= 2:
            etags = decode_etags(part.etag)
            if part.number not in etags:
                raise ValueError(f"upload {upload_id}: receipt of part {part.number}: no etag")
            plan[part.number] = etags[part.number]
        else:
            raise ValueError(f"upload {upload_id}: an append among numbered chunks")
    return plan, copies


def grid_plan(
    upload_id: str, token: Token, ordered: list[Part], end: int, start: int
) -> tuple[dict[int, str], dict[str, list[tuple[int, int, int]]]]:
    """Parts of an appended upload: full parts before *start* from the receipts, the rest
    from the tail ``[start, end)``."""
    size = token.part_size
    known: dict[int, str] = {}
    for part in ordered:
        known.update(decode_etags(part.etag))
    plan: dict[int, str] = {}
    from_tail: list[tuple[int, int, int]] = []
    for cell in range(0, end, size):
        number = cell // size + 1
        if cell >= start:
            from_tail.append((number, cell - start, min(end, cell + size) - start))
        elif number in known:
            plan[number] = known[number]
        else:
            raise ValueError(f"upload {upload_id}: no receipt names part {number}")
    return plan, {tail_name(upload_id, end): from_tail} if from_tail else {}


def spans(pieces: list[tuple[str, int]], start: int, end: int) -> list[tuple[str, int, int]]:
    """The ranges of the source objects that bytes ``[start, end)`` of the joined
    object come from: ``(object name, start, end)``."""
    spans, position = [], 0
    for name, size in pieces:
        lo, hi = max(start, position), min(end, position + size)
        if lo < hi:
            spans.append((name, lo - position, hi - position))
        position += size
    return spans
