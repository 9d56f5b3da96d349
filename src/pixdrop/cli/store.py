"""``pixdrop store migrate``: copy every image's blob from one blob store to another.

The command reads the image records (``--data-dir`` / ``--database-url``, as ``serve``) and,
for each distinct blob (``<sha256>``), copies it from the old store into the new one the way an
upload stores bytes, through the target's ``Staging``: begin, one appended part streamed from
the source's ``open_range``, finish, then the staged object is read back through the target's
``Blobs`` and its sha256 checked before ``keep`` makes it the blob; then the staging goes.
No new port method is needed, so any pair of stores works.

* Resumable: a blob already in the target with the right size is skipped, so a run that was
  interrupted (or that failed on some blobs) is simply run again.
* Derived blobs (variants, GPS-free copies) are not copied: servers make them again on demand.
* Read-only on the source: a server can keep serving from the old store meanwhile. Images
  uploaded during the run are copied by running the command once more before switching.
* A source blob whose bytes do not match its sha256 (or its recorded size) is reported and
  never kept in the target; the exit code is then 1.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

import anyio
import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from pixdrop.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    database_options,
    format_size,
)
from pixdrop.cli.reporting import SizeColumn, SpeedColumn
from pixdrop.config import ConfigError, load_settings
from pixdrop.models import new_id
from pixdrop.ports import BlobStore, DigestsInPlace, MetadataStore

#: Blobs copied at once.
DEFAULT_JOBS = 4
_PAGE = 500


@click.group()
def store() -> None:
    """The blob store: move the images to another one."""


@dataclass
class Tally:
    """What a run did, for the summary line."""

    copied: int = 0
    copied_bytes: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


class MigrationError(Exception):
    """A blob that could not be copied (the message says which and why)."""


async def _blobs_of(meta: MetadataStore) -> dict[str, int]:
    """Every image's blob (sha256) and its size, each once."""
    found: dict[str, int] = {}
    after: tuple[datetime, str] | None = None
    while True:
        page = await meta.list_images(_PAGE, after)
        for image in page:
            found.setdefault(image.blob_key, image.size)
        if len(page) < _PAGE:
            return found
        after = (page[-1].created_at, page[-1].id)


async def _sha256_of(target: BlobStore, key: str, size: int) -> str:
    """The sha256 of *key* as the target's ``Blobs`` reads it back."""
    if isinstance(target.blobs, DigestsInPlace):
        return await target.blobs.sha256(key, size)
    hasher = hashlib.sha256()
    async for block in target.blobs.open_range(key, 0, size):
        hasher.update(block)
    return hasher.hexdigest()


async def _present(target: BlobStore, key: str, size: int) -> bool:
    """True if the target holds *key* with *size* bytes; a copy of another size is removed
    (a blob is content-addressed: it can only be wrong), so that it can be copied again."""
    try:
        found = await target.blobs.size(key)
    except FileNotFoundError:
        return False
    if found == size:
        return True
    await target.blobs.delete(key)
    return False


async def copy_blob(
    source: BlobStore, target: BlobStore, key: str, size: int, moved: Callable[[int], None]
) -> None:
    """Copy blob *key* (*size* bytes) from *source* into *target*, verified; raise
    ``MigrationError`` if its bytes are not what its name says (nothing is then kept)."""
    try:
        found = await source.blobs.size(key)
    except FileNotFoundError:
        raise MigrationError(f"{key}: missing in the source store") from None
    if found != size:
        raise MigrationError(f"{key}: {found} bytes in the source store, {size} recorded")
    staging_id = new_id()
    token = await target.staging.begin(staging_id, durable=False)
    try:

        async def stream() -> AsyncIterator[bytes]:
            async for block in source.blobs.open_range(key, 0, size):
                moved(len(block))
                yield block

        part = await target.staging.put_part(staging_id, token, number=0, offset=0, data=stream())
        if part.length != size or part.sha256 != key:
            raise MigrationError(
                f"{key}: the source's bytes do not match their sha256 ({part.length} bytes, "
                f"sha256 {part.sha256}); not copied"
            )
        staged = await target.staging.finish(staging_id, token, [part])
        again = await _sha256_of(target, staged, size)
        if again != key:
            raise MigrationError(f"{key}: read back from the target as sha256 {again}; not kept")
        await target.staging.keep(staging_id, token, key)
        if await target.blobs.size(key) != size:
            raise MigrationError(f"{key}: kept in the target with the wrong size")
    finally:
        with anyio.CancelScope(shield=True):
            await target.staging.abort(staging_id, token)


async def migrate_blobs(
    meta: MetadataStore,
    source: BlobStore,
    target: BlobStore,
    *,
    jobs: int,
    progress: Progress,
) -> Tally:
    """Copy what *target* lacks of every image's blob; see the module docstring."""
    tally = Tally()
    blobs = await _blobs_of(meta)
    total = progress.add_task("checking", total=sum(blobs.values()))
    limiter = anyio.Semaphore(jobs)

    async def one(key: str, size: int) -> None:
        async with limiter:
            if await _present(target, key, size):
                tally.skipped += 1
                progress.advance(total, size)
                return
            progress.update(total, description="copying")
            copied = 0

            def moved(count: int) -> None:
                nonlocal copied
                copied += count
                progress.advance(total, count)

            try:
                await copy_blob(source, target, key, size, moved)
            except Exception as exc:  # one blob's failure must not stop the others
                reason = str(exc) if isinstance(exc, MigrationError) else f"{key}: {exc!r}"
                tally.failed.append(reason)
                progress.console.print(f"pixdrop: {reason}", highlight=False, markup=False)
                progress.advance(total, size - copied)
                return
            tally.copied += 1
            tally.copied_bytes += size

    async with anyio.create_task_group() as tasks:
        for key, size in sorted(blobs.items()):
            tasks.start_soon(one, key, size)
    progress.update(total, description="done")
    return tally


async def _run(
    database_url: str, data_dir: Path, urls: Sequence[str], jobs: int, progress: Progress
) -> Tally:
    from anyio import to_thread

    from pixdrop.metadata import open_metadata_store
    from pixdrop.storage import open_blob_store

    scratch = data_dir / "tmp"
    meta = await to_thread.run_sync(open_metadata_store, database_url)
    opened: list[BlobStore] = []
    try:
        for url in urls:
            opened.append(await to_thread.run_sync(partial(open_blob_store, url, scratch=scratch)))
        return await migrate_blobs(meta, opened[0], opened[1], jobs=jobs, progress=progress)
    finally:
        for each in opened:
            await each.close()
        await meta.close()


@store.command()
@click.option("--from", "source", required=True, metavar="URL", help="The store to copy from.")
@click.option("--to", "target", required=True, metavar="URL", help="The store to copy into.")
@database_options
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    default=DEFAULT_JOBS,
    show_default=True,
    help="Blobs copied at once.",
)
def migrate(
    source: str, target: str, data_dir: Path | None, database_url: str | None, jobs: int
) -> None:
    """Copy every image's bytes from the store --from to the store --to (file:///PATH or
    s3://BUCKET/PREFIX?endpoint_url=...), each verified by its sha256.

    Resumable: blobs already in the target are skipped, so run it again after an
    interruption or a failure, and once more after the last uploads before switching the
    servers to --blob-store URL. Servers may keep serving from the old store meanwhile.
    Variants are not copied: they are made again on demand.

    \b
    Exit codes: 0 every blob is in the target; 1 some could not be copied (listed);
    2 usage error; 130 interrupted: run it again to resume.
    """
    try:
        settings = load_settings(data_dir=data_dir, database_url=database_url)
    except ConfigError as exc:
        click.echo(f"pixdrop: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if source == target:
        click.echo("pixdrop: --from and --to name the same store", err=True)
        sys.exit(EXIT_USAGE)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        SizeColumn(),
        SpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    try:
        with progress:
            tally = anyio.run(
                _run,
                settings.resolved_database_url,
                settings.data_dir,
                (source, target),
                jobs,
                progress,
            )
    except KeyboardInterrupt:
        click.echo("\npixdrop: interrupted; run the same command again to resume", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # a store or the database that cannot be opened
        click.echo(f"pixdrop: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(
        f"pixdrop: copied {tally.copied} blob(s) ({format_size(tally.copied_bytes)}), "
        f"{tally.skipped} already in the target, {len(tally.failed)} failed",
        err=True,
    )
    if tally.failed:
        sys.exit(EXIT_FAILED)
