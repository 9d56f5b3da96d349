"""Signed URLs of private images: an expiry and an HMAC-SHA256 over the image id and that
expiry, keyed by ``--signing-key``. A signature opens every representation of the image (its
metadata, original and variants) until it expires. URLs signed with ``--signing-key-previous``
keep working while keys are rotated. Pure: no I/O.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

__all__ = ["MAX_EXPIRES_IN", "UrlSigner"]

#: The longest a signed URL may be valid: 7 days (as S3's presigned URLs).
MAX_EXPIRES_IN = 7 * 86_400


class UrlSigner:
    """Sign and check ``(image id, expiry)`` pairs; the first key signs, every key checks."""

    def __init__(self, keys: Sequence[str | None]) -> None:
        given = [k.encode() for k in keys if k]
        # No key configured: a random one, good for this process only (module docstring).
        self._keys = given or [secrets.token_bytes(32)]
        self.ephemeral = not given

    def _mac(self, key: bytes, image_id: str, expires: int) -> str:
        digest = hmac.new(key, f"{image_id}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, image_id: str, expires: int) -> str:
        """The signature of *image_id* until the Unix time *expires*."""
        return self._mac(self._keys[0], image_id, expires)

    def verify(self, image_id: str, expires: str, signature: str, now: float) -> bool:
        """Whether *signature* signs *image_id* until *expires*, and *now* is before that."""
        if not expires.isdigit() or len(expires) > 12 or int(expires) <= now:
            return False
        return any(
            hmac.compare_digest(self._mac(key, image_id, int(expires)), signature)
            for key in self._keys
        )
