"""The native chunked protocol: create, send chunks in any order, ask what is missing, complete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from pixdrop.auth.middleware import mark_private
from pixdrop.http import wire
from pixdrop.http.direct import opener_of
from pixdrop.http.errors import invalid_request
from pixdrop.http.problems import problems
from pixdrop.http.schemas import ChunkOut, ImageOut, UploadOut
from pixdrop.http.state import base_url, runtime
from pixdrop.http.views import stored_image_json, upload_json
from pixdrop.http.wire import RAW_BODY, content_length, expected_digests, read_json_body

router = APIRouter(tags=["uploads"])


def _integral(value: object) -> object:
    """JSON has one kind of number: ``100.0`` is the integer 100 (as JSON Schema, and the
    published description, say), while ``100.5``, ``"100"`` and ``true`` stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: A positive JSON integer, strictly: see ``_integral``.
Count = Annotated[int, Field(ge=1), BeforeValidator(_integral)]


class CreateUpload(BaseModel):
    """Body of ``POST /v1/uploads``."""

    # Strict: "100" or true for a size is a client bug worth reporting, not coercing.
    model_config = ConfigDict(extra="forbid", strict=True)

    size: Count = Field(description="Total size of the image in bytes.")
    chunk_size: Count | None = Field(None, description="Bytes per chunk (default 8 MiB).")
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
    "/v1/uploads",
    status_code=201,
    summary="Start a chunked upload",
    openapi_extra=CREATE_BODY,
    response_model=UploadOut,
    responses=problems("create_upload"),
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
        opener=await opener_of(request),
    )
    return JSONResponse(
        upload_json(status, base_url(request)),
        status_code=201,
        headers={"Location": f"/v1/uploads/{status.upload.id}"},
    )


@router.get(
    "/v1/uploads/{upload_id}",
    summary="Which chunks are received and missing",
    response_model=UploadOut,
    responses=problems("get_upload"),
)
async def get_upload(request: Request, upload_id: str) -> JSONResponse:
    status = await runtime(request).uploads.status(upload_id)
    return JSONResponse(
        upload_json(status, base_url(request)), headers={"Cache-Control": "no-store"}
    )


@router.put(
    "/v1/uploads/{upload_id}/chunks/{index}",
    summary="Send one chunk (any order, in parallel)",
    openapi_extra=RAW_BODY,
    response_model=ChunkOut,
    responses={
        201: {"description": "Chunk stored", "model": ChunkOut},
        200: {"description": "Identical re-send"},
        **problems("put_chunk"),
    },
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


@router.post(
    "/v1/uploads/{upload_id}/complete",
    summary="Assemble, verify and store the image",
    response_model=ImageOut,
    responses={
        201: {"description": "Stored (with its delete token)", "model": ImageOut},
        200: {"description": "Completed before (no delete token)"},
        **problems("complete_upload"),
    },
)
async def complete_upload(request: Request, upload_id: str) -> JSONResponse:
    stored = await runtime(request).uploads.complete(upload_id)
    return JSONResponse(
        stored_image_json(stored, base_url(request)),
        status_code=201 if stored.delete_token else 200,
        headers={"Location": f"/v1/images/{stored.image.id}"},
    )


@router.delete(
    "/v1/uploads/{upload_id}",
    status_code=204,
    summary="Abort and free the space",
    responses=problems("delete_upload"),
)
async def delete_upload(request: Request, upload_id: str) -> Response:
    await runtime(request).uploads.abort(upload_id)
    return Response(status_code=204)
