"""``GET /v1/images``: the stored images, newest first, a page at a time.

With a key, it lists that key's own images (an admin key: every image); under ``--auth
none`` without a key, every image on the server. A page ends with ``next_cursor``: an opaque
token for the next page (``null`` on the last). It encodes the ``(created_at, id)`` of the
page's last image, and the next page starts strictly after it in that order, so pages never
overlap nor skip an image, however many are added (they are newer: a new listing shows
them) or deleted meanwhile.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from pixdrop.auth.principal import principal_of
from pixdrop.auth.scopes import require
from pixdrop.errors import BadRequest
from pixdrop.http.problems import problems
from pixdrop.http.schemas import ImagePage
from pixdrop.http.state import base_url, runtime
from pixdrop.http.views import image_json
from pixdrop.models import is_valid_id

router = APIRouter(tags=["images"])

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: The cursor's version: a token of another version is refused, not misread.
_VERSION = "1"


def encode_cursor(created_at: datetime, image_id: str) -> str:
    """The opaque token of a position: version, instant (UTC, microseconds) and id."""
    text = f"{_VERSION} {created_at.isoformat()} {image_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[datetime, str]:
    """The position a token encodes; ``BadRequest`` for anything this server did not make."""
    try:
        padded = token + "=" * (-len(token) % 4)
        version, instant, image_id = base64.urlsafe_b64decode(padded).decode().split(" ")
        created_at = datetime.fromisoformat(instant)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        created_at = None
        version = image_id = ""
    if version != _VERSION or created_at is None or created_at.tzinfo is None:
        raise BadRequest(
            "The cursor is not one this server handed out: pass next_cursor unchanged, "
            "or leave it out for the first page.",
            cursor=token[:100],
        )
    if not is_valid_id(image_id):
        raise BadRequest("The cursor names no image id.", cursor=token[:100])
    return created_at, image_id


@router.get(
    "/v1/images",
    summary="List images, newest first, a page at a time",
    description="The caller's images, newest first (an admin key's: all of them; without a "
    "key under --auth none: all of them). Pass a page's next_cursor as ?cursor= to get the "
    "next page; next_cursor is null on the last.",
    dependencies=[Depends(require("read"))],
    response_model=ImagePage,
    responses=problems("list_images"),
)
async def list_images(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Images per page.")] = (
        DEFAULT_LIMIT
    ),
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page.")
    ] = None,
) -> JSONResponse:
    after = decode_cursor(cursor) if cursor else None
    principal = principal_of(request)
    sees_all = principal.kind == "anonymous" or "admin" in principal.scopes
    owner = None if sees_all else principal.owner
    images, last = await runtime(request).images.list(limit, after, owner=owner)
    base = base_url(request)
    return JSONResponse(
        {
            "images": [image_json(image, base) for image in images],
            "next_cursor": encode_cursor(*last) if last else None,
        },
        headers={"Cache-Control": "no-store"},
    )
