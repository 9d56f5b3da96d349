"""What the client commands share: options, exit codes, sizes, output and error reporting."""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
import httpx

from pixdrop.client import ProblemError, RetryNotice, TransferError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
#: The server a client command talks to when neither --server nor PIXDROP_SERVER says: the
#: address ``pixdrop serve`` listens on by default.
DEFAULT_SERVER = "http://127.0.0.1:8000"
_USAGE = "2 usage error (bad option, no such file)"
#: ``upload`` resumes: an interrupted run is continued by running it again.
UPLOAD_EXIT_CODES = f"""\b
Exit codes: 0 all done; 1 something failed (the server refused, or retries ran out);
{_USAGE}; 130 interrupted (Ctrl-C): run the same command again to resume."""
#: The other commands have nothing to resume: they are simply run again.
EXIT_CODES = f"""\b
Exit codes: 0 done; 1 it failed (the server refused, or retries ran out);
{_USAGE}; 130 interrupted (Ctrl-C)."""

# --- sizes: binary units, in and out ---------------------------------------------------------

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?)(b?)\s*$", re.IGNORECASE)
_NAMES = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def parse_size(text: str) -> int:
    """A byte count: ``16384``, ``64KiB``, ``8MiB``, ``8M`` (binary) or ``8MB`` (decimal)."""
    match = _SIZE.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a size such as 16384, 64KiB or 8MiB")
    number, unit, binary, byte = match.groups()
    scale = _UNITS[unit.lower()]
    if unit and byte and not binary:  # "MB": the SI unit
        scale = 1000 ** (" kmg".index(unit.lower()))
    return int(number) * scale


def format_size(count: float) -> str:
    """*count* bytes in binary units, as the settings and ``--chunk-size`` take them: ``512 B``,
    ``64 KiB``, ``1.5 MiB``, ``4 GiB`` (one decimal at most, none when it is 0). The one way
    the CLI prints a size."""
    value, unit = float(count), 0
    while abs(value) >= 1024 and unit < len(_NAMES) - 1:
        value, unit = value / 1024, unit + 1
    if unit == 0:
        return f"{int(value)} B"
    text = f"{value:.1f}".removesuffix(".0")
    return f"{text} {_NAMES[unit]}"


def size_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    try:
        return None if value is None else parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


# --- options ----------------------------------------------------------------------------------


_API_KEY = "pixdrop.api_key"


def _keep_api_key(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    ctx.meta[_API_KEY] = value or None


def api_key() -> str | None:
    """The ``--api-key`` (or ``PIXDROP_API_KEY``) of the running command, if any."""
    value = click.get_current_context().meta.get(_API_KEY)
    return value if isinstance(value, str) else None


def server_option(func: F) -> F:
    """``--server`` and ``--api-key``: where the command goes, and the key it sends there."""
    func = click.option(
        "--api-key",
        envvar="PIXDROP_API_KEY",
        default=None,
        metavar="KEY",
        expose_value=False,
        callback=_keep_api_key,
        help="API key sent as 'Authorization: Bearer' (servers in --auth keys need one) "
        "[env: PIXDROP_API_KEY]",
    )(func)
    return click.option(
        "--server",
        envvar="PIXDROP_SERVER",
        default=DEFAULT_SERVER,
        show_default=True,
        metavar="URL",
        help="The pixdrop server [env: PIXDROP_SERVER]",
    )(func)


def json_option(func: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Machine-readable output: one JSON object a line."
    )(func)


def interruptible(hint: str = "") -> Callable[[F], F]:
    """Ctrl-C ends the command with exit code 130 and a short note, not a traceback."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except KeyboardInterrupt:
                click.echo(f"\npixdrop: interrupted{hint}", err=True)
                sys.exit(EXIT_INTERRUPTED)

        return run  # type: ignore[return-value]

    return decorate


# --- output -----------------------------------------------------------------------------------


def emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, separators=(",", ":"), default=str))


def error_json(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ProblemError):
        return {"status": exc.status, "type": exc.type, "title": exc.title, "detail": exc.detail}
    return {"title": type(exc).__name__, "detail": str(exc)}


NO_SERVER = (
    "is the server running? Start one with `pixdrop serve`, or name another with --server "
    "or PIXDROP_SERVER"
)


def fail(exc: BaseException, as_json: bool, what: str = "") -> None:
    """Report *exc*: on stderr, and as ``{"error": ...}`` on stdout in JSON mode."""
    if as_json:
        emit({**({"path": what} if what else {}), "error": error_json(exc)})
    prefix = f"{what}: " if what else ""
    click.echo(f"pixdrop: {prefix}{exc}", err=True)
    if isinstance(exc, TransferError) and isinstance(exc.last_error, httpx.ConnectError):
        click.echo(f"pixdrop: {NO_SERVER}", err=True)


def note_retry(notice: RetryNotice) -> None:
    """The ``on_retry`` of the commands without progress bars: one line on stderr each."""
    click.echo(f"pixdrop: {notice.what}: {notice}", err=True)


def database_options(func: F) -> F:
    """``--data-dir`` and ``--database-url``, taken as ``serve`` takes them: the commands that
    work on a server's stores (``keys``, ``webhooks``, ``store migrate``, ``db copy``)."""
    func = click.option(
        "--database-url",
        default=None,
        metavar="URL",
        help="The server's metadata database [env: PIXDROP_DATABASE_URL]",
    )(func)
    return click.option(
        "--data-dir",
        type=click.Path(path_type=Path),
        default=None,
        metavar="DIR",
        help="The server's data directory (its SQLite database) [env: PIXDROP_DATA_DIR]",
    )(func)
