"""The principal: who a request speaks for, resolved once per request from its credential.

Every request carries one in ``scope[PRINCIPAL]`` once the authentication layer has run (an
anonymous one when no credential was sent, which ``--auth keys`` then refuses where a scope
is needed). Services never parse headers: they take the principal's ``owner`` (recorded on
uploads and images), its ``scopes`` and its limits.

Bearer secrets say what they are by their prefix, so a server never has to guess which table
to look a token up in: ``KEY_PREFIX`` for API keys, ``GRANT_PREFIX`` for one-time direct-upload
grants. A ``TokenResolver`` turns a secret of its prefix into a principal (``None``: unknown,
revoked or expired, answered 401).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from starlette.requests import HTTPConnection

from pixdrop.models import Grant

#: Every scope a key may hold. ``admin`` implies the others.
SCOPES: tuple[str, ...] = ("upload", "read", "delete", "admin")
#: Secret prefixes: an API key, and a direct-upload grant's token.
KEY_PREFIX = "pxk_"
GRANT_PREFIX = "pxg_"
#: Where the authentication layer leaves the principal in the ASGI scope.
PRINCIPAL = "pixdrop.principal"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for."""

    kind: Literal["anonymous", "key", "grant"]
    #: The key's public id, or the grant's id; None when anonymous.
    id: str | None = None
    #: The key id that owns what this principal creates: the key itself, or the key that
    #: issued the grant. None when anonymous.
    owner: str | None = None
    scopes: frozenset[str] = frozenset()
    #: The key's own rate limit ("100/minute"); None: the server's ``--rate-limit``.
    rate: str | None = None
    #: Bytes the owner may keep (stored images plus open uploads' declared sizes); None: no cap.
    quota: int | None = None
    #: Open uploads the owner may have at once; None: no cap.
    max_open_uploads: int | None = None
    #: A grant principal's grant: its constraints, which the services enforce.
    grant: Grant | None = None

    def allows(self, scope: str) -> bool:
        """True if this principal holds *scope* (``admin`` holds them all)."""
        return scope in self.scopes or "admin" in self.scopes


ANONYMOUS = Principal(kind="anonymous")


class TokenResolver(Protocol):
    """Turns a bearer secret of one prefix into the principal it stands for."""

    async def resolve(self, secret: str) -> Principal | None:
        """The principal *secret* stands for; None if unknown, revoked or expired."""
        ...


def principal_of(conn: HTTPConnection) -> Principal:
    """The principal of *conn* (anonymous before, or without, the authentication layer)."""
    value = conn.scope.get(PRINCIPAL)
    return value if isinstance(value, Principal) else ANONYMOUS
