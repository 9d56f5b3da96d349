"""``pixdrop ls | get | rm``: the stored images."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from pixdrop.cli.common import (
    EXIT_CODES,
    EXIT_FAILED,
    api_key,
    emit,
    error_json,
    fail,
    format_size,
    interruptible,
    json_option,
    note_retry,
    server_option,
)
from pixdrop.client import Client, Image, NotFoundError, PixdropClientError, TokenStore

__all__ = ["get", "ls", "rm"]

# --- ls ---------------------------------------------------------------------------------------


def _row(image: Image) -> str:
    when = image.created_at.astimezone().strftime("%Y-%m-%d %H:%M") if image.created_at else "?"
    size = f"{image.width}x{image.height}" if image.width and image.height else "?"
    return (
        f"{image.id}  {when}  {format_size(image.size):>9}  {size:>11}  "
        f"{image.format or '?':<5} {image.filename or ''}"
    )


@click.command(epilog=EXIT_CODES)
@click.option(
    "--limit",
    type=click.IntRange(1, 500),
    default=20,
    show_default=True,
    help="Images per page.",
)
@click.option("--cursor", metavar="CURSOR", help="Where a previous page ended (it prints it).")
@click.option("--all", "every", is_flag=True, help="Every image, page after page.")
@server_option
@json_option
@interruptible()
def ls(limit: int, cursor: str | None, every: bool, server: str, as_json: bool) -> None:
    """List images, newest first, a page at a time.

    There is no access control yet: these are the newest images on the server, whoever sent
    them. When there are more, the command for the next page is printed on stderr (with
    --json: a last line {"next_cursor": ...}).
    """
    if every and cursor:
        raise click.UsageError("--all starts from the newest image: leave --cursor out")
    count = 0
    try:
        with Client(server, token=api_key(), on_retry=note_retry) as client:
            while True:
                page = client.list_images(limit=limit, cursor=cursor)
                for image in page.images:
                    if as_json:
                        emit(image.raw)
                    else:
                        click.echo(_row(image))
                count += len(page.images)
                cursor = page.next_cursor
                if not every or cursor is None:
                    break
    except PixdropClientError as exc:
        fail(exc, as_json)
        sys.exit(EXIT_FAILED)
    if cursor is not None:
        if as_json:
            emit({"next_cursor": cursor})
        else:
            click.echo(f"pixdrop: more: pixdrop ls --limit {limit} --cursor {cursor}", err=True)
    elif count == 0 and not as_json:
        click.echo("pixdrop: no images", err=True)


# --- get --------------------------------------------------------------------------------------


def _details(image: Image) -> list[str]:
    shown: dict[str, Any] = dict(image.raw)
    if isinstance(image.raw.get("size"), int):
        shown["size"] = f"{format_size(image.size)} ({image.size} bytes)"
    return [f"{k:<13} {v}" for k, v in shown.items()]


@click.command(epilog=EXIT_CODES)
@click.argument("image_id")
@click.option(
    "-o", "--output", metavar="FILE", help="Save the original bytes to FILE ('-': standard output)."
)
@server_option
@json_option
@interruptible()
def get(image_id: str, output: str | None, server: str, as_json: bool) -> None:
    """Show an image's metadata, or save its original bytes with -o (verified by sha256).

    A download cut by the network continues where it stopped; FILE appears only once it is
    complete and verified (an interrupted run leaves nothing behind).
    """
    try:
        with Client(server, token=api_key(), on_retry=note_retry) as client:
            image = client.get(image_id)
            if output is not None:
                dest = sys.stdout.buffer if output == "-" else Path(output)
                client.download(image_id, dest)
    except (PixdropClientError, OSError) as exc:
        fail(exc, as_json)
        sys.exit(EXIT_FAILED)
    if as_json and output != "-":
        emit({**image.raw, **({"path": output} if output else {})})
    elif output is None:
        click.echo("\n".join(_details(image)))
    elif output != "-":
        click.echo(f"{output}  ({format_size(image.size)}, sha256 {image.sha256})", err=True)


# --- rm ---------------------------------------------------------------------------------------


@click.command(
    epilog="""\b
Exit codes: 0 deleted, or already deleted by this machine; 1 it failed (no such image, a
wrong token, the server unreachable); 2 usage error (no delete token known: pass --token);
130 interrupted (Ctrl-C)."""
)
@click.argument("image_id")
@click.option(
    "--token",
    metavar="TOKEN",
    help="The delete token (default: the one kept when this machine sent it).",
)
@server_option
@json_option
@interruptible()
def rm(image_id: str, token: str | None, server: str, as_json: bool) -> None:
    """Delete an image.

    Deleting it again says it is already deleted (when this machine deleted it).
    """
    tokens = TokenStore()
    try:
        with Client(server, token=api_key(), on_retry=note_retry) as client:
            deleted_here = tokens.was_deleted(client.base_url, image_id)
            token = token or tokens.load(client.base_url, image_id)
            if token is None and not deleted_here:
                raise click.UsageError(f"no delete token is known for {image_id}; pass --token")
            try:
                if token is None:
                    client.get(image_id)  # deleted here, yet still there? Say so below.
                    raise click.UsageError(f"no delete token is known for {image_id}; pass --token")
                client.delete(image_id, token)
            except NotFoundError as exc:
                if not deleted_here:
                    if as_json:
                        emit({"id": image_id, "error": error_json(exc)})
                    click.echo(f"pixdrop: no such image: {image_id}", err=True)
                    sys.exit(EXIT_FAILED)
                tokens.discard(client.base_url, image_id)
                if as_json:
                    emit({"id": image_id, "deleted": True, "already": True})
                else:
                    click.echo(f"{image_id} is already deleted")
                return
            tokens.mark_deleted(client.base_url, image_id)
    except PixdropClientError as exc:
        fail(exc, as_json)
        sys.exit(EXIT_FAILED)
    if as_json:
        emit({"id": image_id, "deleted": True})
    else:
        click.echo(f"deleted {image_id}")
