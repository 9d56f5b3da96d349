"""What one metadata transaction costs the server on SQLite, in CPU: a write, and a lookup.

    python -m bench.metadata_tx                # 2000 of each, 3 rounds
    python -m bench.metadata_tx --count 500 --rounds 5

Opens a real ``SqlMetadataStore`` on a new SQLite file (synchronous=FULL, as served), under
uvloop as ``pixdrop serve`` runs, and times with the process's CPU clock (every thread: the
group commit's worker threads too): ``create_image`` (a write through the group commit, one
at a time, so each is its own commit and fsync) and ``get_upload`` (an inline lookup by
primary key, as on the path of every chunk). Figures are per transaction; compare two trees
with ``PYTHONPATH=<tree>/src``. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import uvloop

from pixdrop.metadata import open_metadata_store
from pixdrop.models import Image, Upload, UploadState, new_id


def _image() -> Image:
    return Image(
        id=new_id(),
        sha256=secrets.token_hex(32),
        size=100_000,
        content_type="image/jpeg",
        format="jpeg",
        width=1024,
        height=768,
        created_at=datetime.now(UTC),
        delete_token_hash=secrets.token_hex(32),
        filename="photo.jpg",
        placeholder="1QcSHQRnh493V4dIh4eXh1h4kJUI",
    )


def _upload() -> Upload:
    now = datetime.now(UTC)
    return Upload(
        id=new_id(),
        size=1 << 20,
        chunk_size=1 << 16,
        sha256=None,
        state=UploadState.RECEIVING,
        created_at=now,
        expires_at=now.replace(year=now.year + 1),
    )


async def _round(folder: Path, count: int) -> tuple[float, float]:
    store = open_metadata_store(f"sqlite:///{folder / (new_id() + '.db')}")
    try:
        upload = _upload()
        await store.create_upload(upload)
        await store.get_upload(upload.id)  # warm: statement caches, connections
        images = [_image() for _ in range(count)]
        started = time.process_time()
        for image in images:
            await store.create_image(image)
        write = (time.process_time() - started) / count
        started = time.process_time()
        for _ in range(count):
            await store.get_upload(upload.id)
        lookup = (time.process_time() - started) / count
    finally:
        await store.close()
    return write * 1e6, lookup * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metadata_tx", description=__doc__)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    writes, lookups = [], []
    with tempfile.TemporaryDirectory(prefix="pixdrop-metadata-tx-") as tmp:
        for _ in range(args.rounds):
            write, lookup = uvloop.run(_round(Path(tmp), args.count))
            writes.append(write)
            lookups.append(lookup)
    for label, figures in (("create_image (write)", writes), ("get_upload (lookup)", lookups)):
        print(
            f"{label}: {statistics.median(figures):.0f} us CPU per transaction "
            f"({min(figures):.0f}-{max(figures):.0f}, {args.rounds} rounds of {args.count})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
