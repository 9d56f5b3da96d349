"""The native chunked protocol: create, send chunks in any order, ask what is missing, complete."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pixdrop.auth.middleware import mark_private
from pixdrop.http import wire
from pixdrop.http.errors import invalid_request
from pixdrop.http.state import base_url, runtime
from pixdrop.http.views import stored_image_json, upload_json
from pixdrop.http.wire import RAW_BODY, content_length, expected_digests, read_json_body

router = APIRouter(tags=["uploads"])


class CreateUpload(BaseModel):
    """Body of ``POST /v1/uploads``."""

    # Strict: "100" or true for a size is a client bug worth reporting, not coercing.
    model_config = ConfigDict(extra="forbid", strict=True)

    size: int = Field(ge=1, description="Total size of the image in bytes.")
    chunk_size: int | None = Field(None, ge=1, description="Bytes per chunk (default 8 MiB).")
    sha256: str | None = Field(
        None, pattern=r"^[0-9a-fA-F]{64}$", description="Hex sha256 of the whole file."
    )
    filename: str | None = Field(None, max_length=1024)
    content_type: str | None = Field(None, max_length=255)
    private: bool = Field(
        False, description="The image is readable only by the owner's keys or signed URLs."
    )


def _parse_create(raw: bytes) -> CreateUpload:
    try:
        return CreateUpload.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None


CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": CreateUpload.model_json_schema()}},
    }
}


@router.post(
    "/v1/uploads", status_code=201, summary="Start a chunked upload", openapi_extra=CREATE_BODY
)
async def create_upload(request: Request) -> JSONResponse:
    # The body is read by hand, not by FastAPI, so that it is bounded (MAX_JSON_BODY).
    spec = _parse_create(await read_json_body(request))
    rt = runtime(request)
    if spec.private:
        mark_private()
    status = await rt.uploads.create(
        size=spec.size,
        chunk_size=spec.chunk_size,
        sha256=spec.sha256,
        filename=spec.filename,
        content_type=spec.content_type,
    )
    return JSONResponse(
        upload_json(status, base_url(request)),
        status_code=201,
        headers={"Location": f"/v1/uploads/{status.upload.id}"},
    )


@router.get("/v1/uploads/{upload_id}", summary="Which chunks are received and missing")
async def get_upload(request: Request, upload_id: str) -> JSONResponse:
    status = await runtime(request).uploads.status(upload_id)
    return JSONResponse(
        upload_json(status, base_url(request)), headers={"Cache-Control": "no-store"}
    )


@router.put(
    "/v1/uploads/{upload_id}/chunks/{index}",
    summary="Send one chunk (any order, in parallel)",
    openapi_extra=RAW_BODY,
    responses={201: {"description": "Chunk stored"}, 200: {"description": "Identical re-send"}},
)
async def put_chunk(request: Request, upload_id: str, index: str) -> JSONResponse:
    receipt = await runtime(request).uploads.put_chunk(
        upload_id,
        index,
        wire.body(request),
        content_length=content_length(request),
        expected=expected_digests(request),
    )
    part = receipt.part
    return JSONResponse(
        {
            "upload_id": receipt.upload_id,
            "index": receipt.index,
            "offset": part.start,
            "size": part.length,
            "sha256": part.sha256,
        },
        status_code=201 if receipt.created else 200,
    )


@router.post("/v1/uploads/{upload_id}/complete", summary="Assemble, verify and store the image")
async def complete_upload(request: Request, upload_id: str) -> JSONResponse:
    stored = await runtime(request).uploads.complete(upload_id)
    return JSONResponse(
        stored_image_json(stored, base_url(request)),
        status_code=201 if stored.delete_token else 200,
        headers={"Location": f"/v1/images/{stored.image.id}"},
    )


@router.delete("/v1/uploads/{upload_id}", status_code=204, summary="Abort and free the space")
async def delete_upload(request: Request, upload_id: str) -> Response:
    await runtime(request).uploads.abort(upload_id)
    return Response(status_code=204)
