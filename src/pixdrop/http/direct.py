"""Direct uploads: one-time grants a site's backend issues so a browser can upload one image.

* ``POST /v1/direct-uploads`` issues a grant (``services/grants.py``): its id, its token
  (``pxg_…``, shown once) and its upload URL;
* ``POST /v1/direct-uploads/{token}/image`` (the upload URL) takes the image as a plain
  ``multipart/form-data`` POST with no header at all (a bare HTML form), or as the raw body;
* the token also works as ``Authorization: Bearer pxg_…`` on every other way in
  (``POST /v1/images``, ``/v1/uploads``, tus and the IETF draft under ``/files/``):
  ``opener_of`` hands the grant to the service that opens the upload, which enforces it;
* ``GET /v1/direct-uploads/{id}`` tells the issuer whether the image arrived, and which.

Who may: issuing needs scope ``upload`` in ``--auth keys`` (anyone with ``--auth none``), and
never a grant (403); a grant's status is its issuing key's (or an admin key's: another key gets
404, a grant 403). The upload URL needs no credential in either mode: the token in its path is
one. What a grant makes is its issuer's (quota, listing) and private if the grant says so,
whether the token comes in the path (``_attributed``) or as a bearer token (the
authentication layer). The grant's ``metadata`` is the issuer's own note: kept with the grant
and handed back with its status, never copied onto the image nor shown to the uploader.

The upload URL is a path of its own (``/image`` after the token), not the status URL's with a
token in the id's place: a URL a client is handed answers ``GET`` if its ``Allow`` says so, and
``/openapi.json`` describes each path's methods once.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from pixdrop.auth.grants import GrantResolver
from pixdrop.auth.principal import GRANT_PREFIX, principal_of
from pixdrop.auth.scopes import ANY, keys_required, require
from pixdrop.errors import Forbidden, GrantNotFound, ImageNotFound, Unauthorized
from pixdrop.http import wire
from pixdrop.http.errors import invalid_request
from pixdrop.http.multipart import MultipartFile
from pixdrop.http.problems import problems
from pixdrop.http.ratelimit import client_address
from pixdrop.http.schemas import GrantStatus, ImageOut, IssuedGrantOut
from pixdrop.http.state import base_url, runtime
from pixdrop.http.views import image_json, stored_image_json
from pixdrop.http.wire import BINARY, expected_digests, read_json_body
from pixdrop.models import ATTRIBUTION, Attribution, Grant, Opener
from pixdrop.protocols.fields import checked_filename
from pixdrop.services.grants import MAX_GRANT_TTL, IssuedGrant

__all__ = ["UPLOAD_URL_PREFIX", "grant_of", "opener_of", "router"]

router = APIRouter(tags=["direct uploads"])

#: Upload URLs (``/v1/direct-uploads/pxg_…/image``) start with this. Their credential is the
#: grant token in the path, so the authentication layer (``--auth keys``) must let a request
#: to one through without a header.
UPLOAD_URL_PREFIX = "/v1/direct-uploads/" + GRANT_PREFIX


def _integral(value: object) -> object:
    """``600.0`` is the integer 600 in JSON (and in the published JSON Schema), as for
    ``POST /v1/uploads`` (``chunks._integral``); ``600.5``, ``"600"`` and ``true`` stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: A JSON integer, strictly (see ``_integral``): a size, a number of seconds.
Bytes = Annotated[int, Field(ge=1), BeforeValidator(_integral)]
Seconds = Annotated[int, Field(ge=1, le=MAX_GRANT_TTL), BeforeValidator(_integral)]


class CreateGrant(BaseModel):
    """Body of ``POST /v1/direct-uploads`` (every field optional)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    max_size: Bytes | None = Field(None, description="Largest image accepted, in bytes.")
    formats: list[str] | None = Field(
        None, min_length=1, max_length=16, description="Formats accepted (jpeg, png, ...)."
    )
    expires_in: Seconds | None = Field(
        None, description="Seconds the grant is valid (default 3600)."
    )
    metadata: dict[str, Any] | None = Field(
        None, description="Any JSON object, handed back with the grant's status."
    )
    private: bool = Field(False, description="The image is private (needs a read key).")


CREATE_BODY = {
    "requestBody": {
        "required": False,
        "content": {"application/json": {"schema": CreateGrant.model_json_schema()}},
    }
}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "description": "The image's bytes (any Content-Type), or multipart/form-data with the "
        "image in the field 'file' (what a bare HTML form sends).",
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


def _bearer(request: Request) -> str | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


async def grant_of(request: Request) -> Grant | None:
    """The direct-upload grant *request* presents: the authentication layer's grant
    principal, else a ``pxg_`` bearer token (401 if it is no grant's)."""
    principal = principal_of(request)
    if principal.kind == "grant":
        return principal.grant
    token = _bearer(request)
    if token is None or not token.startswith(GRANT_PREFIX):
        return None
    resolved = await GrantResolver(runtime(request).direct).resolve(token)
    if resolved is None:
        raise Unauthorized("The bearer token is not a valid direct-upload grant.")
    return resolved.grant


async def opener_of(request: Request, grant: Grant | None = None) -> Opener:
    """Who opens an upload with *request*: its client address and its grant."""
    settings = runtime(request).settings
    address = client_address(request.scope, trust_forwarded=settings.trust_forwarded)
    counted = principal_of(request).kind != "key"
    return Opener(client=address, grant=grant or await grant_of(request), counted=counted)


def _grant_json(request: Request, grant: Grant) -> dict[str, Any]:
    base = base_url(request)
    return {
        "id": grant.id,
        "status_url": f"{base}/v1/direct-uploads/{grant.id}",
        "created_at": grant.created_at.isoformat(),
        "expires_at": grant.expires_at.isoformat(),
        "max_size": grant.max_size,
        "formats": list(grant.formats) if grant.formats is not None else None,
        "private": grant.private,
        "metadata": None if grant.metadata is None else json.loads(grant.metadata),
    }


def _issued_json(request: Request, issued: IssuedGrant) -> dict[str, Any]:
    body = _grant_json(request, issued.grant)
    body["token"] = issued.token
    body["upload_url"] = f"{base_url(request)}/v1/direct-uploads/{issued.token}/image"
    return body


@router.post(
    "/v1/direct-uploads",
    status_code=201,
    summary="Issue a one-time direct-upload grant (for a browser)",
    dependencies=[Depends(require("upload"))],  # docs/auth.md: scope upload
    openapi_extra=CREATE_BODY,
    response_model=IssuedGrantOut,
    responses=problems("create_grant"),
)
async def create_grant(request: Request) -> JSONResponse:
    principal = principal_of(request)
    if principal.kind == "grant" or (_bearer(request) or "").startswith(GRANT_PREFIX):
        raise Forbidden("A direct-upload grant cannot issue grants; use an API key.")
    await require("upload")(request)
    raw = await read_json_body(request)
    try:
        spec = CreateGrant.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise invalid_request(exc.errors()) from None
    issued = await runtime(request).direct.issue(
        owner=principal.owner,
        max_size=spec.max_size,
        formats=spec.formats,
        expires_in=spec.expires_in,
        metadata=spec.metadata,
        private=spec.private,
    )
    return JSONResponse(
        _issued_json(request, issued),
        status_code=201,
        headers={"Location": f"/v1/direct-uploads/{issued.grant.id}", "Cache-Control": "no-store"},
    )


@router.get(
    "/v1/direct-uploads/{grant_id}",
    summary="Whether a grant's image has arrived",
    response_model=GrantStatus,
    responses=problems("get_grant"),
)
async def get_grant(request: Request, grant_id: str) -> JSONResponse:
    rt = runtime(request)
    principal = principal_of(request)
    if principal.kind == "grant":
        raise Forbidden(
            "A direct-upload grant cannot read grants' status; the key that issued it can."
        )
    if keys_required(request):
        await require(ANY)(request)
    grant = await rt.direct.get(grant_id)
    if principal.kind == "key" and grant.owner != principal.id and not principal.allows("admin"):
        # Another key's grant: as if there were none (its id says nothing to this key).
        raise GrantNotFound(f"There is no direct-upload grant {grant_id!r}.")
    body = _grant_json(request, grant)
    image = None
    if grant.image_id is not None:
        try:
            image = image_json(await rt.meta.get_image(grant.image_id), base_url(request))
        except ImageNotFound:  # made, then deleted
            image = None
    body.update(
        used=grant.image_id is not None,
        expired=grant.expires_at <= rt.lifecycle.clock(),
        image_id=grant.image_id,
        image=image,
    )
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


@router.post(
    "/v1/direct-uploads/{token}/image",
    status_code=201,
    summary="Upload the grant's one image (a plain multipart/form-data POST works)",
    openapi_extra=UPLOAD_BODY,
    response_model=ImageOut,
    responses=problems("upload_with_grant"),
)
async def upload_with_grant(
    request: Request, token: str, filename: str | None = None
) -> JSONResponse:
    rt = runtime(request)
    grant = await rt.direct.redeem(token)
    with _attributed(grant):
        return await _upload(request, grant, filename)


@contextmanager
def _attributed(grant: Grant) -> Iterator[None]:
    """What the request creates is the grant's issuer's, private if the grant says so (or
    the request asked, ``Pixdrop-Private``), whatever credential came with it."""
    private = grant.private or ATTRIBUTION.get().private
    reset = ATTRIBUTION.set(Attribution(owner=grant.owner, private=private))
    try:
        yield
    finally:
        ATTRIBUTION.reset(reset)


async def _upload(request: Request, grant: Grant, filename: str | None) -> JSONResponse:
    rt = runtime(request)
    opener = await opener_of(request, grant)
    content_type = request.headers.get("content-type", "")
    body: AsyncIterator[bytes] = wire.body(request)
    if content_type.lower().startswith("multipart/form-data"):
        form = MultipartFile(body, content_type)
        await form.open()
        body, filename = form.stream(), form.filename or filename
    stored = await rt.oneshot.put_single(
        body,
        expected=expected_digests(request),
        filename=checked_filename(filename),
        opener=opener,
    )
    return JSONResponse(
        stored_image_json(stored, base_url(request)),
        status_code=201,
        headers={"Location": f"/v1/images/{stored.image.id}"},
    )
