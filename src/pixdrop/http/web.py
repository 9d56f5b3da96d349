"""The upload page at ``/``: static files shipped in ``pixdrop/http/web/``, no build step.

Every response carries a Content-Security-Policy that allows only this origin (no inline
script or style, no CDN), ``nosniff``, and ``Cache-Control: no-cache`` with a strong ETag:
the file names are not versioned, so browsers revalidate and get ``304`` while nothing changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from fastapi import APIRouter, Request, Response

from pixdrop.errors import NotFound
from pixdrop.protocols.http_range import etag_matches

__all__ = ["CONTENT_SECURITY_POLICY", "router"]

router = APIRouter(include_in_schema=False)

#: Only this origin, for everything; images too (the page builds same-origin image paths).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",  # module scripts need a JavaScript MIME type
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}


@dataclass(frozen=True, slots=True)
class Asset:
    """One file of the page, read once from the package."""

    body: bytes
    media_type: str
    etag: str


@cache
def _assets() -> dict[str, Asset]:
    """Every servable file in ``web/`` by name; anything else is a 404 (no path reaches disk)."""
    found: dict[str, Asset] = {}
    for entry in (resources.files("pixdrop.http") / "web").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            found[entry.name] = Asset(body, MEDIA_TYPES[suffix], etag)
    return found


def _respond(request: Request, name: str) -> Response:
    asset = _assets().get(name)
    if asset is None:
        raise NotFound(f"Nothing is at {request.url.path}.")
    headers = {
        "ETag": asset.etag,
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    inm = request.headers.get("if-none-match")
    if inm is not None and etag_matches(inm, asset.etag):
        return Response(status_code=304, headers=headers)
    body = b"" if request.method == "HEAD" else asset.body
    headers["Content-Length"] = str(len(asset.body))
    return Response(body, headers=headers, media_type=asset.media_type)


@router.api_route("/", methods=["GET", "HEAD"])
async def index(request: Request) -> Response:
    """The upload page."""
    return _respond(request, "index.html")


@router.api_route("/web/{name}", methods=["GET", "HEAD"])
async def asset(request: Request, name: str) -> Response:
    """The page's scripts, style sheet and icon."""
    if name == "index.html":  # one URL for the page
        raise NotFound(f"Nothing is at {request.url.path}.")
    return _respond(request, name)
