"""What the S3 store's two halves share: the parsed URL, the boto3 client run on worker
threads, object keys, error mapping, and the spool a part's bytes wait in.

Credentials come only from boto3's standard chain (environment, shared config and profile,
container or instance role); nothing here reads, logs or formats them.
"""

from __future__ import annotations

import functools
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import boto3
from anyio import CapacityLimiter, to_thread
from botocore.config import Config
from botocore.exceptions import ClientError

from pixdrop.models import is_valid_id
from pixdrop.storage.layout import CONTENT_KEY, DERIVED_KEY, STAGED_PREFIX
from pixdrop.storage.s3_local import DEFAULT_BUDGET

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

T = TypeVar("T")

MiB = 1024 * 1024
GiB = 1024 * MiB
#: S3's smallest part, except the last one of an upload.
MIN_PART_SIZE = 5 * MiB
#: S3's largest part, and largest object one PutObject or CopyObject may write.
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
#: The part size of appends unless the URL says otherwise: 8 MiB parts reach 78 GiB.
DEFAULT_PART_SIZE = 8 * MiB
#: How many S3 calls run at once per store (each on a worker thread, one connection each).
CONCURRENCY = 32
READ_BLOCK = 1024 * 1024

_QUERY = {"endpoint_url", "region", "part_size", "max_size", "local_copies"}

MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


@dataclass(frozen=True)
class S3Location:
    """Where an ``s3://BUCKET/PREFIX?endpoint_url=...&region=...`` URL points, the part
    size appends are cut into (``part_size``, at least 5 MiB, grown so that ``max_size``
    bytes need at most 10,000 parts), and how many bytes of node-local copies of uploads a
    node keeps (``local_copies``, default 4 GiB, 0 for none: ``storage.s3_local``)."""

    bucket: str
    prefix: str
    endpoint_url: str | None
    region: str | None
    part_size: int
    local_copies: int = DEFAULT_BUDGET

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url)
        if parts.scheme.lower() != "s3":
            raise ValueError(f"not an s3:// URL: {url!r}")
        if "@" in parts.netloc:
            raise ValueError(
                "blob store URL: credentials do not belong in an s3:// URL; they come from "
                "the standard AWS chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                "AWS_PROFILE and shared config, or a container/instance role)"
            )
        bucket = parts.netloc
        if not 3 <= len(bucket) <= 63 or not all(c.isalnum() or c in ".-" for c in bucket):
            raise ValueError(f"blob store URL {url!r}: expected s3://BUCKET/PREFIX")
        prefix = unquote(parts.path).strip("/")
        if any(segment in ("", ".", "..") for segment in prefix.split("/") if prefix):
            raise ValueError(f"blob store URL {url!r}: bad prefix {prefix!r}")
        query = dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False))
        unknown = set(query) - _QUERY
        if unknown or parts.fragment:
            raise ValueError(
                f"blob store URL {url!r}: unknown parameters {sorted(unknown)}; "
                f"known: {sorted(_QUERY)}"
            )
        part_size = _size(query.get("part_size"), DEFAULT_PART_SIZE, url)
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ValueError(f"blob store URL {url!r}: part_size must be 5 MiB to 5 GiB")
        max_size = _size(query.get("max_size"), 0, url)
        part_size = max(part_size, part_size_for(max_size))
        return cls(
            bucket=bucket,
            prefix=prefix + "/" if prefix else "",
            endpoint_url=query.get("endpoint_url") or None,
            region=query.get("region") or None,
            part_size=part_size,
            local_copies=_size(query.get("local_copies"), DEFAULT_BUDGET, url),
        )


def part_size_for(size: int) -> int:
    """The smallest part size (a whole number of MiB, at least 5 MiB) that cuts *size* bytes
    into at most 10,000 parts."""
    need = -(-size // MAX_PARTS)
    return max(MIN_PART_SIZE, -(-need // MiB) * MiB)


def _size(value: str | None, default: int, url: str) -> int:
    if value is None or value == "":
        return default
    units = {"k": 1024, "m": MiB, "g": GiB}
    text = value.strip().lower().removesuffix("ib").removesuffix("b")
    scale = units.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in units else text
    if not digits.isdigit():
        raise ValueError(f"blob store URL {url!r}: not a size: {value!r}")
    return int(digits) * scale


def new_client(location: S3Location) -> S3Client:
    """A boto3 S3 client; credentials from the standard chain only."""
    session = boto3.session.Session(region_name=location.region)
    config = Config(
        # Checksums only where an operation demands one: every body is already signed with
        # its sha256 over plain HTTP, and TLS protects it over HTTPS.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "max_attempts": 5},
        connect_timeout=10,
        read_timeout=120,
        max_pool_connections=CONCURRENCY,
        s3={"addressing_style": "path" if location.endpoint_url else "auto"},
    )
    return session.client("s3", endpoint_url=location.endpoint_url, config=config)


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_missing(exc: BaseException) -> bool:
    return error_code(exc) in MISSING_CODES


class Bucket:
    """The client, the bucket and the prefix: keys in, calls on worker threads."""

    def __init__(self, location: S3Location, client: S3Client | None = None) -> None:
        self.location = location
        self.name = location.bucket
        self.client: S3Client = client if client is not None else new_client(location)
        self.limiter = CapacityLimiter(CONCURRENCY)

    def key(self, name: str) -> str:
        return self.location.prefix + name

    async def call(self, function: Callable[..., T], /, **kwargs: Any) -> T:
        """``function(Bucket=..., **kwargs)`` on a worker thread."""
        return await to_thread.run_sync(
            functools.partial(function, Bucket=self.name, **kwargs), limiter=self.limiter
        )

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        return await to_thread.run_sync(function, *args, limiter=self.limiter)

    async def head(self, name: str) -> int | None:
        """Size of object *name*, or ``None`` if there is none."""
        try:
            answer = await self.call(self.client.head_object, Key=self.key(name))
        except ClientError as exc:
            if is_missing(exc):
                return None
            raise
        return int(answer["ContentLength"])

    async def list_keys(self, prefix: str) -> list[tuple[str, float]]:
        """``(name, last modified)`` of every object whose name starts with *prefix*."""

        def walk() -> list[tuple[str, float]]:
            found = []
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.name, Prefix=self.key(prefix)
            )
            strip = len(self.location.prefix)
            for page in pages:
                for item in page.get("Contents", []):
                    found.append((item["Key"][strip:], item["LastModified"].timestamp()))
            return found

        return await self.run(walk)

    async def delete_keys(self, names: list[str]) -> None:
        for start in range(0, len(names), 1000):
            batch = [{"Key": self.key(name)} for name in names[start : start + 1000]]
            await self.call(self.client.delete_objects, Delete={"Objects": batch, "Quiet": True})

    def close(self) -> None:
        self.client.close()


def upload_key(upload_id: str) -> str:
    """The object a finished upload becomes: ``staging/<id>``."""
    if not is_valid_id(upload_id):
        raise ValueError(f"not an upload id: {upload_id!r}")
    return STAGED_PREFIX + upload_id


def object_name(key: str) -> str:
    """The object (under the prefix) of a ``Blobs`` key: content, derived or staged."""
    if CONTENT_KEY.fullmatch(key):
        return "blobs/" + key
    if key.startswith(STAGED_PREFIX) and is_valid_id(key[len(STAGED_PREFIX) :]):
        return key
    if DERIVED_KEY.fullmatch(key):
        return "derived/" + key
    raise ValueError(f"not a blob key: {key!r}")


def content_name(key: str) -> str:
    if not CONTENT_KEY.fullmatch(key):
        raise ValueError(f"not a content blob key (sha256 hex): {key!r}")
    return "blobs/" + key


def derived_name(key: str) -> str:
    if not DERIVED_KEY.fullmatch(key):
        raise ValueError(f"not a derived blob key (<sha256>/<name>): {key!r}")
    return "derived/" + key


#: Bytes of parts on their way to S3 that one process keeps in memory, all requests together;
#: parts past it go through scratch files. Measured (bench/scale.py): 8 MiB parts, 4 in flight
#: held 32 MiB more than an idle server, 150 MiB peak in all for a 1 GiB upload.
PART_MEMORY = 16 * MiB


class MemoryBudget:
    """Bytes the spools of one process may hold in memory at once (thread-safe)."""

    def __init__(self, total: int = PART_MEMORY) -> None:
        self.total = total
        self.used = 0
        self._lock = threading.Lock()

    def take(self, count: int) -> bool:
        """Reserve *count* bytes; False (nothing reserved) if that would pass the total."""
        with self._lock:
            if self.used + count > self.total:
                return False
            self.used += count
            return True

    def give(self, count: int) -> None:
        with self._lock:
            self.used -= count


class Spool:
    """The bytes of one part on their way to S3: in memory while the part stays under *limit*
    bytes and the process's *budget* allows, else in a temporary file under *scratch*. So
    memory stays bounded whatever the number of parts in flight.

    ``add`` and ``body`` run on worker threads; ``close`` gives the memory back."""

    def __init__(self, limit: int, scratch: Path, budget: MemoryBudget | None = None) -> None:
        self.limit = limit
        self.scratch = scratch
        self.budget = budget
        self.size = 0
        self.buffer = bytearray()
        self.file: IO[bytes] | None = None

    def _fits(self, count: int) -> bool:
        if self.size + count > self.limit:
            return False
        return self.budget is None or self.budget.take(count)

    def add(self, block: bytes | memoryview) -> None:
        if self.file is None and not self._fits(len(block)):
            self.scratch.mkdir(parents=True, exist_ok=True)
            self.file = tempfile.TemporaryFile(dir=self.scratch, prefix="s3-part-")  # noqa: SIM115
            self.file.write(self.buffer)
            self._release()
        if self.file is not None:
            self.file.write(block)
        else:
            self.buffer += block
        self.size += len(block)

    def add_all(self, blocks: Sequence[bytes]) -> None:
        for block in blocks:
            self.add(block)

    def body(self) -> bytes | IO[bytes]:
        """The bytes, once all were added: the buffer itself, or the spooled file.

        botocore takes a ``bytearray`` body as it is (its validator accepts bytes, bytearray
        and str; the stubs name only bytes): a ``bytes`` copy doubled each part in memory,
        16 MiB per 8 MiB part in flight."""
        if self.file is None:
            return cast(bytes, self.buffer)
        self.file.flush()
        self.file.seek(0)
        return self.file

    def _release(self) -> None:
        if self.budget is not None:
            self.budget.give(len(self.buffer))
        self.buffer = bytearray()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
        self._release()


def scratch_dir(path: str | os.PathLike[str] | None) -> Path:
    """Where parts bigger than memory allows, materialized copies and node-local copies of
    uploads are written."""
    return Path(path) if path is not None else Path(tempfile.gettempdir()) / "pixdrop-s3"
