"""Who may do what: the ``require(scope)`` dependency every protected route declares, and the
checks on a private image and on deleting one.

``--auth none`` keeps today's open server: ``require`` lets everyone through (a key sent
anyway still owns what it creates). ``--auth keys``: no credential answers 401 with
``WWW-Authenticate: Bearer``, a credential without the scope 403, both problem+json.
Private images are private in both modes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import HTTPConnection

from pixdrop.auth.principal import Principal, principal_of
from pixdrop.errors import Forbidden, Unauthorized
from pixdrop.models import Image

__all__ = ["ANY", "can_manage", "check_private_read", "keys_required", "require"]

#: ``require(ANY)``: any valid credential, whatever its scopes.
ANY = "any"


def keys_required(conn: HTTPConnection) -> bool:
    """Whether the server runs ``--auth keys``."""
    mode: str = conn.app.state.settings.auth_mode
    return mode == "keys"


def require(scope: str) -> Callable[[HTTPConnection], Awaitable[Principal]]:
    """A FastAPI dependency: the request's principal, if it may act with *scope* (module
    docstring); raise ``Unauthorized`` or ``Forbidden`` otherwise."""

    async def check(conn: HTTPConnection) -> Principal:
        principal = principal_of(conn)
        # OPTIONS (tus discovery) tells capabilities only, and browsers send it bare.
        if not keys_required(conn) or conn.scope.get("method") == "OPTIONS":
            return principal
        if principal.kind == "anonymous":
            what = "an API key" if scope == ANY else f"an API key with scope {scope!r}"
            raise Unauthorized(
                f"This needs {what}: send 'Authorization: Bearer <key>' (docs/auth.md)."
            )
        if scope != ANY and not principal.allows(scope):
            raise Forbidden(
                f"This key lacks the scope {scope!r} (it has "
                f"{', '.join(sorted(principal.scopes)) or 'none'}).",
                required_scope=scope,
            )
        return principal

    return check


def can_manage(principal: Principal, image: Image, scope: str) -> bool:
    """Whether *principal* holds *scope* over *image*: an admin key, or a key with *scope*
    that owns it."""
    if principal.kind != "key":
        return False
    if "admin" in principal.scopes:
        return True
    return principal.allows(scope) and image.owner is not None and principal.owner == image.owner


def check_private_read(principal: Principal, image: Image, *, signed: bool) -> None:
    """Let a read of *image* through if it is public, the URL is validly *signed*, or
    *principal* is a read key of its owner (or admin); else raise 401 (no key) or 403."""
    if not image.private or signed or can_manage(principal, image, "read"):
        return
    if principal.kind == "anonymous":
        raise Unauthorized(
            f"Image {image.id} is private: send a read key of its owner "
            "('Authorization: Bearer <key>') or use a signed URL."
        )
    raise Forbidden(f"Image {image.id} is private and this key is not its owner's read key.")
