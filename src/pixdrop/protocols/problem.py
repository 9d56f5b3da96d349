"""Render errors as RFC 9457 problem details (pure: returns plain dicts)."""

from __future__ import annotations

from typing import Any

from pixdrop.errors import PixdropError

MEDIA_TYPE = "application/problem+json"


def problem_body(error: PixdropError, instance: str | None = None) -> dict[str, Any]:
    """The problem object for *error*: type, title, status, detail and its extra fields."""
    body: dict[str, Any] = {
        "type": error.type,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if instance:
        body["instance"] = instance
    for key, value in error.extra.items():
        body.setdefault(key, value)
    return body
