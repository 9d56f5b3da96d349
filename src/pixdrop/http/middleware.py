"""The outer request layer: request ids, unexpected errors, metrics and the access log.

* Every response carries an ``X-Request-Id``. A client's own is kept when it is short and
  plain, so a request can be traced through a proxy; otherwise pixdrop makes one. Problem
  bodies quote it too (``http.errors``), and so does every log record made while the request
  is served (``logs.REQUEST_ID``).
* An exception nothing else handled is logged in full under that id and answered with a
  generic 500 problem quoting it (never the exception's text). This lives here, not in an
  exception handler, because Starlette runs ``Exception`` handlers outside all middleware,
  where the response would lose its request id.
* Per request, the HTTP metrics (``pixdrop.metrics``), labelled by the route's *template*
  (``/v1/uploads/{upload_id}``), never the raw path; a path no route matches is
  ``<unmatched>``.
* One access-log record per request: client, method, path (never the query string, which may
  carry a presigned signature), status, bytes in and out, duration, request id; with the
  route, and the upload or image id when known, as fields for ``--log-format json``.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixdrop import metrics
from pixdrop.errors import ClientGone
from pixdrop.http.errors import internal_error
from pixdrop.logs import REQUEST_ID

log = logging.getLogger("pixdrop.access")
errors_log = logging.getLogger("pixdrop.errors")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: Methods that label metrics as themselves; any other is ``other`` (labels stay bounded).
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "<unmatched>"
#: A direct-upload grant's token in a path (its upload URL): never written to the log.
_GRANT_TOKEN = re.compile(r"pxg_[A-Za-z0-9_-]+")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _CLIENT_ID.fullmatch(text):
                return text
    return secrets.token_hex(8)


def route_template(scope: Scope) -> str:
    """The path template of the route that served *scope*. The router leaves it in the scope;
    when an inner middleware handed the router a copy (tus method override), the routes are
    asked again: the first whose path matches (for any method, as the copy's method may
    differ)."""
    route = scope.get("route")
    if route is None:
        route = _match_path(scope)
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


def _match_path(scope: Scope, routes: Iterable[object] | None = None) -> object:
    """The first route whose path matches *scope*'s, looking into included routers."""
    if routes is None:
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
    for candidate in routes:
        included = getattr(getattr(candidate, "original_router", None), "routes", None)
        if included is not None:  # FastAPI keeps include_router()'s routes in their router
            found = _match_path(scope, included)
            if found is not None:
                return found
        elif isinstance(candidate, BaseRoute) and candidate.matches(scope)[0] is not Match.NONE:
            return candidate
    return None


def _ids(scope: Scope, headers: MutableHeaders | None) -> tuple[str | None, str | None]:
    """The upload and image ids a request named in its path or its response created."""
    params: dict[str, Any] = scope.get("path_params") or {}
    upload_id, image_id = params.get("upload_id"), params.get("image_id")
    if headers is not None:
        image = headers.get("pixdrop-image")
        if image:
            image_id = image.rstrip("/").rpartition("/")[2]
        location = headers.get("location")
        if location and image_id is None and upload_id is None:
            name = location.split("?", 1)[0].rstrip("/").rpartition("/")[2]
            if "/v1/images/" in location:
                image_id = name
            else:
                upload_id = name
    return upload_id, image_id


@dataclass(frozen=True, slots=True)
class _Series:
    """The metric children of one (route, method, status): looked up once, not per request
    (``labels()`` validates and locks; it was half the metrics' cost per request)."""

    requests: Counter
    duration: Histogram
    received: Counter
    sent: Counter

    def record(self, duration: float, received: int, sent: int) -> None:
        self.requests.inc()
        self.duration.observe(duration)
        if received:
            self.received.inc(received)
        if sent:
            self.sent.inc(sent)


_SERIES: dict[tuple[str, str, int], _Series] = {}


def _series(route: str, method: str, status: int) -> _Series:
    found = _SERIES.get((route, method, status))
    if found is None:
        found = _SERIES[route, method, status] = _Series(
            metrics.HTTP_REQUESTS.labels(route, method, str(status)),
            metrics.HTTP_DURATION.labels(route, method),
            metrics.HTTP_RECEIVED.labels(route),
            metrics.HTTP_SENT.labels(route),
        )
    return found


class RequestLogMiddleware:
    """Pure ASGI middleware (no body buffering): request id and metrics always, access line
    if asked."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        context = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status = 500
        status_sent = False
        received = sent = 0
        response_headers: MutableHeaders | None = None

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal status, sent, status_sent, response_headers
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
                response_headers = MutableHeaders(scope=message)
                response_headers["X-Request-Id"] = request_id
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, counting_receive, tracking_send)
        except (ClientDisconnect, ClientGone):
            # The client went away mid-body: nothing was recorded and nobody is listening.
            log.debug("client disconnected, request id %s", request_id)
            if not status_sent:
                status = 499  # nginx's "client closed request", for the access log
        except Exception as exc:
            if status_sent:
                raise  # too late for a problem body: let the server drop the connection
            errors_log.error("unhandled error, request id %s", request_id, exc_info=exc)
            await internal_error(request_id)(scope, receive, tracking_send)
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            duration = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            _series(route, method, status).record(duration, received, sent)
            if self.access_log:
                upload_id, image_id = _ids(scope, response_headers)
                client = scope.get("client")
                fields = {
                    "client": client[0] if client else None,
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": route,
                    "status": status,
                    "bytes_in": received,
                    "bytes_out": sent,
                    "duration_ms": round(duration * 1000, 1),
                    "upload_id": upload_id,
                    "image_id": image_id,
                }
                log.info(
                    "%s %s %s %d %dB %.1fms %s",
                    fields["client"] or "-",
                    scope["method"],
                    _GRANT_TOKEN.sub("pxg_…", scope["path"]),
                    status,
                    sent,
                    duration * 1000,
                    request_id,
                    extra=fields,
                )
            REQUEST_ID.reset(context)
