"""One-request uploads: ``POST /v1/images`` with the image as the body or a multipart field."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pixdrop.auth.middleware import mark_private
from pixdrop.errors import PayloadTooLarge
from pixdrop.http import wire
from pixdrop.http.direct import opener_of
from pixdrop.http.multipart import MultipartFile
from pixdrop.http.problems import problems
from pixdrop.http.schemas import ImageOut
from pixdrop.http.state import base_url, runtime
from pixdrop.http.views import stored_image_json
from pixdrop.http.wire import BINARY, content_length, expected_digests
from pixdrop.protocols.fields import checked_filename

router = APIRouter(tags=["images"])

ONE_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image's bytes (any Content-Type), or multipart/form-data with the "
        "image in the field 'file'.",
        "content": {
            "application/octet-stream": BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                    "required": ["file"],
                }
            },
        },
    }
}


@router.post(
    "/v1/images",
    status_code=201,
    summary="Upload an image in one request",
    openapi_extra=ONE_REQUEST_BODY,
    response_model=ImageOut,
    responses=problems("create_image"),
)
async def create_image(
    request: Request, filename: str | None = None, private: bool = False
) -> JSONResponse:
    """Store the request body as an image. ``Content-Digest``/``Repr-Digest`` are verified.
    ``?private=true``: readable only by the owner's keys or signed URLs."""
    rt = runtime(request)
    opener = await opener_of(request)
    if private:
        mark_private()
    limit = rt.settings.max_request_size
    length = content_length(request)
    if length is not None and length > limit:
        # Refused from the headers alone: not one byte of the body is read.
        raise PayloadTooLarge(
            f"The body is {length} bytes; one request may carry at most {limit}. "
            "Use a chunked upload (POST /v1/uploads) for large images.",
            limit="max_request_size",
            value=length,
            allowed=limit,
        )
    expected = expected_digests(request)
    content_type = request.headers.get("content-type", "")
    body: AsyncIterator[bytes] = wire.body(request)
    if content_type.lower().startswith("multipart/form-data"):
        form = MultipartFile(body, content_type)
        await form.open()
        body, filename = form.stream(), form.filename or filename
    # Cleaned and bounded before the body is read (stored with the image; docs/security.md).
    filename = checked_filename(filename)
    stored = await rt.oneshot.put_single(body, expected=expected, filename=filename, opener=opener)
    return JSONResponse(
        stored_image_json(stored, base_url(request)),
        status_code=201,
        headers={"Location": f"/v1/images/{stored.image.id}"},
    )
