"""``pixdrop keys create | list | revoke``: API keys, straight in the metadata database.

The commands take the server's ``--data-dir`` / ``--database-url`` (as ``serve``) and work
while servers run: a key is one row, and servers read it on every request, so a key created
or revoked here holds on the next request on every node.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import click
from anyio import to_thread

from pixdrop.auth.keys import issue_key, key_json, parse_duration, parse_rate, parse_scopes
from pixdrop.cli.common import EXIT_FAILED, EXIT_USAGE, database_options, format_size, parse_size
from pixdrop.config import ConfigError, load_settings
from pixdrop.metadata import SqlMetadataStore
from pixdrop.models import is_valid_id, utcnow

T = TypeVar("T")

_JSON = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group()
def keys() -> None:
    """API keys: create (the secret is printed once), list, revoke (docs/auth.md)."""


def _with_store(
    data_dir: Path | None,
    database_url: str | None,
    work: Callable[[SqlMetadataStore], Awaitable[T]],
) -> T:
    from pixdrop.metadata import open_metadata_store

    try:
        settings = load_settings(data_dir=data_dir, database_url=database_url)
    except ConfigError as exc:
        click.echo(f"pixdrop: {exc}", err=True)
        sys.exit(EXIT_USAGE)

    async def run() -> T:
        meta = await to_thread.run_sync(open_metadata_store, settings.resolved_database_url)
        try:
            return await work(meta)
        finally:
            await meta.close()

    return anyio.run(run)


def _checked(parse: Callable[[str], Any]) -> Callable[[click.Context, Any, str | None], Any]:
    def callback(_ctx: click.Context, _param: Any, value: str | None) -> Any:
        if value is None:
            return None
        try:
            return parse(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return callback


@keys.command()
@click.option("--name", required=True, help="What the key is for (shown by keys list).")
@click.option(
    "--scopes",
    required=True,
    callback=_checked(parse_scopes),
    help="Comma-separated, of upload, read, delete, admin (admin holds them all).",
)
@click.option("--quota", callback=_checked(parse_size), help="Bytes the key may keep: 10GiB.")
@click.option("--max-open-uploads", type=click.IntRange(1), help="Open uploads at once.")
@click.option("--rate", callback=_checked(parse_rate), help="Requests per period: 100/minute.")
@click.option("--expires", callback=_checked(parse_duration), help="Lifetime: 90d, 12h, 30m.")
@database_options
@_JSON
def create(
    name: str,
    scopes: tuple[str, ...],
    quota: int | None,
    max_open_uploads: int | None,
    rate: str | None,
    expires: Any,
    data_dir: Path | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Create a key and print its secret, once: only a hash of it is kept."""
    issued = _with_store(
        data_dir,
        database_url,
        lambda meta: issue_key(
            meta,
            name=name,
            scopes=scopes,
            quota=quota,
            max_open_uploads=max_open_uploads,
            rate=rate,
            expires_in=expires,
        ),
    )
    if as_json:
        click.echo(json.dumps({**key_json(issued.key), "secret": issued.secret}))
        return
    click.echo(issued.secret)
    click.echo(
        f"key {issued.key.id} ({', '.join(issued.key.scopes)}): keep the secret above, it "
        "is not shown again",
        err=True,
    )


@keys.command(name="list")
@database_options
@_JSON
def list_(data_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """List keys (never their secrets), with their usage."""
    found = _with_store(data_dir, database_url, lambda meta: meta.list_keys())
    if as_json:
        click.echo(json.dumps({"keys": [key_json(k) for k in found]}))
        return
    now = utcnow()
    for key in found:
        state = "revoked" if key.revoked_at else "expired" if not key.usable(now) else "active"
        quota = f"/{format_size(key.quota)}" if key.quota else ""
        click.echo(
            f"{key.id}  {state:7}  {','.join(key.scopes):24}  "
            f"{format_size(key.used_bytes)}{quota}  {key.open_uploads} open  {key.name}"
        )


@keys.command()
@click.argument("key_id")
@database_options
def revoke(key_id: str, data_dir: Path | None, database_url: str | None) -> None:
    """Revoke the key KEY_ID: refused from the next request on, on every server."""

    async def work(meta: SqlMetadataStore) -> bool:
        if not is_valid_id(key_id) or await meta.get_key(key_id) is None:
            return False
        await meta.revoke_key(key_id, utcnow())
        return True

    if not _with_store(data_dir, database_url, work):
        click.echo(f"pixdrop: there is no key {key_id!r}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"revoked {key_id}", err=True)
