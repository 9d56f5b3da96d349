"""The rate-limit layer: every request but the exempt ones is counted before it is routed.

Who is counted: a request with an API key (a ``key`` principal, left in the scope by the
authentication layer, which must wrap this one) against the key's own rate (its ``rate``,
else ``--rate-limit``); every other request, anonymous or carrying a direct-upload grant,
against its client address at ``--rate-limit``. The address is the connection's peer, or,
with ``--trust-forwarded``, what the proxy reports (``Forwarded: for=``, else
``X-Forwarded-For`` as uvicorn applied it).

Not counted: ``/healthz``, ``/readyz`` and ``/metrics`` (load balancers and Prometheus poll
them: a limit there would turn a busy client into a node taken out of service), the web page
and its files (``/``, ``/web/...``: static, cached, and one page load is several requests),
and CORS preflights
(answered before this layer). Everything else counts once per request, whatever its size:
a chunk, a tus PATCH and a metadata lookup alike.

Over the limit: ``429`` ``/problems/rate-limited`` with ``Retry-After``; every counted
response carries ``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers).

If the counters cannot be reached (Redis down), requests are served uncounted and an error is
logged for each: an outage of Redis must not become an outage of uploads.
"""

from __future__ import annotations

import logging

from fastapi import Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixdrop.auth.principal import PRINCIPAL, Principal
from pixdrop.auth.ratelimit import Decision, RateLimiter
from pixdrop.errors import TooManyRequests
from pixdrop.http.errors import problem_response
from pixdrop.protocols.forwarded import forwarded_for

__all__ = ["EXEMPT_PATHS", "RateLimitMiddleware", "client_address", "is_exempt"]

log = logging.getLogger("pixdrop.ratelimit")

#: Paths never counted (see the module docstring), and prefixes of such paths.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/"})
EXEMPT_PREFIXES = ("/web/",)


def is_exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def client_address(scope: Scope, *, trust_forwarded: bool) -> str:
    """The address a request came from, as far as this server may believe."""
    if trust_forwarded:
        forwarded = forwarded_for(Headers(scope=scope))
        if forwarded is not None:
            return forwarded
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Counts each request against its client's budget (module docstring)."""

    def __init__(self, app: ASGIApp, *, limiter: RateLimiter, trust_forwarded: bool) -> None:
        self.app = app
        self.limiter = limiter
        self.trust_forwarded = trust_forwarded

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        try:
            decision = await self._count(scope)
        except Exception as exc:  # the counters' store (Redis) is down: serve, uncounted
            log.error("rate limit not applied, its counters cannot be reached: %r", exc)
            await self.app(scope, receive, send)
            return
        headers = decision.headers()
        if not decision.allowed:
            error = TooManyRequests(
                f"Over the rate limit of {decision.quota} requests in {decision.window} "
                f"seconds; retry in {headers['Retry-After']} s.",
                limit=decision.quota,
                window=decision.window,
                retry_after=int(headers["Retry-After"]),
            )
            error.headers.update(headers)
            await problem_response(error, Request(scope))(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _count(self, scope: Scope) -> Decision:
        principal = scope.get(PRINCIPAL)
        if isinstance(principal, Principal) and principal.kind == "key" and principal.id:
            return await self.limiter.hit(f"key/{principal.id}", policy="key", rate=principal.rate)
        address = client_address(scope, trust_forwarded=self.trust_forwarded)
        return await self.limiter.hit(f"address/{address}", policy="address")
