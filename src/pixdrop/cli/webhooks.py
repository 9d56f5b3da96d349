"""``pixdrop webhooks``: the endpoints events go to, and what became of their deliveries.

The commands work on the database (``--data-dir`` / ``--database-url``, as ``serve``), not
through a server: running servers read the endpoint list every ``--webhook-refresh`` seconds
(5 by default), and send what is queued, resent deliveries too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from pixdrop.cli.common import EXIT_FAILED, EXIT_USAGE, database_options, emit, json_option
from pixdrop.config import ConfigError, load_settings
from pixdrop.models import utcnow

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:  # the server's modules load lazily: client commands must not pay for them
    from pixdrop.webhooks.outbox import Outbox


@contextmanager
def _outbox(data_dir: Path | None, database_url: str | None) -> Iterator[Outbox]:
    """The webhook tables of the server's database (migrated to the newest schema first)."""
    from pixdrop.metadata import open_metadata_store
    from pixdrop.webhooks.outbox import Outbox

    try:
        settings = load_settings(data_dir=data_dir, database_url=database_url)
    except ConfigError as exc:
        click.echo(f"pixdrop: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    try:
        meta = open_metadata_store(settings.resolved_database_url)
    except Exception as exc:
        click.echo(f"pixdrop: cannot open the database: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    try:
        yield Outbox(meta.engine)
    finally:
        meta.engine.dispose()


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


#: Where each field of ``outbox.new_endpoint``'s refusals comes from on the command line.
_HINTS = {"url": "URL", "events": "--events", "secret": "--secret"}


@click.group()
def webhooks() -> None:
    """Webhook endpoints (events out) and their deliveries."""


@webhooks.command()
@click.argument("url")
@click.option(
    "--events",
    required=True,
    metavar="TYPES",
    help="Event types, comma-separated: upload.created, upload.completed, upload.expired, "
    "upload.refused, image.created, image.deleted, or '*' for all.",
)
@click.option(
    "--secret",
    default=None,
    metavar="whsec_...",
    help="The signing secret (default: a new random one, printed).",
)
@database_options
@json_option
def add(
    url: str,
    events: str,
    secret: str | None,
    data_dir: Path | None,
    database_url: str | None,
    as_json: bool,
) -> None:
    """Send the events named by --events to URL (POST, signed per Standard Webhooks)."""
    from pixdrop.webhooks import outbox as q

    try:
        endpoint = q.new_endpoint(
            url, [e.strip() for e in events.split(",") if e.strip()], secret or None, utcnow()
        )
    except q.InvalidEndpoint as exc:
        raise click.BadParameter(str(exc), param_hint=_HINTS[exc.field]) from None
    secret = endpoint.secret
    with _outbox(data_dir, database_url) as box:
        box.run_sync(partial(q.add_endpoint, endpoint=endpoint))
    if as_json:
        emit({"id": endpoint.id, "url": url, "events": list(endpoint.events), "secret": secret})
        return
    click.echo(f"endpoint {endpoint.id}: {url} ({', '.join(endpoint.events)})")
    click.echo(f"secret: {secret}")


@webhooks.command(name="list")
@database_options
@json_option
def list_(data_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """The endpoints, oldest first (secrets are not shown)."""
    from pixdrop.webhooks import outbox as q

    with _outbox(data_dir, database_url) as box:
        found = box.run_sync(q.list_endpoints)
    for e in found:
        if as_json:
            emit({"id": e.id, "url": e.url, "events": list(e.events), "created_at": e.created_at})
        else:
            click.echo(f"{e.id}  {e.url}  {','.join(e.events)}  {_when(e.created_at)}")


@webhooks.command()
@click.argument("endpoint_id", metavar="ID")
@database_options
def remove(endpoint_id: str, data_dir: Path | None, database_url: str | None) -> None:
    """Stop sending to endpoint ID; its queued and past deliveries go with it."""
    from pixdrop.webhooks import outbox as q

    with _outbox(data_dir, database_url) as box:
        removed = box.run_sync(partial(q.remove_endpoint, endpoint_id=endpoint_id))
    if not removed:
        click.echo(f"pixdrop: no endpoint {endpoint_id}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"removed endpoint {endpoint_id}")


@webhooks.command()
@click.option("--failed", is_flag=True, help="Only the deliveries that were given up.")
@click.option(
    "--limit", type=click.IntRange(1), default=50, show_default=True, help="Newest first."
)
@database_options
@json_option
def deliveries(
    failed: bool, limit: int, data_dir: Path | None, database_url: str | None, as_json: bool
) -> None:
    """Deliveries, newest first: pending, delivered, or failed (resend with `resend ID`)."""
    from pixdrop.webhooks import outbox as q

    with _outbox(data_dir, database_url) as box:
        found = box.run_sync(partial(q.list_deliveries, failed_only=failed, limit=limit))
    for d in found:
        row = {
            "id": d.seq,
            "event_id": d.event_id,
            "type": d.event_type,
            "endpoint_id": d.endpoint_id,
            "url": d.url,
            "resource": d.resource,
            "state": d.state,
            "attempts": d.attempts,
            "last_status": d.last_status,
            "last_error": d.last_error,
            "queued_at": d.created_at,
            "next_attempt_at": d.next_attempt_at if d.state == "pending" else None,
        }
        if as_json:
            emit(row)
        else:
            why = f"  {d.last_error}" if d.last_error else ""
            click.echo(
                f"{d.seq}  {d.state:9}  {d.event_type:16}  {d.resource}  -> {d.url}  "
                f"attempts {d.attempts}{why}"
            )


@webhooks.command()
@click.argument("delivery_id", metavar="ID", type=int)
@database_options
def resend(delivery_id: int, data_dir: Path | None, database_url: str | None) -> None:
    """Queue delivery ID again (same webhook-id), with a fresh day of retries."""
    from pixdrop.webhooks import outbox as q

    with _outbox(data_dir, database_url) as box:
        queued = box.run_sync(partial(q.resend, seq=delivery_id, now=utcnow()))
    if not queued:
        click.echo(f"pixdrop: no delivery {delivery_id}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"delivery {delivery_id} queued again")
