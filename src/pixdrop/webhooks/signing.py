"""Standard Webhooks signatures (https://www.standardwebhooks.com/, version 1.0.0).

A delivery carries ``webhook-id`` (the event's id, the same on every attempt),
``webhook-timestamp`` (integer Unix seconds of this attempt) and ``webhook-signature``:
``v1,`` and the base64 HMAC-SHA256, keyed by the secret's bytes, of ``id.timestamp.body``.
Secrets are ``whsec_`` and base64 of 32 random bytes. Receivers verify with any Standard
Webhooks library (the tests use the ``standardwebhooks`` package).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

__all__ = ["SECRET_PREFIX", "check_secret", "headers", "new_secret", "sign"]

SECRET_PREFIX = "whsec_"  # noqa: S105 (the prefix, not a secret)
#: The spec asks for 24 to 64 bytes of key.
SECRET_BYTES = 32


def new_secret() -> str:
    """A fresh signing secret: ``whsec_<base64 of 32 random bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)


def check_secret(secret: str) -> str:
    """*secret* if it is ``whsec_`` and base64 of 24 to 64 bytes; else ``ValueError``."""
    try:
        key = _key(secret) if secret.startswith(SECRET_PREFIX) else b""
    except (binascii.Error, ValueError):
        key = b""
    if not 24 <= len(key) <= 64:
        raise ValueError("a secret is whsec_ followed by base64 of 24 to 64 random bytes")
    return secret


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value of *body*: ``v1,<base64 HMAC-SHA256>``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The headers of one delivery attempt."""
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
