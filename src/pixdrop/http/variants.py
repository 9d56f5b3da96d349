"""Variants (``GET /v1/images/{id}/{preset}``) and the blob check (``/v1/blobs/sha256/{hex}``)."""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from pixdrop.auth.scopes import require
from pixdrop.errors import NotFound
from pixdrop.http.problems import problems
from pixdrop.http.schemas import BLOB_RESPONSES, BlobOut
from pixdrop.http.serve import (
    IMMUTABLE,
    PRIVATE_IMAGE,
    download_name,
    image_headers,
    readable_image,
    send_blob,
)
from pixdrop.http.state import runtime
from pixdrop.services.renditions import VariantRequest

router = APIRouter(tags=["images"])

VARIANT = "/v1/images/{image_id}/{variant}"
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


@router.get(
    VARIANT,
    summary="A resized, re-encoded variant of the image",
    description="`variant` names a preset (thumb, small, medium, large by default). "
    "`w` and `h` (from the published list of sizes), `fit` (contain or cover), "
    "`format` (auto, webp, avif, jpeg, png) and `q` (1-100) adjust it. The image is turned "
    "upright and stripped of metadata; it is never enlarged.",
    response_class=Response,
    operation_id="get_variant",
    responses={**BLOB_RESPONSES, **problems("get_variant")},
)
async def get_variant(
    request: Request,
    image_id: str,
    variant: str,
    w: str | None = None,
    h: str | None = None,
    fit: str | None = None,
    format: str | None = None,
    q: str | None = None,
) -> Response:
    rt = runtime(request)
    image = await readable_image(request, image_id)
    wanted = VariantRequest(variant, w, h, fit, format, q, request.headers.get("accept", ""))
    spec, negotiated = rt.renditions.resolve(image, wanted)
    rendition = await rt.renditions.variant(image, spec, negotiated)
    headers = image_headers(download_name(image, spec.format, f"-{variant}"))
    headers["Cache-Control"] = PRIVATE_IMAGE if image.private else IMMUTABLE
    vary = ["Accept"] if negotiated else []
    if image.private:
        vary.append("Authorization")
    if vary:
        headers["Vary"] = ", ".join(vary)
    return send_blob(
        request,
        size=rendition.size,
        media_type=rendition.media_type,
        etag=rendition.etag,
        read=lambda start, end: rt.renditions.read(rendition, start, end),
        headers=headers,
    )


router.add_api_route(
    VARIANT,
    get_variant,
    methods=["HEAD"],
    summary="A variant's headers only",
    response_class=Response,
    operation_id="head_variant",
    responses={**BLOB_RESPONSES, **problems("head_variant")},
)

BLOB = "/v1/blobs/sha256/{digest}"


@router.get(
    BLOB,
    summary="Whether bytes with this sha256 are stored already",
    response_model=BlobOut,
    responses=problems("get_blob"),
    dependencies=[Depends(require("upload"))],
)
async def get_blob(request: Request, digest: str) -> JSONResponse:
    """``200 {"sha256", "size"}`` if an image with exactly these bytes is stored, else 404.

    The answer says only that the bytes exist: it names no image, and the digest gives no
    access to them (an upload of the same bytes still gets its own id and delete token).
    """
    size = None
    if _SHA256.fullmatch(digest):
        digest = digest.lower()
        size = await runtime(request).images.blob_size(digest)
    if size is None:
        raise NotFound(f"No stored bytes have sha256 {digest}; upload them.")
    return JSONResponse({"sha256": digest, "size": size}, headers={"Cache-Control": "no-cache"})


router.add_api_route(
    BLOB,
    get_blob,
    methods=["HEAD"],
    summary="Whether bytes with this sha256 are stored already (headers only)",
    dependencies=[Depends(require("upload"))],
    operation_id="head_blob",
    response_model=BlobOut,
    responses=problems("head_blob"),
)
