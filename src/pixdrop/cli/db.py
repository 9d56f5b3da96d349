"""``pixdrop db copy``: copy the metadata database into another, empty one (SQLite to
PostgreSQL when a site moves from one machine to many; see ``metadata/copy.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from pixdrop.cli.common import EXIT_FAILED, EXIT_USAGE, database_options
from pixdrop.config import ConfigError, load_settings


@click.group()
def db() -> None:
    """The metadata database: move it to another one."""


@db.command()
@click.option(
    "--to", "target", required=True, metavar="URL", help="The empty database to copy into."
)
@database_options
@click.option(
    "--unfinished/--no-unfinished",
    default=False,
    show_default=True,
    help="Copy unfinished uploads too (only when the blob store stays the same).",
)
def copy(target: str, data_dir: Path | None, database_url: str | None, unfinished: bool) -> None:
    """Copy the server's metadata database (--data-dir or --database-url, as `serve`
    takes them) into the empty database --to (postgresql://USER@HOST/DB), migrating its
    schema first.

    One transaction on the target: all or nothing; a failed run can be run again. Run it
    with the server stopped, or run it again after the last uploads: a running server's
    later writes are not in the copy. Unfinished uploads stay behind unless --unfinished
    (their bytes are in the old blob store's staging); clients start those again.

    \b
    Exit codes: 0 copied; 1 the copy failed (nothing was written); 2 usage error, or the
    target is not empty.
    """
    from pixdrop.metadata.copy import TargetNotEmpty, copied_tables, copy_database

    try:
        settings = load_settings(data_dir=data_dir, database_url=database_url)
    except ConfigError as exc:
        click.echo(f"pixdrop: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    source = settings.resolved_database_url
    if source == target:
        click.echo("pixdrop: the database to copy from and --to are the same", err=True)
        sys.exit(EXIT_USAGE)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        console=console,
        disable=not console.is_terminal,
    )
    tasks = {table.name: progress.add_task(table.name, total=None) for table in copied_tables()}
    try:
        with progress:
            done = copy_database(
                source,
                target,
                unfinished=unfinished,
                progress=lambda table, rows: progress.advance(tasks[table], rows),
            )
    except TargetNotEmpty as exc:
        click.echo(f"pixdrop: {exc}: copy into a new, empty database", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # a database that cannot be reached, a failed insert
        click.echo(f"pixdrop: copying the database failed, nothing was written: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    rows = ", ".join(f"{entry.rows} {entry.name}" for entry in done)
    click.echo(f"pixdrop: copied {rows}", err=True)
