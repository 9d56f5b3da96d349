"""The outer request layer: request ids, unexpected errors and the access log.

* Every response carries an ``X-Request-Id``. A client's own is kept when it is short and
  plain, so a request can be traced through a proxy; otherwise pixdrop makes one.
* An exception nothing else handled is logged in full under that id and answered with a
  generic 500 problem quoting it (never the exception's text). This lives here, not in an
  exception handler, because Starlette runs ``Exception`` handlers outside all middleware,
  where the response would lose its request id.
* One access-log line per request: client, method, path, status, bytes, duration, request id.
"""

from __future__ import annotations

import logging
import re
import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixdrop.errors import ClientGone
from pixdrop.http.errors import internal_error

log = logging.getLogger("pixdrop.access")
errors_log = logging.getLogger("pixdrop.errors")

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
#: A direct-upload grant's token in a path (its upload URL): never written to the log.
_GRANT_TOKEN = re.compile(r"pxg_[A-Za-z0-9_-]+")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text: str = value.decode("latin-1")
            if _CLIENT_ID.fullmatch(text):
                return text
    return secrets.token_hex(8)


class RequestLogMiddleware:
    """Pure ASGI middleware (no body buffering): request id always, access line if asked."""

    def __init__(self, app: ASGIApp, *, access_log: bool = True) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        status_sent = False
        sent = 0

        async def tracking_send(message: Message) -> None:
            nonlocal status, sent, status_sent
            if message["type"] == "http.response.start":
                status, status_sent = message["status"], True
                MutableHeaders(scope=message)["X-Request-Id"] = request_id
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
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
            if self.access_log:
                client = scope.get("client")
                log.info(
                    "%s %s %s %d %dB %.1fms %s",
                    client[0] if client else "-",
                    scope["method"],
                    _GRANT_TOKEN.sub("pxg_…", scope["path"]),
                    status,
                    sent,
                    (time.perf_counter() - started) * 1000,
                    request_id,
                )
