"""Direct-upload grants: issuing them, and the rules every way in applies to an upload made
with one.

A grant lets whoever holds its token upload exactly one image, within its constraints. The
rules are checked twice, by the services every protocol shares:

* when an upload is opened (``Lifecycle.new``, ``OneShot.put_single``): the grant has not
  expired and made no image yet, the declared size is within ``max_size``, no tus
  concatenation (``check_open``);
* when the image is complete (``Completion.ingest``): the sniffed format is one the grant
  allows and the size fits (``check_image``), then the grant is claimed for the new image by
  one conditional update in the database before the image is recorded, so of two uploads
  racing with one grant, on any nodes, exactly one makes an image.

An upload opened before its grant expired may still finish (within the upload's own expiry).

A token is ``pxg_`` + the grant id (22 characters) + 43 characters of secret (256 random bits);
only its sha256 is stored, looked up by the id in it and compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from pixdrop.errors import (
    Forbidden,
    GrantExpired,
    GrantFormatRefused,
    GrantNotFound,
    GrantTooLarge,
    GrantUsed,
    InvalidUploadRequest,
)
from pixdrop.models import Grant, is_valid_id, new_id
from pixdrop.ports import MetadataStore

__all__ = [
    "GRANT_PREFIX",
    "GRANT_RETENTION",
    "MAX_GRANT_TTL",
    "DirectUploads",
    "IssuedGrant",
    "check_image",
    "check_open",
    "parse_token",
    "token_hash",
]

GRANT_PREFIX = "pxg_"
#: A grant lives at most a day.
MAX_GRANT_TTL = 86_400
DEFAULT_GRANT_TTL = 3_600
#: How long a grant is kept after its expiry, so its issuer can still ask what it made.
GRANT_RETENTION = timedelta(days=7)
#: The issuer's metadata, as JSON, is kept up to this many bytes.
MAX_METADATA = 4_096
_ID_LENGTH = 22
_SECRET_LENGTH = 43  # secrets.token_urlsafe(32)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def parse_token(token: str) -> str | None:
    """The grant id inside *token*, or None if it does not have a grant token's shape."""
    body = token[len(GRANT_PREFIX) :]
    if not token.startswith(GRANT_PREFIX) or len(body) != _ID_LENGTH + _SECRET_LENGTH:
        return None
    grant_id = body[:_ID_LENGTH]
    return grant_id if is_valid_id(grant_id) else None


def _too_large(grant: Grant, size: int | None) -> GrantTooLarge:
    said = "larger" if size is None else f"{size} bytes"
    return GrantTooLarge(
        f"The image is {said}; direct-upload grant {grant.id} allows at most "
        f"{grant.max_size} bytes.",
        limit="grant.max_size",
        value=size,
        allowed=grant.max_size,
        grant=grant.id,
    )


def check_open(grant: Grant, size: int | None, now: datetime, *, concat: bool = False) -> None:
    """Raise if *grant* cannot open an upload of *size* bytes (``None``: not known yet)."""
    if grant.image_id is not None:
        raise GrantUsed(
            f"Direct-upload grant {grant.id} has already made image {grant.image_id}; a grant "
            "uploads one image. Ask the site for a new one.",
            grant=grant.id,
            image_id=grant.image_id,
        )
    if grant.expires_at <= now:
        raise GrantExpired(
            f"Direct-upload grant {grant.id} expired at {grant.expires_at.isoformat()}; ask "
            "the site for a new one.",
            grant=grant.id,
            expires_at=grant.expires_at.isoformat(),
        )
    if size is not None and grant.max_size is not None and size > grant.max_size:
        raise _too_large(grant, size)
    if concat:
        raise Forbidden(
            f"Direct-upload grant {grant.id} uploads one file: tus concatenation "
            "(Upload-Concat) is not available with a grant.",
            grant=grant.id,
        )


def too_large_body(grant: Grant) -> Callable[[], GrantTooLarge]:
    """The refusal for a body that grew past the grant's ``max_size``."""
    return lambda: _too_large(grant, None)


def check_image(grant: Grant, size: int, fmt: str) -> None:
    """Raise if the finished image (*size* bytes, format *fmt*) breaks the grant."""
    if grant.max_size is not None and size > grant.max_size:
        raise _too_large(grant, size)
    if grant.formats is not None and fmt not in grant.formats:
        raise GrantFormatRefused(
            f"The image is {fmt}; direct-upload grant {grant.id} allows only "
            f"{', '.join(grant.formats)}.",
            reason="format-not-allowed",
            format=fmt,
            allowed=list(grant.formats),
            grant=grant.id,
        )


@dataclass(frozen=True, slots=True)
class IssuedGrant:
    """A new grant and its token (shown once: only its hash is kept)."""

    grant: Grant
    token: str


class DirectUploads:
    """Issue grants and tell their issuer what became of them."""

    def __init__(
        self,
        *,
        meta: MetadataStore,
        clock: Callable[[], datetime],
        formats: tuple[str, ...],
        max_image_size: int,
    ) -> None:
        self.meta = meta
        self.clock = clock
        self.formats = formats
        self.max_image_size = max_image_size

    async def issue(
        self,
        *,
        owner: str | None,
        max_size: int | None = None,
        formats: list[str] | None = None,
        expires_in: int | None = None,
        metadata: dict[str, object] | None = None,
        private: bool = False,
    ) -> IssuedGrant:
        """A new one-time grant; ``InvalidUploadRequest`` for constraints out of bounds."""
        ttl = DEFAULT_GRANT_TTL if expires_in is None else expires_in
        if not 1 <= ttl <= MAX_GRANT_TTL:
            raise InvalidUploadRequest(
                f"expires_in must be between 1 and {MAX_GRANT_TTL} seconds (24 hours).",
                limit="expires_in",
                value=ttl,
                allowed=[1, MAX_GRANT_TTL],
            )
        if max_size is not None and not 1 <= max_size <= self.max_image_size:
            raise InvalidUploadRequest(
                f"max_size must be between 1 and this server's max_image_size, "
                f"{self.max_image_size} bytes.",
                limit="max_size",
                value=max_size,
                allowed=[1, self.max_image_size],
            )
        names = self._formats(formats)
        raw_metadata = None if metadata is None else json.dumps(metadata, separators=(",", ":"))
        if raw_metadata is not None and len(raw_metadata.encode()) > MAX_METADATA:
            raise InvalidUploadRequest(
                f"metadata is over {MAX_METADATA} bytes as JSON.",
                limit="metadata",
                allowed=MAX_METADATA,
            )
        grant_id = new_id()
        token = GRANT_PREFIX + grant_id + secrets.token_urlsafe(32)
        now = self.clock()
        grant = Grant(
            id=grant_id,
            token_hash=token_hash(token),
            created_at=now,
            expires_at=now + timedelta(seconds=ttl),
            owner=owner,
            max_size=max_size,
            formats=names,
            metadata=raw_metadata,
            private=private,
        )
        await self.meta.create_grant(grant)
        return IssuedGrant(grant, token)

    def _formats(self, formats: list[str] | None) -> tuple[str, ...] | None:
        if formats is None:
            return None
        names = tuple(dict.fromkeys(f.strip().lower() for f in formats))
        unknown = [f for f in names if f not in self.formats]
        if not names or unknown:
            raise InvalidUploadRequest(
                f"formats must name formats this server accepts: {', '.join(self.formats)}.",
                limit="formats",
                value=list(formats),
                allowed=list(self.formats),
            )
        return names

    async def get(self, grant_id: str) -> Grant:
        """The grant *grant_id*; ``GrantNotFound`` if there is none."""
        if not is_valid_id(grant_id):
            raise GrantNotFound(f"There is no direct-upload grant {grant_id!r}.")
        try:
            return await self.meta.get_grant(grant_id)
        except GrantNotFound:
            raise GrantNotFound(f"There is no direct-upload grant {grant_id!r}.") from None

    async def redeem(self, token: str) -> Grant:
        """The grant *token* stands for, whatever its state (the services then say why it
        cannot be used); ``GrantNotFound`` for a token of no grant, or a wrong secret."""
        grant_id = parse_token(token)
        if grant_id is None:
            raise GrantNotFound("This is not a direct-upload grant token.")
        grant = await self.get(grant_id)
        if not hmac.compare_digest(grant.token_hash, token_hash(token)):
            raise GrantNotFound(f"There is no direct-upload grant {grant_id!r}.")
        return grant
