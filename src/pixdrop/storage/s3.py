"""The blob store in an S3-compatible bucket: ``S3Store`` = ``S3Staging`` + ``S3Blobs``.

Opened by ``storage.open_blob_store("s3://BUCKET/PREFIX?endpoint_url=...&region=...")``; the
bucket must exist. Objects under ``PREFIX/``: ``blobs/<sha256>``, ``derived/<sha256>/<name>``,
``staging/<upload id>`` (a finished upload) and ``tails/<upload id>/<end>`` (appended bytes
not yet in a full part); how uploads map onto multipart uploads is in ``storage.s3_staging``.
Credentials come only from the standard AWS chain (environment, shared config and profile,
container or instance role): never from the URL, never logged.

**Client: boto3, its calls on worker threads** (``anyio.to_thread``, at most 32 at once per
store). Chosen by measurement (``bench/s3_clients.py``: 256 MiB as 32 parts of 8 MiB, 4 in
flight, to SeaweedFS on loopback, 3 interleaved rounds, medians, ratios to boto3 per round):

=================  ========  ==============  ================  ==============
client             MB/s      CPU s / 256 MiB  CPU vs boto3      RSS after import
=================  ========  ==============  ================  ==============
boto3 + threads    77        0.43            1.00              49 MiB
aiobotocore        62        0.57            1.30              64 MiB
obstore (put)      93        0.34            0.78              19 MiB
=================  ========  ==============  ================  ==============

Throughput was bound by the SeaweedFS server sharing two cores (it swung 57-101 MB/s between
rounds for the same client), so CPU and memory decide: aiobotocore costs 30 % more CPU per
byte (aiohttp's event-loop I/O plus botocore's async wrappers) and 15 MiB more memory than
boto3, whose ``upload_part`` releases the GIL while it hashes and sends. obstore is cheaper
still but has no API for an explicit multipart upload (no UploadId, no part numbers, no
Complete from our ETags: ``put`` cuts and completes by itself), so an upload could not be
continued by another node from its recorded receipts; it was measured only as a ceiling.
"""

from __future__ import annotations

import os
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from pixdrop.ports import Blobs, Staging
from pixdrop.storage.s3_blobs import S3Blobs
from pixdrop.storage.s3_client import Bucket, S3Location, error_code, scratch_dir
from pixdrop.storage.s3_local import LocalCopies
from pixdrop.storage.s3_staging import S3Staging

__all__ = ["S3Blobs", "S3Location", "S3Staging", "S3Store"]


class S3Store:
    """A ``BlobStore`` in an S3 bucket; *scratch* is a local directory for parts larger than
    memory should hold, for materialized copies and for the node-local copies of uploads
    (``storage.s3_local``; default: the system's temp dir)."""

    def __init__(self, location: S3Location, *, scratch: str | os.PathLike[str] | None = None):
        self.location = location
        self.bucket = Bucket(location)
        self.scratch: Path = scratch_dir(scratch)
        #: What this node sent to the bucket, kept so that completing reads it back locally.
        self.local = LocalCopies(self.scratch, location.local_copies)
        #: The same objects as ``staging`` and ``blobs``, with their concrete types.
        self.s3_staging = S3Staging(self.bucket, self.scratch, self.local)
        self.s3_blobs = S3Blobs(self.bucket, self.scratch, self.local)
        self.staging: Staging = self.s3_staging
        self.blobs: Blobs = self.s3_blobs

    @classmethod
    def open(cls, url: str, *, scratch: str | os.PathLike[str] | None = None) -> S3Store:
        """Open the store at *url*; ``ValueError`` if the URL is wrong or the bucket cannot be
        reached (missing, or no access), naming the bucket and the endpoint."""
        store = cls(S3Location.parse(url), scratch=scratch)
        try:
            store.bucket.client.head_bucket(Bucket=store.location.bucket)
        except ClientError as exc:
            store.bucket.close()
            code = error_code(exc)
            where = store.location.endpoint_url or "AWS"
            reason = "does not exist" if code in ("404", "NoSuchBucket") else f"answers {code}"
            raise ValueError(
                f"blob store: bucket {store.location.bucket!r} at {where} {reason}; "
                "create it first and check the credentials (standard AWS chain)"
            ) from None
        except BotoCoreError as exc:  # unreachable, no credentials, ...
            store.bucket.close()
            raise ValueError(
                f"blob store: bucket {store.location.bucket!r} at "
                f"{store.location.endpoint_url or 'AWS'} cannot be reached: {exc}"
            ) from None
        return store

    async def ping(self) -> None:
        """One HeadBucket request; ``OSError`` if it fails (unreachable, denied, missing)."""
        try:
            await self.bucket.call(self.bucket.client.head_bucket)
        except ClientError as exc:
            raise OSError(
                f"blob store: bucket {self.location.bucket!r} answers {error_code(exc)}"
            ) from exc
        except BotoCoreError as exc:
            raise OSError(
                f"blob store: bucket {self.location.bucket!r} cannot be reached: {exc}"
            ) from exc

    async def close(self) -> None:
        """Release the client's connections."""
        self.bucket.close()
