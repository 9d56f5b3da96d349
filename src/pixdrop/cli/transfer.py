"""``pixdrop upload | status | get | rm``: the client commands (thin: args → client → output).

Everything about transfers (chunks, parallelism, resume, retries) is ``pixdrop.client``'s; this
module parses arguments, draws progress with rich on stderr and prints results on stdout.
"""

from __future__ import annotations

import functools
import glob
import json
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from pixdrop.client import (
    Client,
    Image,
    PixdropClientError,
    ProblemError,
    TokenStore,
    UploadStatus,
)
from pixdrop.client import Progress as Moved
from pixdrop.formats import BY_NAME, DEFAULT_NAMES

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
EXIT_CODES = """\b
Exit codes: 0 all done; 1 something failed (the server refused, or retries ran out);
2 usage error (bad option, no such file); 130 interrupted (Ctrl-C): run the same
command again to resume."""
#: Files taken from a directory: those of the formats a server accepts by default (a file
#: named on the command line is always sent).
IMAGE_SUFFIXES = {ext for name in DEFAULT_NAMES for ext in BY_NAME[name].extensions}
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(i?)(b?)\s*$", re.IGNORECASE)


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


def _size_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    try:
        return None if value is None else parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _server_option(func: F) -> F:
    return click.option(
        "--server",
        envvar="PIXDROP_SERVER",
        required=True,
        metavar="URL",
        help="The pixdrop server, e.g. http://127.0.0.1:8000 [env: PIXDROP_SERVER]",
    )(func)


def _json_option(func: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Machine-readable output: one JSON object a line."
    )(func)


def _interruptible(hint: str = "") -> Callable[[F], F]:
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


def _emit(obj: dict[str, Any]) -> None:
    click.echo(json.dumps(obj, separators=(",", ":"), default=str))


def _error_json(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, ProblemError):
        return {"status": exc.status, "type": exc.type, "title": exc.title, "detail": exc.detail}
    return {"title": type(exc).__name__, "detail": str(exc)}


def _fail(exc: BaseException, as_json: bool, what: str = "") -> None:
    """Report *exc*: on stderr, and as ``{"error": ...}`` on stdout in JSON mode."""
    if as_json:
        _emit({**({"path": what} if what else {}), "error": _error_json(exc)})
    prefix = f"{what}: " if what else ""
    click.echo(f"pixdrop: {prefix}{exc}", err=True)


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


class Reporter:
    """Progress bars on stderr (one for the current file, one for the total) when it is a TTY."""

    def __init__(self, files: list[Path], as_json: bool) -> None:
        self.console = Console(stderr=True)
        self.bars = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            DownloadColumn(binary_units=True),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=as_json or not self.console.is_terminal,
        )
        self.sizes = {path: path.stat().st_size for path in files}
        self.finished = 0
        label = f"total ({len(files)} file{'s' * (len(files) != 1)})"
        self.total = self.bars.add_task(label, total=sum(self.sizes.values()))

    def __enter__(self) -> Reporter:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def track(self, path: Path) -> tuple[TaskID, Callable[[Moved], None]]:
        task = self.bars.add_task(path.name, total=self.sizes[path])
        first = True

        def moved(progress: Moved) -> None:
            nonlocal first
            if first and progress.resumed:
                # Bytes already on the server are not this run's speed: start the clock here.
                self.bars.reset(task, total=progress.total, completed=progress.resumed)
            first = False
            self.bars.update(task, completed=progress.done)
            self.bars.update(self.total, completed=self.finished + progress.done)

        return task, moved

    def line(self, text: str) -> None:
        """A result line for stdout, drawn above the bars when both share the terminal."""
        if not self.bars.disable and sys.stdout.isatty():
            self.bars.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            click.echo(text)

    def settle(self, path: Path, task: TaskID) -> None:
        self.bars.remove_task(task)
        self.finished += self.sizes[path]
        self.bars.update(self.total, completed=self.finished)


def _describe(image: Image) -> str:
    size = f"{image.width}x{image.height} " if image.width and image.height else ""
    return f"{image.url}  ({size}{image.format or '?'}, {image.size} bytes, id {image.id})"


def _upload_all(client: Client, files: list[Path], options: dict[str, Any]) -> int:
    """Upload *files* in turn; return how many failed."""
    tokens, failed, as_json = TokenStore(), 0, options["as_json"]
    with Reporter(files, as_json) as reporter:
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
                reporter.settle(path, task)
                failed += 1
                _fail(exc, as_json, str(path))
                continue
            reporter.settle(path, task)
            if image.delete_token:
                tokens.save(client.base_url, image.id, image.delete_token)
            if as_json:
                _emit({"path": str(path), **image.raw})
            else:
                reporter.line(f"{path}  {_describe(image)}")
    return failed


@click.command(epilog=EXIT_CODES)
@click.argument("paths", nargs=-1, required=True, metavar="FILE|DIR|GLOB...")
@_server_option
@click.option(
    "--parallel",
    type=click.IntRange(1, 64),
    default=4,
    show_default=True,
    help="Chunks sent at once (per file).",
)
@click.option(
    "--chunk-size",
    callback=_size_option,
    metavar="SIZE",
    help="Chunk size, e.g. 8MiB (default: the server's). Smaller files go in one request.",
)
@click.option("--no-resume", is_flag=True, help="Start afresh even where an earlier run stopped.")
@_json_option
@_interruptible("; the chunks sent are kept: run the same command again to send the rest")
def upload(paths: tuple[str, ...], server: str, no_resume: bool, **options: Any) -> None:
    """Upload images: files, directories (their image files, recursively) or globs.

    Large files go in chunks, in parallel. An interrupted upload (Ctrl-C, a lost connection,
    a killed process) resumes where it stopped when the same command runs again: only the
    chunks the server lacks are sent. Delete tokens are kept so that `pixdrop rm` works.
    """
    files = expand_paths(paths)
    with Client(server, resume=not no_resume, max_connections=options["parallel"]) as client:
        failed = _upload_all(client, files, options)
    if failed and not options["as_json"]:
        click.echo(f"pixdrop: {failed} of {len(files)} uploads failed", err=True)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


# --- status, get, rm ---------------------------------------------------------------------------


def _status_lines(status: UploadStatus) -> list[str]:
    lines = [
        f"upload    {status.id}",
        f"state     {status.state}",
        f"size      {status.size} bytes, {status.chunk_count} chunks of {status.chunk_size}",
        f"received  {len(status.received)} of {status.chunk_count} chunks",
    ]
    if status.missing:
        shown = ", ".join(map(str, status.missing[:20]))
        more = f" and {len(status.missing) - 20} more" if len(status.missing) > 20 else ""
        lines.append(f"missing   {shown}{more}")
    if status.expires_at and status.state != "completed":
        lines.append(f"expires   {status.expires_at.isoformat()}")
    if status.image_id:
        lines.append(f"image     {status.image_id}")
    return lines


@click.command(epilog=EXIT_CODES)
@click.argument("upload_id")
@_server_option
@_json_option
@_interruptible()
def status(upload_id: str, server: str, as_json: bool) -> None:
    """Show which chunks of a chunked upload the server holds and which are missing."""
    try:
        with Client(server) as client:
            found = client.status(upload_id)
    except PixdropClientError as exc:
        _fail(exc, as_json)
        sys.exit(EXIT_FAILED)
    if as_json:
        _emit(found.raw)
    else:
        click.echo("\n".join(_status_lines(found)))


@click.command(epilog=EXIT_CODES)
@click.argument("image_id")
@click.option(
    "-o", "--output", metavar="FILE", help="Save the original bytes to FILE ('-': standard output)."
)
@_server_option
@_json_option
@_interruptible()
def get(image_id: str, output: str | None, server: str, as_json: bool) -> None:
    """Show an image's metadata, or save its original bytes with -o (verified by sha256)."""
    try:
        with Client(server) as client:
            image = client.get(image_id)
            if output is not None:
                dest = sys.stdout.buffer if output == "-" else Path(output)
                client.download(image_id, dest)
    except (PixdropClientError, OSError) as exc:
        _fail(exc, as_json)
        sys.exit(EXIT_FAILED)
    if as_json and output != "-":
        _emit({**image.raw, **({"path": output} if output else {})})
    elif output is None:
        click.echo("\n".join(f"{k:<13} {v}" for k, v in image.raw.items()))
    elif output != "-":
        click.echo(f"{output}  ({image.size} bytes, sha256 {image.sha256})", err=True)


@click.command(epilog=EXIT_CODES)
@click.argument("image_id")
@click.option(
    "--token",
    metavar="TOKEN",
    help="The delete token (default: the one kept when this machine sent it).",
)
@_server_option
@_json_option
@_interruptible()
def rm(image_id: str, token: str | None, server: str, as_json: bool) -> None:
    """Delete an image."""
    tokens = TokenStore()
    try:
        with Client(server) as client:
            token = token or tokens.load(client.base_url, image_id)
            if token is None:
                raise click.UsageError(f"no delete token is known for {image_id}; pass --token")
            client.delete(image_id, token)
            tokens.discard(client.base_url, image_id)
    except PixdropClientError as exc:
        _fail(exc, as_json)
        sys.exit(EXIT_FAILED)
    if as_json:
        _emit({"id": image_id, "deleted": True})
    else:
        click.echo(f"deleted {image_id}")


COMMANDS = (upload, status, get, rm)


def register(group: click.Group) -> None:
    """Add the client commands to the ``pixdrop`` group."""
    for command in COMMANDS:
        group.add_command(command)
