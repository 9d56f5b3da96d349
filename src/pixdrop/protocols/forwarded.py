"""Where a request really came in, as a trusted reverse proxy reports it.

RFC 7239 ``Forwarded`` (first element: the proxy nearest the client) is preferred over the
de-facto ``X-Forwarded-Proto`` / ``X-Forwarded-Host``. Values that could not be a scheme or a
host are ignored rather than echoed into URLs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_SCHEME = re.compile(r"^https?$", re.IGNORECASE)
#: A host name, IPv4 or bracketed IPv6 literal, with an optional port; nothing else.
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?$")


def _forwarded_pairs(value: str) -> dict[str, str]:
    first = value.split(",", 1)[0]
    pairs: dict[str, str] = {}
    for item in first.split(";"):
        name, _, raw = item.strip().partition("=")
        pairs[name.strip().lower()] = raw.strip().strip('"')
    return pairs


def forwarded_origin(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """``(scheme, host)`` from the proxy headers; either is ``None`` when absent or invalid."""
    scheme: str | None = None
    host: str | None = None
    if "forwarded" in headers:
        pairs = _forwarded_pairs(headers["forwarded"])
        scheme, host = pairs.get("proto"), pairs.get("host")
    if scheme is None and "x-forwarded-proto" in headers:
        scheme = headers["x-forwarded-proto"].split(",", 1)[0].strip()
    if host is None and "x-forwarded-host" in headers:
        host = headers["x-forwarded-host"].split(",", 1)[0].strip()
    if scheme is not None and not _SCHEME.fullmatch(scheme):
        scheme = None
    if host is not None and not _HOST.fullmatch(host):
        host = None
    return (scheme.lower() if scheme else None), host


#: An IPv4 or IPv6 address as ``Forwarded: for=`` gives it (RFC 7239 §6), port dropped.
_NODE = re.compile(r"^(\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+))(:[0-9]{1,5})?$")


def forwarded_for(headers: Mapping[str, str]) -> str | None:
    """The client address of the first ``Forwarded`` element's ``for=``; ``None`` when absent
    or not an address (``unknown``, an obfuscated name). ``X-Forwarded-For`` is left to the
    server (uvicorn puts it in the ASGI scope's ``client`` when forwarding is trusted)."""
    if "forwarded" not in headers:
        return None
    match = _NODE.fullmatch(_forwarded_pairs(headers["forwarded"]).get("for", ""))
    if match is None:
        return None
    return match.group("v6") or match.group("v4")
