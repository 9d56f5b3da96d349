"""Direct-upload grants as credentials: ``GrantResolver`` turns a ``pxg_`` token into the
principal it stands for (a ``TokenResolver`` of ``GRANT_PREFIX``).

The principal is ``kind="grant"``, its id the grant's, its owner the key that issued the grant,
scope ``upload`` only, and it carries the grant (its constraints) for the services to enforce.

Unlike an API key, a grant that expired or already made its image still resolves: the upload
it tries is then refused by the services with a problem naming why (``grant-expired``,
``grant-used``) rather than a bare 401. Only a token of no grant, or with a wrong secret,
resolves to ``None``. The secret is compared in constant time (``hmac.compare_digest`` of
sha256 hashes), after a lookup by the grant id the token carries.
"""

from __future__ import annotations

from pixdrop.auth.principal import GRANT_PREFIX, Principal
from pixdrop.errors import GrantNotFound
from pixdrop.services.grants import DirectUploads

__all__ = ["GRANT_SCOPES", "GrantResolver"]

#: What a grant allows: uploading (its one image).
GRANT_SCOPES = frozenset({"upload"})


class GrantResolver:
    """``TokenResolver`` for direct-upload grant tokens (``pxg_…``)."""

    prefix = GRANT_PREFIX

    def __init__(self, direct: DirectUploads) -> None:
        self.direct = direct

    async def resolve(self, secret: str) -> Principal | None:
        """The grant principal of *secret*; None for a token of no grant (module docstring)."""
        try:
            grant = await self.direct.redeem(secret)
        except GrantNotFound:
            return None
        return Principal(
            kind="grant", id=grant.id, owner=grant.owner, scopes=GRANT_SCOPES, grant=grant
        )
