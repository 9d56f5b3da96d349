"""Serving images: metadata, original bytes (ETag, 304, Range) and deletion."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from pixdrop.http.state import base_url, runtime
from pixdrop.http.views import image_json
from pixdrop.models import Image
from pixdrop.protocols.http_range import etag_matches, parse_range

router = APIRouter(tags=["images"])

IMMUTABLE = "public, max-age=31536000, immutable"


def _etag(image: Image) -> str:
    # A strong validator: the bytes behind an image id never change, and the sha256 names them.
    return f'"{image.sha256}"'


@router.get("/v1/images/{image_id}", summary="An image's metadata")
async def get_image(request: Request, image_id: str) -> JSONResponse:
    image = await runtime(request).images.get(image_id)
    return JSONResponse(image_json(image, base_url(request)))


ORIGINAL = "/v1/images/{image_id}/original"


@router.get(
    ORIGINAL,
    summary="The original bytes, with ETag, conditional and Range support",
    response_class=Response,
    operation_id="get_original",
)
async def get_original(request: Request, image_id: str) -> Response:
    images = runtime(request).images
    image = await images.get(image_id)
    etag = _etag(image)
    headers = {
        "ETag": etag,
        "Cache-Control": IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
        "Accept-Ranges": "bytes",
    }
    inm = request.headers.get("if-none-match")
    if inm is not None and etag_matches(inm, etag):
        return Response(status_code=304, headers=headers)
    start, end, status = 0, image.size, 200
    range_header = request.headers.get("range")
    if_range = request.headers.get("if-range")
    # If-Range (RFC 9110 §13.1.5): honour Range only while the validator still matches.
    if range_header and (if_range is None or if_range.strip() == etag):
        wanted = parse_range(range_header, image.size)
        if wanted is not None:
            (start, end), status = wanted, 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{image.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type=image.content_type)
    return StreamingResponse(
        images.read(image, start, end),
        status_code=status,
        headers=headers,
        media_type=image.content_type,
    )


router.add_api_route(
    ORIGINAL,
    get_original,
    methods=["HEAD"],
    summary="The original's headers only",
    response_class=Response,
    operation_id="head_original",
)


@router.delete("/v1/images/{image_id}", status_code=204, summary="Delete with the delete token")
async def delete_image(request: Request, image_id: str) -> Response:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    await runtime(request).images.delete(
        image_id, token.strip() if scheme.lower() == "bearer" else None
    )
    return Response(status_code=204)
