"""A decoder process: ``python -m pixdrop.imaging.worker FD``, started by ``pool.py``.

It imports only what the jobs need (``jobs`` and libvips), not the server: a worker started
through ``multiprocessing``'s ``spawn`` re-imports the parent's ``__main__`` (the ``pixdrop``
command, hence FastAPI, SQLAlchemy, uvicorn...) and came to about 89 MiB at rest; this one
is about 38 MiB. It reads jobs from the socket *FD* (a ``multiprocessing`` connection: pickled
``(name, args)``), one at a time, and answers each; it ends when the server closes its end.
"""

from __future__ import annotations

import signal
import sys
from multiprocessing.connection import Connection
from typing import Any


def serve(conn: Connection) -> None:
    """The worker's loop: one job at a time, until the server closes the connection."""
    from pixdrop.imaging import jobs  # imported here: only workers load libvips

    jobs.setup_worker()
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, ConnectionResetError):
            return  # the server closed its end (it stopped this worker, or went away)
        reply: tuple[Any, ...]
        try:
            reply = ("ok", jobs.JOBS[name](*args))
        except jobs.Refusal as exc:
            reply = ("refused", exc.detail, exc.fields)
        except Exception as exc:  # reported to the server, which logs it; the worker lives on
            reply = ("failed", f"{type(exc).__name__}: {exc}")
        try:
            conn.send(reply)
        except (BrokenPipeError, ConnectionResetError):
            return  # the server went away


def main(argv: list[str]) -> None:
    # Ctrl-C reaches the whole process group; the server decides when workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(Connection(int(argv[1])))


if __name__ == "__main__":
    main(sys.argv)
