"""``pixdrop serve``: flags → settings → uvicorn (thin)."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import sys
from pathlib import Path
from typing import Any

import click
import uvicorn

from pixdrop import __version__
from pixdrop.cli.common import format_size
from pixdrop.config import ENV_PREFIX, ConfigError, Settings, load_settings


def _metavar(name: str, annotation: Any) -> str:
    if name.endswith("_size"):
        return "SIZE"
    if name.endswith("_url"):
        return "URL"
    if annotation is Path:
        return "DIR"
    return {int: "INTEGER", float: "SECONDS"}.get(annotation, "TEXT")


def _setting_options(func: Any) -> Any:
    """One ``--flag`` per setting, with the setting's description as help, so they never drift.

    Values stay strings here: pydantic validates them, with the same messages as for
    ``PIXDROP_*`` variables.
    """
    for name, field in reversed(list(Settings.model_fields.items())):
        flag = "--" + name.replace("_", "-")
        default = field.default
        if default is not None and name.endswith("_size"):
            default = format_size(int(default))  # "4 GiB", as the setting takes it
        shown = f" [default: {default}]" if default is not None else ""
        text = (field.description or "") + shown + f" [env: {ENV_PREFIX}{name.upper()}]"
        if field.annotation is bool:
            decls = [f"{flag}/--no-{name.replace('_', '-')}", name]
            func = click.option(*decls, default=None, help=text)(func)
        else:
            metavar = _metavar(name, field.annotation)
            func = click.option(flag, name, default=None, metavar=metavar, help=text)(func)
    return func


@click.command()
@_setting_options
def serve(**flags: Any) -> None:
    """Run the HTTP service (local disk + SQLite under --data-dir unless told otherwise).

    Every flag can also be set with a PIXDROP_* environment variable; sizes take units
    such as 8MiB or 2GiB.
    """
    try:
        settings = load_settings(**flags)
    except ConfigError as exc:
        click.echo(f"pixdrop: {exc}", err=True)
        sys.exit(2)
    _configure_logging(settings)
    _prepare(settings)
    # Bound before anything is announced: a busy port is one clear line and exit 1, never
    # "serving on ..." followed by uvicorn's failure (uvicorn then serves on this socket).
    sock = _bind(settings.host, settings.port)
    click.echo(
        f"pixdrop {__version__} serving on {_origin(settings.host, sock)} "
        f"(data: {settings.data_dir}, workers: {settings.workers})",
        err=True,
    )
    # Imported here, not at the top: the client commands must not pay for the server's imports.
    from pixdrop.http.app import create_app, uvicorn_options
    from pixdrop.memory import limit_heap_growth

    limit_heap_growth()

    options: dict[str, Any] = {"access_log": False, "log_level": "warning"}
    options.update(uvicorn_options(settings))
    if settings.workers == 1:
        server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
        with contextlib.suppress(KeyboardInterrupt):
            server.run(sockets=[sock])
        if not server.started:
            sys.exit(1)
        return
    # Worker processes rebuild the same settings from the environment.
    for name, value in flags.items():
        if value is not None:
            os.environ[ENV_PREFIX + name.upper()] = str(value)
    config = uvicorn.Config(
        "pixdrop.http.app:app_from_environment",
        factory=True,
        workers=settings.workers,
        **options,
    )
    from uvicorn.supervisors import Multiprocess

    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[sock]).run()


def _bind(host: str, port: int) -> socket.socket:
    """A socket bound to *host*:*port* (as uvicorn binds one), or exit 1 with one line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        reason = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            reason += " (another server runs there: stop it, or pick another --port)"
        click.echo(f"pixdrop: cannot listen on {host}:{port}: {reason}", err=True)
        sys.exit(1)
    sock.set_inheritable(True)  # worker processes serve on it too
    return sock


def _origin(host: str, sock: socket.socket) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{sock.getsockname()[1]}"


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # boto3 says at INFO where it found the S3 credentials: nothing an operator needs.
    for name in ("botocore", "boto3", "s3transfer"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if not settings.access_log:
        logging.getLogger("pixdrop.access").setLevel(logging.WARNING)


def _prepare(settings: Settings) -> None:
    """Create the data directory and migrate the database once, before any worker starts."""
    from pixdrop.metadata import migrate
    from pixdrop.metadata.leases import SharedDatabaseError, refuse_other_machines

    try:
        refuse_other_machines(settings.resolved_database_url)
    except SharedDatabaseError as exc:
        click.echo(f"pixdrop: {exc}", err=True)
        sys.exit(2)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        migrate(settings.resolved_database_url)
    except Exception as exc:
        click.echo(f"pixdrop: cannot prepare storage: {exc}", err=True)
        sys.exit(1)
