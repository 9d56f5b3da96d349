"""API keys: their secrets, how one is issued, and the resolver that turns a secret into a
principal on every request.

A secret reads ``pxk_<id>_<random>``: ``KEY_PREFIX``, the key's public id (22 characters,
128 random bits, the primary key of its row) and 43 characters of ``secrets.token_urlsafe``
(256 random bits). Only the sha256 of the whole secret is stored. A secret is looked up by
the id it carries, then its hash is compared in constant time (``hmac.compare_digest``): the
lookup tells an attacker nothing a wrong guess of the random part would not.

The resolver reads the key's row on every request (no cache), so a revocation or an expiry
holds on the very next request on every node; on SQLite it is an inline primary-key read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pixdrop.auth.principal import KEY_PREFIX, SCOPES, Principal
from pixdrop.models import ApiKey, new_id, utcnow
from pixdrop.ports import MetadataStore

__all__ = [
    "IssuedKey",
    "KeyResolver",
    "issue_key",
    "key_json",
    "parse_duration",
    "parse_rate",
    "parse_scopes",
    "secret_hash",
]

_SECRET = re.compile(rf"^{KEY_PREFIX}([A-Za-z0-9_-]{{22}})_([A-Za-z0-9_-]{{43}})$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour|day)\s*$")


def secret_hash(secret: str) -> str:
    """What is stored of a secret: its sha256, hex. The secret has 256 random bits, so a fast
    hash is enough (no password stretching needed)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def key_id_of(secret: str) -> str | None:
    """The public key id a well-formed secret carries; None for anything else."""
    match = _SECRET.fullmatch(secret)
    return match.group(1) if match else None


def parse_scopes(text: str | Iterable[str]) -> tuple[str, ...]:
    """``upload,read`` → ``("upload", "read")``; ``ValueError`` for an unknown or no scope."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = tuple(dict.fromkeys(s.strip().lower() for s in items if s.strip()))
    unknown = [s for s in names if s not in SCOPES]
    if not names or unknown:
        raise ValueError(f"scopes are a comma-separated list of {', '.join(SCOPES)}")
    return names


def parse_duration(text: str) -> timedelta:
    """``90d``, ``12h``, ``30m``, ``2w``, ``45s`` → a timedelta; ``ValueError`` otherwise."""
    match = _DURATION.fullmatch(text.lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a duration such as 90d, 12h or 30m")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def parse_rate(text: str) -> str:
    """``100/minute`` (per second, minute, hour or day), normalised; ``ValueError`` otherwise."""
    match = _RATE.fullmatch(text.lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"{text!r} is not a rate such as 100/minute")
    return f"{int(match.group(1))}/{match.group(2)}"


@dataclass(frozen=True, slots=True)
class IssuedKey:
    """A key just created, with its secret: the only time the secret is known."""

    key: ApiKey
    secret: str


async def issue_key(
    meta: MetadataStore,
    *,
    name: str,
    scopes: Iterable[str],
    quota: int | None = None,
    max_open_uploads: int | None = None,
    rate: str | None = None,
    expires_in: timedelta | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> IssuedKey:
    """Create and record a key; return it with its secret (stored only as a hash)."""
    key_id = new_id()
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    now = clock()
    key = ApiKey(
        id=key_id,
        name=name,
        secret_hash=secret_hash(secret),
        scopes=parse_scopes(scopes),
        created_at=now,
        expires_at=now + expires_in if expires_in else None,
        quota=quota,
        max_open_uploads=max_open_uploads,
        rate=parse_rate(rate) if rate else None,
    )
    await meta.create_key(key)
    return IssuedKey(key, secret)


def key_json(key: ApiKey) -> dict[str, Any]:
    """A key as the admin API and ``pixdrop keys list`` show it: never its secret nor hash."""

    def instant(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": key.id,
        "name": key.name,
        "scopes": list(key.scopes),
        "created_at": instant(key.created_at),
        "expires_at": instant(key.expires_at),
        "revoked_at": instant(key.revoked_at),
        "quota": key.quota,
        "max_open_uploads": key.max_open_uploads,
        "rate": key.rate,
        "used_bytes": key.used_bytes,
        "open_uploads": key.open_uploads,
    }


class KeyResolver:
    """``TokenResolver`` for ``KEY_PREFIX`` secrets: one primary-key read per request."""

    def __init__(self, meta: MetadataStore, clock: Callable[[], datetime] = utcnow) -> None:
        self.meta = meta
        self.clock = clock

    async def resolve(self, secret: str) -> Principal | None:
        """The key's principal; None if the secret is malformed, unknown, wrong, revoked or
        expired (all answered alike: 401)."""
        key_id = key_id_of(secret)
        if key_id is None:
            return None
        key = await self.meta.get_key(key_id)
        if key is None or not hmac.compare_digest(secret_hash(secret), key.secret_hash):
            return None
        if not key.usable(self.clock()):
            return None
        return Principal(
            kind="key",
            id=key.id,
            owner=key.id,
            scopes=frozenset(key.scopes),
            rate=key.rate,
            quota=key.quota,
            max_open_uploads=key.max_open_uploads,
        )
