"""The CLI's progress display: one bar per file with size and speed, notices of retries."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pixdrop.cli.common import format_size
from pixdrop.client import (
    Image,
    RetryNotice,
)
from pixdrop.client import Progress as Moved

__all__ = ["Reporter", "SizeColumn", "SpeedColumn", "describe"]

#: Seconds a retry notice stays on a file's bar at least.
MIN_NOTICE = 2.0


class SizeColumn(ProgressColumn):
    """``1.5 MiB / 8 MiB``: the one size format of the CLI (``format_size``)."""

    def render(self, task: Task) -> Text:
        total = format_size(task.total) if task.total is not None else "?"
        return Text(f"{format_size(task.completed)} / {total}", style="progress.download")


class SpeedColumn(ProgressColumn):
    """``12.5 MiB/s``, in the same binary units."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{format_size(speed)}/s" if speed else "", style="progress.data.speed")


class Reporter:
    """Progress bars on stderr (one for the current file, one for the total) when it is a TTY;
    notes (the upload id, retries) above them, or as plain stderr lines without bars."""

    def __init__(self, files: list[Path], as_json: bool) -> None:
        self.console = Console(stderr=True)
        self.bars = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            SizeColumn(),
            SpeedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            disable=as_json or not self.console.is_terminal,
        )
        self.sizes = {path: path.stat().st_size for path in files}
        self.finished = 0
        label = f"total ({len(files)} file{'s' * (len(files) != 1)})"
        self.total = self.bars.add_task(label, total=sum(self.sizes.values()))
        self._lock = threading.Lock()
        #: The file being sent: its path, bar, upload id, and the progress when a retry was
        #: announced on its line (the line is restored once bytes move past it).
        self.current: Path | None = None
        self.task: TaskID | None = None
        self.upload_id: str | None = None
        self._retry_at: int | None = None
        self._retry_until = 0.0
        self._done = 0

    def __enter__(self) -> Reporter:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    def track(self, path: Path) -> tuple[TaskID, Callable[[Moved], None]]:
        task = self.bars.add_task(path.name, total=self.sizes[path])
        with self._lock:
            self.current, self.task, self.upload_id, self._retry_at = path, task, None, None
            self._done = 0
        first = True

        def moved(progress: Moved) -> None:
            nonlocal first
            if first and progress.resumed:
                # Bytes already on the server are not this run's speed: start the clock here.
                self.bars.reset(task, total=progress.total, completed=progress.resumed)
            first = False
            if progress.upload_id and progress.upload_id != self.upload_id:
                self.upload_id = progress.upload_id
                resumed = f", resumed at {format_size(progress.resumed)}" * bool(progress.resumed)
                self.note(f"{path}: upload {progress.upload_id}{resumed}")
            with self._lock:
                self._done = progress.done
                shown = self._retry_at is not None and time.monotonic() >= self._retry_until
                if shown and progress.done > (self._retry_at or 0):
                    self._retry_at = None
                    self.bars.update(task, description=path.name)
            self.bars.update(task, completed=progress.done)
            self.bars.update(self.total, completed=self.finished + progress.done)

        return task, moved

    def retry(self, notice: RetryNotice) -> None:
        """The client's ``on_retry``: the file's line says what failed and when it is tried
        again, until bytes move again."""
        with self._lock:
            path, task = self.current, self.task
            if self.bars.disable or path is None or task is None:
                where = f"{path}: " if path is not None else ""
                click.echo(f"pixdrop: {where}{notice.what}: {notice}", err=True)
                return
            # Shown at once, and for a while: other chunks moving on must not wipe it unseen.
            self._retry_at = self._done
            self._retry_until = time.monotonic() + max(notice.delay, MIN_NOTICE)
            text = f"{path.name} [yellow]{escape(str(notice))}[/yellow]"
            self.bars.update(task, description=text, refresh=True)

    def note(self, text: str) -> None:
        """A note for stderr, drawn above the bars when they are shown."""
        if self.bars.disable:
            click.echo(f"pixdrop: {text}", err=True)
        else:
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

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
        with self._lock:
            self.current = self.task = None


def describe(image: Image, upload_id: str | None = None) -> str:
    """What one line says of an image: where its bytes are, what they are, its id (and the
    chunked upload that brought it)."""
    size = f"{image.width}x{image.height} " if image.width and image.height else ""
    via = f", upload {upload_id}" if upload_id else ""
    kind = f"{size}{image.format or '?'}, {format_size(image.size)}"
    return f"{image.original_url}  ({kind}, id {image.id}{via})"
