"""``/v1/keys``: the admin API for API keys (scope admin), the same as ``pixdrop keys``.

``POST`` creates a key and answers its secret, once; ``GET`` lists keys (never a secret);
``DELETE /v1/keys/{id}`` revokes one, effective on the next request on every node.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

from pixdrop.auth.keys import issue_key, key_json, parse_duration, parse_rate, parse_scopes
from pixdrop.auth.scopes import require
from pixdrop.config import Size
from pixdrop.errors import NotFound
from pixdrop.http.errors import invalid_request
from pixdrop.http.problems import problems
from pixdrop.http.schemas import CREATE_KEY_BODY, IssuedKeyOut, KeyList
from pixdrop.http.state import runtime
from pixdrop.http.wire import read_json_body
from pixdrop.models import is_valid_id, utcnow

router = APIRouter(tags=["keys"], dependencies=[Depends(require("admin"))])

#: Within what the key's columns hold (``api_keys.quota`` BIGINT, ``max_open_uploads``
#: INTEGER): more is refused (400), not an overflow in the database (500). 8 PiB, the largest
#: integer a double holds exactly (JSON clients, and validators, may read numbers as doubles).
MAX_QUOTA = 2**53
MAX_OPEN_UPLOADS = 2**31 - 1


def _integral(value: object) -> object:
    """``5.0`` is the integer 5 in JSON (as ``direct._integral``); ``5.5``, ``"5"``, ``true``
    stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _not_bool(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a quota is a number of bytes, or a size such as 10GiB")
    return value


Quota = Annotated[Size, BeforeValidator(_not_bool), Field(le=MAX_QUOTA)]
OpenUploads = Annotated[
    int, Field(ge=1, le=MAX_OPEN_UPLOADS, strict=True), BeforeValidator(_integral)
]


class CreateKey(BaseModel):
    """Body of ``POST /v1/keys``: the options of ``pixdrop keys create``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(min_length=1, description="Of upload, read, delete, admin.")
    quota: Quota | None = Field(None, description="Bytes the key may keep (10GiB).")
    max_open_uploads: OpenUploads | None = None
    rate: str | None = Field(None, description="Requests per period, e.g. 100/minute.")
    expires: str | None = Field(None, description="Lifetime, e.g. 90d, 12h.")

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        return list(parse_scopes(value))

    @field_validator("rate")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        return parse_rate(value) if value else None

    @field_validator("expires")
    @classmethod
    def _expires(cls, value: str | None) -> str | None:
        if value:
            try:
                utcnow() + parse_duration(value)
            except OverflowError:
                raise ValueError(f"{value!r} is too long a lifetime") from None
        return value


def _parse(raw: bytes) -> CreateKey:
    try:
        return CreateKey.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None


@router.post(
    "/v1/keys",
    status_code=201,
    summary="Create an API key (its secret, once)",
    openapi_extra=CREATE_KEY_BODY,
    response_model=IssuedKeyOut,
    responses=problems("create_key"),
)
async def create_key(request: Request) -> JSONResponse:
    spec = _parse(await read_json_body(request))
    issued = await issue_key(
        runtime(request).meta,
        name=spec.name,
        scopes=spec.scopes,
        quota=int(spec.quota) if spec.quota else None,
        max_open_uploads=spec.max_open_uploads,
        rate=spec.rate,
        expires_in=parse_duration(spec.expires) if spec.expires else None,
    )
    body: dict[str, Any] = {**key_json(issued.key), "secret": issued.secret}
    return JSONResponse(
        body,
        status_code=201,
        headers={"Location": f"/v1/keys/{issued.key.id}", "Cache-Control": "no-store"},
    )


@router.get(
    "/v1/keys",
    summary="List API keys (no secrets)",
    response_model=KeyList,
    responses=problems("list_keys"),
)
async def list_keys(request: Request) -> JSONResponse:
    keys = await runtime(request).meta.list_keys()
    return JSONResponse(
        {"keys": [key_json(key) for key in keys]}, headers={"Cache-Control": "no-store"}
    )


@router.delete(
    "/v1/keys/{key_id}",
    status_code=204,
    summary="Revoke an API key",
    responses=problems("revoke_key"),
)
async def revoke_key(request: Request, key_id: str) -> Response:
    meta = runtime(request).meta
    if not is_valid_id(key_id) or await meta.get_key(key_id) is None:
        raise NotFound(f"There is no key {key_id!r}.")
    await meta.revoke_key(key_id, utcnow())
    return Response(status_code=204)
