"""The authentication layer: one pure ASGI middleware (no body buffering) that turns a
request's ``Authorization: Bearer <secret>`` into the ``Principal`` it speaks for.

Secrets say what they are by their prefix (``KEY_PREFIX``, ``GRANT_PREFIX``): the runtime
holds one ``TokenResolver`` per prefix (``Runtime.resolvers``), so a new kind of credential
plugs in with one entry. A secret of a known prefix that resolves to nothing (unknown,
revoked, expired) is answered 401 here, whatever the route; anything else (no header, another
scheme, a bearer token of no known prefix such as an image's old-style delete token) leaves
the request anonymous, and the routes decide (``auth.scopes.require``).

The principal goes into ``scope[PRINCIPAL]``; its owner also into ``models.ATTRIBUTION``, so
what the request creates is recorded as the owner's, whichever protocol creates it. A grant's
owner is the key that issued it, so what a grant makes counts against that key's quota; it is
private if the grant says so or the request asks (``Pixdrop-Private``). A grant in an upload
URL's path (no header) is attributed the same way by its route (``http.direct``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from pixdrop.auth.principal import ANONYMOUS, PRINCIPAL, Principal, TokenResolver
from pixdrop.errors import Unauthorized
from pixdrop.models import ATTRIBUTION, Attribution
from pixdrop.protocols.problem import MEDIA_TYPE, problem_body

__all__ = ["PRIVATE_HEADER", "AuthMiddleware", "bearer_secret", "is_true", "mark_private"]

#: ``Pixdrop-Private: true`` on the request that creates an upload makes its image private,
#: whatever the protocol (the native and tus APIs also take it in their own fields).
PRIVATE_HEADER = "pixdrop-private"


def is_true(value: str | bytes | None) -> bool:
    """``true``, ``1``, ``yes`` or the structured-field ``?1``, in any case."""
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    return (value or "").strip().lower() in ("true", "1", "yes", "?1")


def mark_private() -> None:
    """Make what the current request creates private (a protocol's own ``private`` field)."""
    ATTRIBUTION.set(replace(ATTRIBUTION.get(), private=True))


def bearer_secret(headers: Headers) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None (no header, another scheme)."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def _resolver_for(secret: str, resolvers: Mapping[str, TokenResolver]) -> TokenResolver | None:
    for prefix, resolver in resolvers.items():
        if secret.startswith(prefix):
            return resolver
    return None


class AuthMiddleware:
    """Resolve the request's credential into ``scope[PRINCIPAL]`` (module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        principal: Principal | None = ANONYMOUS
        headers = Headers(scope=scope)
        secret = bearer_secret(headers)
        if secret is not None:
            resolver = _resolver_for(secret, _resolvers(scope))
            if resolver is not None:
                principal = await resolver.resolve(secret)
        if principal is None:
            await _refuse(scope, send)
            return
        scope[PRINCIPAL] = principal
        private = is_true(headers.get(PRIVATE_HEADER)) or (
            principal.grant is not None and principal.grant.private
        )
        reset = ATTRIBUTION.set(Attribution(owner=principal.owner, private=private))
        try:
            await self.app(scope, receive, send)
        finally:
            ATTRIBUTION.reset(reset)


def _resolvers(scope: Scope) -> Mapping[str, TokenResolver]:
    """The running app's resolvers (empty before its lifespan has built the runtime)."""
    app = scope.get("app")
    runtime = getattr(getattr(app, "state", None), "runtime", None)
    resolvers: Mapping[str, TokenResolver] = getattr(runtime, "resolvers", {})
    return resolvers


async def _refuse(scope: Scope, send: Send) -> None:
    # The secret is never echoed nor logged: the problem names its kind of failure only.
    error = Unauthorized(
        "The credential is not valid: unknown, revoked or expired. Send a valid API key as "
        "'Authorization: Bearer <key>'."
    )
    body = json.dumps(problem_body(error, instance=scope.get("path"))).encode()
    headers = [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    headers += [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
