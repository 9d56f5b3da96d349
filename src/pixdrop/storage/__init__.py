"""Blob stores: where the bytes of uploads and images live.

``open_blob_store(url)`` opens one by URL; the composition root picks the URL from the
settings (``default_blob_store_url(data_dir)`` when none is configured).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pixdrop.ports import BlobStore
from pixdrop.storage.local import LocalStore

__all__ = ["default_blob_store_url", "open_blob_store"]

_SUPPORTED = (
    "file:///absolute/path, a plain directory path, or "
    "s3://BUCKET/PREFIX?endpoint_url=URL&region=REGION"
)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")


def default_blob_store_url(data_dir: Path) -> str:
    """The URL of the local store in *data_dir* (``file:///...``, absolute)."""
    return data_dir.resolve().as_uri()


def open_blob_store(
    url: str, *, sync: bool = True, scratch: str | os.PathLike[str] | None = None
) -> BlobStore:
    """Open the blob store at *url*: ``file:///absolute/path`` or a plain directory path (a
    local store, created if missing; with *sync* off nothing is flushed to the disk), or
    ``s3://BUCKET/PREFIX?endpoint_url=URL&region=REGION`` (an S3-compatible bucket, which
    must exist; ``endpoint_url`` is optional on AWS; ``part_size`` and ``max_size`` tune the
    part size of appends; *scratch* is its local directory for temporary files). S3
    credentials come from the standard AWS chain, never from the URL.

    Raise ``ValueError`` for any other URL, naming the supported ones, and for a bucket that
    cannot be reached.
    """
    if not url:
        raise ValueError(f"empty blob store URL; supported: {_SUPPORTED}")
    scheme = _SCHEME.match(url)
    if scheme is None:  # a plain path (write ./a:b for a directory whose name has a colon)
        return LocalStore(Path(url), sync=sync)
    name = scheme[1].lower()
    if name == "file":
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            raise ValueError(f"blob store URL {url!r}: expected file:///absolute/path")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"blob store URL {url!r}: expected file:///absolute/path")
        return LocalStore(Path(path), sync=sync)
    if name == "s3":
        from pixdrop.storage.s3 import S3Store  # boto3 is imported only for an S3 store

        return S3Store.open(url, scratch=scratch)
    raise ValueError(
        f"blob store URL {url!r}: unsupported scheme {name!r}; supported: {_SUPPORTED}"
    )
