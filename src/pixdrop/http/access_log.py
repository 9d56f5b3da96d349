"""One access-log line per request: client, method, path, status, bytes sent, duration."""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("pixdrop.access")


class AccessLogMiddleware:
    """Pure ASGI middleware (no body buffering) that logs when the response is finished."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = 0

        async def counting_send(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            client = scope.get("client")
            host = client[0] if client else "-"
            elapsed = (time.perf_counter() - started) * 1000
            log.info(
                "%s %s %s %d %dB %.1fms",
                host,
                scope["method"],
                scope["path"],
                status,
                sent,
                elapsed,
            )
