"""Serving images: metadata, original bytes (ETag, 304, Range) and deletion.

Every image response carries the same guard rails (:func:`image_headers`): ``nosniff`` so a
browser never takes the bytes for anything but their declared type, a ``default-src 'none'``
Content-Security-Policy so that even a document rendered from them could load and run
nothing, and an ``inline`` Content-Disposition whose file name is the sanitised original name
with the extension of the type actually served (a download can never be saved as ``.html``).
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated
from urllib.parse import quote, urlencode

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from pixdrop.auth.principal import GRANT_PREFIX, KEY_PREFIX, principal_of
from pixdrop.auth.scopes import can_manage, check_private_read, require
from pixdrop.auth.signing import MAX_EXPIRES_IN
from pixdrop.errors import Forbidden
from pixdrop.http.problems import problems
from pixdrop.http.schemas import BLOB_RESPONSES, REDIRECT_RESPONSE, ImageOut, SignedUrlOut
from pixdrop.http.state import base_url, runtime
from pixdrop.http.views import image_json
from pixdrop.models import Image
from pixdrop.ports import Presigns
from pixdrop.protocols.http_range import etag_matches, parse_range

router = APIRouter(tags=["images"])

#: Bearer tokens with these prefixes are credentials, never an old-style delete token.
CREDENTIAL_PREFIXES = (KEY_PREFIX, GRANT_PREFIX)
IMMUTABLE = "public, max-age=31536000, immutable"
#: For the uploader's own view of an original that has a location: no shared cache keeps it.
PRIVATE = "private, max-age=31536000, immutable"
#: ``--blob-redirect``: how long a presigned URL works, and how long a client may keep the 302
#: (well under that, so a kept redirect never points at an expired URL).
REDIRECT_EXPIRES = 300
REDIRECT_CACHE = "private, max-age=60"
_EXTENSIONS = {"jpeg": "jpg", "tiff": "tif"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")

Reader = Callable[[int, int], AsyncIterator[bytes]]


#: The delete token's own header, and its own ``Authorization`` scheme: neither can be taken
#: for an API key. ``Authorization: Bearer <delete token>`` still works for one release, with
#: a ``Deprecation`` header (docs/auth.md).
DELETE_TOKEN_HEADER = "pixdrop-delete-token"  # noqa: S105 (a header's name)
DELETE_TOKEN_SCHEME = "pixdrop-delete-token"  # noqa: S105 (a scheme's name)
#: RFC 9745: the old form is deprecated since this release (an @-prefixed Unix time).
DEPRECATED_SINCE = "@1798761600"
#: Private images: each client keeps its own copy, revalidated (ETag) on every use.
PRIVATE_IMAGE = "private, no-cache"


def delete_token(request: Request) -> tuple[str | None, bool]:
    """The image delete token the request carries, and whether in the deprecated form
    (``Authorization: Bearer <token>`` with a token of no credential prefix)."""
    own = request.headers.get(DELETE_TOKEN_HEADER, "").strip()
    if own:
        return own, False
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if not token:
        return None, False
    if scheme.lower() == DELETE_TOKEN_SCHEME:
        return token, False
    if scheme.lower() == "bearer" and not token.startswith(CREDENTIAL_PREFIXES):
        return token, True
    return None, False


def _deprecation(headers: dict[str, str]) -> dict[str, str]:
    headers["Deprecation"] = DEPRECATED_SINCE
    headers["Link"] = '</docs/auth.md#delete-tokens>; rel="deprecation"'
    return headers


def signed(request: Request, image: Image) -> bool:
    """Whether the request's URL carries a valid signature of *image* (``?expires=&sig=``)."""
    expires, sig = request.query_params.get("expires"), request.query_params.get("sig")
    if not expires or not sig:
        return False
    return runtime(request).signer.verify(image.id, expires, sig, time.time())


async def readable_image(request: Request, image_id: str) -> Image:
    """The image, if this request may read it (``auth.scopes.check_private_read``)."""
    image = await runtime(request).images.get(image_id)
    if image.private:
        opened = signed(request, image) or is_uploader(request, image)
        check_private_read(principal_of(request), image, signed=opened)
    return image


def is_uploader(request: Request, image: Image) -> bool:
    """Whether the request carries *image*'s delete token: the uploader's own mark."""
    return runtime(request).images.is_uploader(image, delete_token(request)[0])


def download_name(image: Image, fmt: str, suffix: str = "") -> str:
    """The image's file name (or id) with *suffix* and the extension of *fmt*."""
    stem = image.filename or image.id
    if "." in stem.lstrip("."):
        stem = stem.rsplit(".", 1)[0]
    return f"{stem}{suffix}.{_EXTENSIONS.get(fmt, fmt)}"


def image_headers(name: str) -> dict[str, str]:
    """The headers every image response carries (see the module docstring)."""
    ascii_name = _UNSAFE.sub("_", name).strip(" .") or "image"
    disposition = f'inline; filename="{ascii_name}"'
    if ascii_name != name:  # RFC 6266 §4.3: the exact name for clients that read filename*
        disposition += f"; filename*=UTF-8''{quote(name, safe='')}"
    return {
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'",
        "Content-Disposition": disposition,
    }


def send_blob(
    request: Request,
    *,
    size: int,
    media_type: str,
    etag: str,
    read: Reader,
    headers: dict[str, str],
) -> Response:
    """Answer a GET or HEAD for bytes named by a strong *etag*: 304, 206 (one range) or 200."""
    headers = {**headers, "ETag": etag, "Accept-Ranges": "bytes"}
    inm = request.headers.get("if-none-match")
    if inm is not None and etag_matches(inm, etag):
        return Response(status_code=304, headers=headers)
    start, end, status = 0, size, 200
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    # If-Range (RFC 9110 §13.1.5): honour Range only while the validator still matches.
    if range_header and (if_range is None or if_range.strip() == etag):
        wanted = parse_range(range_header, size)
        if wanted is not None:
            (start, end), status = wanted, 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=media_type)
    return StreamingResponse(
        read(start, end), status_code=status, headers=headers, media_type=media_type
    )


@router.get(
    "/v1/images/{image_id}",
    summary="An image's metadata",
    response_model=ImageOut,
    responses=problems("get_image"),
)
async def get_image(request: Request, image_id: str) -> JSONResponse:
    image = await readable_image(request, image_id)
    headers = {"Cache-Control": PRIVATE_IMAGE, "Vary": "Authorization"} if image.private else {}
    return JSONResponse(image_json(image, base_url(request)), headers=headers)


ORIGINAL = "/v1/images/{image_id}/original"


@router.get(
    ORIGINAL,
    summary="The original bytes, with ETag, conditional and Range support",
    description="The exact bytes uploaded. If they hold a GPS location and strip_gps is on, "
    "anyone but the uploader (Authorization: Bearer <delete_token>) gets them without it.",
    response_class=Response,
    operation_id="get_original",
    responses={**BLOB_RESPONSES, **REDIRECT_RESPONSE, **problems("get_original")},
)
async def get_original(request: Request, image_id: str) -> Response:
    rt = runtime(request)
    image = await readable_image(request, image_id)
    headers = image_headers(download_name(image, image.format))
    headers["Cache-Control"] = IMMUTABLE
    public = None
    # The original bytes themselves, the same for everyone: what --blob-redirect may send.
    # Never a private image's: a presigned URL would outlive the key or signature checked here.
    shared = not image.private
    if image.private:
        # The owner (or a signed URL) gets the exact bytes; no shared cache may keep them.
        headers["Cache-Control"] = PRIVATE_IMAGE
        headers["Vary"] = "Authorization"
    elif rt.renditions.strip_gps and image.has_gps:
        # Two answers for one URL: caches must key them apart, and keep the uploader's private.
        shared = False
        headers["Vary"] = "Authorization"
        if is_uploader(request, image) or can_manage(principal_of(request), image, "read"):
            headers["Cache-Control"] = PRIVATE
        else:
            public = await rt.renditions.public_original(image)
    if public is None:
        if shared and request.method == "GET":
            redirect = await _redirect(request, image, etag=f'"{image.sha256}"')
            if redirect is not None:
                return redirect
        return send_blob(
            request,
            size=image.size,
            media_type=image.content_type,
            etag=f'"{image.sha256}"',  # strong: the bytes behind an id never change
            read=lambda start, end: rt.images.read(image, start, end),
            headers=headers,
        )
    rendition = public
    fmt = rendition.key.rsplit(".", 1)[-1]
    headers.update(image_headers(download_name(image, fmt)))
    return send_blob(
        request,
        size=rendition.size,
        media_type=rendition.media_type,
        etag=rendition.etag,
        read=lambda start, end: rt.renditions.read(rendition, start, end),
        headers=headers,
    )


async def _redirect(request: Request, image: Image, *, etag: str) -> Response | None:
    """With ``--blob-redirect`` on a store that presigns: a 302 to a short-lived URL of the
    original's bytes in the bucket (None otherwise). Only for a GET of bytes anyone may have:
    HEAD is answered here (it moves no bytes, and a presigned GET refuses HEAD); a Range GET is
    redirected too (the presigned URL honours Range); a matching If-None-Match still gets 304
    from ``send_blob``, which costs the client no second request."""
    rt = runtime(request)
    blobs = rt.images.blobs
    if not rt.settings.blob_redirect or not isinstance(blobs, Presigns):
        return None
    inm = request.headers.get("if-none-match")
    if inm is not None and etag_matches(inm, etag):
        return None
    # Signing is local, but the first call may resolve credentials: off the event loop.
    url = await to_thread.run_sync(blobs.presign, image.blob_key, REDIRECT_EXPIRES)
    return Response(status_code=302, headers={"Location": url, "Cache-Control": REDIRECT_CACHE})


router.add_api_route(
    ORIGINAL,
    get_original,
    methods=["HEAD"],
    summary="The original's headers only",
    response_class=Response,
    operation_id="head_original",
    responses={**BLOB_RESPONSES, **problems("head_original")},
)


@router.delete(
    "/v1/images/{image_id}",
    status_code=204,
    summary="Delete with the delete token, or a delete key of the owner",
    description="Send the delete token as 'Pixdrop-Delete-Token: <token>' (or 'Authorization: "
    "Pixdrop-Delete-Token <token>'), or an API key with scope delete that owns the image (or "
    "an admin key) as 'Authorization: Bearer <key>'. 'Authorization: Bearer <delete token>' "
    "still works, answered with a Deprecation header.",
    responses=problems("delete_image"),
)
async def delete_image(request: Request, image_id: str) -> Response:
    images = runtime(request).images
    principal = principal_of(request)
    token, deprecated = delete_token(request)
    headers = _deprecation({}) if deprecated else {}
    if token is None and principal.kind != "anonymous":  # a key, or a grant (never allowed)
        image = await images.get(image_id)
        if not can_manage(principal, image, "delete"):
            raise Forbidden(
                "Only the owner's key with scope delete (or an admin key) deletes this image "
                "without its delete token."
            )
        await images.remove(image)
        return Response(status_code=204, headers=headers)
    await images.delete(image_id, token)
    return Response(status_code=204, headers=headers)


@router.get(
    "/v1/images/{image_id}/signed-url",
    summary="A URL that reads a private image without a key, until it expires",
    dependencies=[Depends(require("read"))],
    response_model=SignedUrlOut,
    responses=problems("signed_url"),
)
async def signed_url(
    request: Request,
    image_id: str,
    expires_in: Annotated[int, Query(ge=1, le=MAX_EXPIRES_IN)] = 3600,
) -> JSONResponse:
    rt = runtime(request)
    image = await rt.images.get(image_id)
    if not (can_manage(principal_of(request), image, "read") or is_uploader(request, image)):
        raise Forbidden(
            "Only the owner's read key, an admin key, or the image's delete token "
            "('Pixdrop-Delete-Token: <token>') signs URLs of this image."
        )
    expires = int(time.time()) + expires_in
    query = urlencode({"expires": expires, "sig": rt.signer.sign(image.id, expires)})
    url = f"{base_url(request)}/v1/images/{image.id}/original?{query}"
    return JSONResponse(
        {"url": url, "query": query, "expires_at": expires},
        headers={"Cache-Control": "no-store"},
    )
