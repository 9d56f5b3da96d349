"""``pixdrop upload | uploads | status``: sending files, and the uploads not finished yet.

Everything about transfers (chunks, parallelism, resume, retries) is ``pixdrop.client``'s; this
module parses arguments, draws progress with rich on stderr and prints results on stdout.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from pixdrop.cli.common import (
    EXIT_CODES,
    EXIT_FAILED,
    EXIT_OK,
    UPLOAD_EXIT_CODES,
    api_key,
    emit,
    error_json,
    fail,
    format_size,
    interruptible,
    json_option,
    note_retry,
    parse_size,
    server_option,
    size_option,
)
from pixdrop.cli.reporting import Reporter, describe
from pixdrop.client import (
    Client,
    GoneError,
    NotFoundError,
    PixdropClientError,
    ResumeStore,
    TokenStore,
    UploadStatus,
)
from pixdrop.client.source import Fingerprint
from pixdrop.formats import BY_NAME, DEFAULT_NAMES

__all__ = ["IMAGE_SUFFIXES", "expand_paths", "parse_size", "status", "upload", "uploads"]

#: Files taken from a directory: those of the formats a server accepts by default (a file
#: named on the command line is always sent).
IMAGE_SUFFIXES = {ext for name in DEFAULT_NAMES for ext in BY_NAME[name].extensions}


# --- upload ------------------------------------------------------------------------------------


def expand_paths(args: Iterable[str]) -> list[Path]:
    """Files named, image files under directories, and glob matches; in order, once each."""
    found: dict[Path, None] = {}
    for arg in args:
        path = Path(arg)
        if path.is_dir():
            files = [p for p in sorted(path.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
            matches = [p for p in files if p.is_file()]
        elif path.is_file():
            matches = [path]
        elif any(c in arg for c in "*?["):
            matches = [Path(p) for p in sorted(glob.glob(arg, recursive=True))]
            matches = [p for p in matches if p.is_file()]
        else:
            raise click.UsageError(f"no such file or directory: {arg}")
        if not matches:
            raise click.UsageError(f"no image files in {arg}")
        found.update(dict.fromkeys(matches))
    return list(found)


def _upload_all(
    client: Client, reporter: Reporter, files: list[Path], options: dict[str, Any]
) -> int:
    """Upload *files* in turn; return how many failed."""
    tokens, failed, as_json = TokenStore(), 0, options["as_json"]
    for path in files:
        task, moved = reporter.track(path)
        try:
            image = client.upload(
                path,
                chunk_size=options["chunk_size"],
                parallel=options["parallel"],
                on_progress=moved,
            )
        except (PixdropClientError, OSError) as exc:
            upload_id = reporter.upload_id
            reporter.settle(path, task)
            failed += 1
            if as_json:
                extra = {"upload_id": upload_id} if upload_id else {}
                emit({"path": str(path), **extra, "error": error_json(exc)})
            fail(exc, False, str(path))
            continue
        upload_id = reporter.upload_id
        reporter.settle(path, task)
        if image.delete_token:
            tokens.save(client.base_url, image.id, image.delete_token)
        if as_json:
            emit(
                {"path": str(path), **({"upload_id": upload_id} if upload_id else {}), **image.raw}
            )
        else:
            reporter.line(f"{path}  {describe(image, upload_id)}")
    return failed


@click.command(epilog=UPLOAD_EXIT_CODES)
@click.argument("paths", nargs=-1, required=True, metavar="FILE|DIR|GLOB...")
@server_option
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Chunks sent at once (per file).",
)
@click.option(
    "--chunk-size",
    callback=size_option,
    metavar="SIZE",
    help="Chunk size, e.g. 8MiB (default: the server's). Smaller files go in one request.",
)
@click.option("--no-resume", is_flag=True, help="Start afresh even where an earlier run stopped.")
@json_option
@interruptible("; the chunks sent are kept: run the same command again to send the rest")
def upload(paths: tuple[str, ...], server: str, no_resume: bool, **options: Any) -> None:
    """Upload images: files, directories (their image files, recursively) or globs.

    Large files go in chunks, in parallel; the id of each chunked upload is printed as it
    starts (see `pixdrop status ID`, `pixdrop uploads`). An interrupted upload (Ctrl-C, a lost
    connection, a killed process) resumes where it stopped when the same command runs again:
    only the chunks the server lacks are sent. A failed request is retried, and the file's
    line says so. Delete tokens are kept so that `pixdrop rm` works.
    """
    files = expand_paths(paths)
    with Reporter(files, options["as_json"]) as reporter:
        client = Client(
            server,
            token=api_key(),
            resume=not no_resume,
            max_connections=options["parallel"],
            on_retry=reporter.retry,
        )
        with client:
            failed = _upload_all(client, reporter, files, options)
    if failed and not options["as_json"]:
        click.echo(f"pixdrop: {failed} of {len(files)} uploads failed", err=True)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


# --- uploads, status ---------------------------------------------------------------------------


def _missing_bytes(status: UploadStatus) -> int:
    return sum(end - start for start, end in map(status.chunk_range, status.missing))


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "?"


def _file_changed(path: str | None, fingerprint: Fingerprint) -> bool:
    """Whether the file is gone or no longer the one the upload was made of (size, mtime)."""
    if path is None:
        return False
    try:
        stat = Path(path).stat()
    except OSError:
        return True
    return (stat.st_size, stat.st_mtime_ns) != (fingerprint.size, fingerprint.mtime_ns)


def _progress_text(status: UploadStatus) -> str:
    if status.state == "completed":
        return f"completed (image {status.image_id}): run the upload again to get its result"
    missing = _missing_bytes(status)
    held = format_size(status.size - missing)
    return (
        f"{held} of {format_size(status.size)} stored; missing {format_size(missing)} "
        f"in {len(status.missing)} of {status.chunk_count} chunks; "
        f"expires {_when(status.expires_at)}"
    )


@click.command(epilog=EXIT_CODES)
@server_option
@json_option
@interruptible()
def uploads(server: str, as_json: bool) -> None:
    """List the unfinished uploads this machine knows, and what each misses.

    These are the uploads `pixdrop upload` would resume (their resume records), each with
    what the server holds and still misses. Run the upload of the same file again to send
    the rest.
    """
    store = ResumeStore()
    known = store.records()
    with Client(server, token=api_key(), on_retry=note_retry) as client:
        mine = [(key, r) for key, r in known if r.server == client.base_url]
        failed = False
        for _, record in mine:
            where = record.path or "(bytes or a file object)"
            changed = _file_changed(record.path, record.fingerprint)
            try:
                status = client.status(record.upload_id)
            except (NotFoundError, GoneError) as exc:
                if as_json:
                    emit({"id": record.upload_id, "path": record.path, "error": error_json(exc)})
                else:
                    click.echo(
                        f"{record.upload_id}  {where}\n    gone from the server (expired or "
                        "aborted): the next upload of this file starts afresh"
                    )
                continue
            except PixdropClientError as exc:
                fail(exc, as_json)
                failed = True
                break
            if as_json:
                emit({**status.raw, "path": record.path, "file_changed": changed})
                continue
            click.echo(f"{record.upload_id}  {where}\n    {_progress_text(status)}")
            if changed:
                click.echo("    the file changed since: its next upload starts afresh")
    others = len(known) - len(mine)
    if not as_json:
        if not mine:
            click.echo(f"pixdrop: no unfinished uploads to {client.base_url}", err=True)
        if others:
            click.echo(f"pixdrop: and {others} to other servers (see --server)", err=True)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


def status_lines(status: UploadStatus) -> list[str]:
    lines = [
        f"upload    {status.id}",
        f"state     {status.state}",
        f"size      {format_size(status.size)}, {status.chunk_count} chunks of "
        f"{format_size(status.chunk_size)}",
        f"received  {len(status.received)} of {status.chunk_count} chunks",
    ]
    if status.missing:
        shown = ", ".join(map(str, status.missing[:20]))
        more = f" and {len(status.missing) - 20} more" if len(status.missing) > 20 else ""
        lines.append(f"missing   {shown}{more} ({format_size(_missing_bytes(status))})")
    if status.expires_at and status.state != "completed":
        lines.append(f"expires   {status.expires_at.isoformat()}")
    if status.image_id:
        lines.append(f"image     {status.image_id}")
    return lines


@click.command(epilog=EXIT_CODES)
@click.argument("upload_id")
@server_option
@json_option
@interruptible()
def status(upload_id: str, server: str, as_json: bool) -> None:
    """Show which chunks of a chunked upload the server holds and which are missing.

    UPLOAD_ID is printed by `pixdrop upload` and listed by `pixdrop uploads`.
    """
    try:
        with Client(server, token=api_key(), on_retry=note_retry) as client:
            found = client.status(upload_id)
    except PixdropClientError as exc:
        fail(exc, as_json)
        sys.exit(EXIT_FAILED)
    if as_json:
        emit(found.raw)
    else:
        click.echo("\n".join(status_lines(found)))
