"""The command line. Each command lives in its own module and is registered here."""

from __future__ import annotations

import click

from pixdrop import __version__
from pixdrop.cli import images, transfer
from pixdrop.cli.db import db
from pixdrop.cli.keys import keys
from pixdrop.cli.serve import serve
from pixdrop.cli.store import store
from pixdrop.cli.webhooks import webhooks


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pixdrop")
def main() -> None:
    """pixdrop: upload and serve images over HTTP, in one request or in resumable chunks."""


main.add_command(serve)
main.add_command(store)
main.add_command(db)
main.add_command(webhooks)
main.add_command(keys)
for command in (
    transfer.upload,
    transfer.uploads,
    transfer.status,
    images.ls,
    images.get,
    images.rm,
):
    main.add_command(command)

__all__ = ["main"]
