"""``GET /v1/limits``: the limits a client can check before it sends anything."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from pixdrop.auth.scopes import keys_required
from pixdrop.http.problems import problems
from pixdrop.http.schemas import LimitsOut
from pixdrop.http.state import runtime

router = APIRouter(tags=["operations"])


@router.get(
    "/v1/limits",
    summary="Size limits and accepted formats",
    response_model=LimitsOut,
    responses=problems("get_limits"),
)
async def get_limits(request: Request) -> JSONResponse:
    rt = runtime(request)
    s = rt.settings
    prober = rt.completion.prober
    return JSONResponse(
        {
            "max_request_size": int(s.max_request_size),
            "max_image_size": int(s.max_image_size),
            "default_chunk_size": int(s.default_chunk_size),
            "min_chunk_size": rt.uploads.min_chunk_size,
            "max_chunk_size": int(s.max_chunk_size),
            "max_chunks": s.max_chunks,
            "upload_ttl": s.upload_ttl,
            "formats": list(prober.allowed_formats),
            "content_types": list(prober.content_types.values()),
            "max_width": s.max_width,
            "max_height": s.max_height,
            "max_pixels": s.max_pixels,
            "max_frames": s.max_frames,
            "decode_timeout": s.decode_timeout,
            "variant_presets": rt.renditions.presets,
            "variant_sizes": list(rt.renditions.sizes),
            "variant_formats": ["auto", *rt.renditions.codec.encodes],
        },
        # Behind --auth keys the answer is for key holders: no shared cache, and none that
        # would answer a request without the key.
        headers=(
            {"Cache-Control": "private, max-age=60", "Vary": "Authorization"}
            if keys_required(request)
            else {"Cache-Control": "public, max-age=60"}
        ),
    )
