"""``GET /metrics``: the Prometheus text format, on the main port or on ``--metrics-port``.

Which registry is read: with ``PROMETHEUS_MULTIPROC_DIR`` set (``--workers`` above 1,
``pixdrop.metrics``), a fresh one collecting every worker's files, so that any worker
answers for all; else the process's own. ``/metrics`` is served on the main port unless
``--metrics-port`` moves it to a port of its own (docs/operations.md). On the main port with
``--auth keys`` it needs an admin key (what it tells is about every client); the metrics port
needs none (keep it off the internet, as its own port allows).
"""

from __future__ import annotations

import os
import threading
from wsgiref.simple_server import WSGIServer

from anyio import to_thread
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
    start_http_server,
)
from starlette.requests import Request
from starlette.responses import Response

from pixdrop.auth.scopes import require
from pixdrop.metrics import MULTIPROC_ENV


def registry() -> CollectorRegistry:
    """The registry a scrape reads (module docstring)."""
    if os.environ.get(MULTIPROC_ENV):
        collected = CollectorRegistry()
        multiprocess.MultiProcessCollector(collected)  # type: ignore[no-untyped-call]
        return collected
    return REGISTRY


def exposition() -> bytes:
    """Every metric, in the Prometheus text format."""
    return generate_latest(registry())


async def endpoint(request: Request) -> Response:
    await require("admin")(request)  # a no-op with --auth none
    # Reading the workers' files is file I/O: off the event loop.
    body = await to_thread.run_sync(exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def serve_port(host: str, port: int) -> tuple[WSGIServer, threading.Thread]:
    """Serve only the metrics on *host*:*port* from a daemon thread of this process (the
    supervisor, with several workers); the server and its thread, to stop it."""
    return start_http_server(port, addr=host, registry=registry())
