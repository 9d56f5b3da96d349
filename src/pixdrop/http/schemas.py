"""The JSON bodies pixdrop answers, as pydantic models: what ``/openapi.json`` describes.

The handlers build their bodies with ``http/views.py`` and return them as they are; these
models are the description (``response_model=``), checked against real answers by
``tests/http/test_openapi.py`` and by schemathesis (``tests/http/test_schemathesis.py``).
A field added to a view must be added here, or those tests fail.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pixdrop.webhooks.events import EVENT_TYPES
from pixdrop.webhooks.outbox import SECRET_PATTERN, URL_PATTERN

SHA256 = r"^[0-9a-f]{64}$"
ID = r"^[A-Za-z0-9_-]{22}$"
#: ``pxg_``, the grant's id, 43 characters of secret (``services/grants.py``).
GRANT_TOKEN = r"^pxg_[A-Za-z0-9_-]{65}$"  # noqa: S105 (a pattern, not a secret)
#: ``pxk_``, the key's id, ``_``, 43 characters of secret (``auth/keys.py``).
KEY_SECRET = r"^pxk_[A-Za-z0-9_-]{22}_[A-Za-z0-9_-]{43}$"  # noqa: S105 (a pattern)


class Problem(BaseModel):
    """An RFC 9457 problem: the standard members, then the type's own extension members
    (``missing``, ``limit``, ``allowed``, ``index``, ...: see docs/errors.md)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="The kind of problem: compare as an exact string.")
    title: str = Field(description="Fixed per type.")
    status: int = Field(ge=100, le=599, description="The response's status code.")
    detail: str = Field(description="For a person: what happened and what to do.")
    instance: str | None = Field(None, description="The request's path (absent on about:blank).")


class ImageOut(BaseModel):
    """A stored image (``GET /v1/images/{id}``); ``delete_token`` only in the answer that
    stored it."""

    id: str = Field(pattern=ID)
    image_url: str
    original_url: str
    url: str = Field(deprecated=True, description="Deprecated: original_url.")
    sha256: str = Field(pattern=SHA256)
    size: int = Field(ge=1)
    content_type: str
    format: str
    width: int = Field(ge=1)
    height: int = Field(ge=1)
    created_at: str = Field(description="ISO 8601, UTC.")
    filename: str | None
    frames: int = Field(ge=1)
    orientation: int = Field(ge=1, le=8, description="EXIF orientation (1: upright).")
    has_alpha: bool
    placeholder: str | None = Field(description="ThumbHash, base64.")
    delete_token: str | None = Field(
        None, description="Only when the image was stored by this request: keep it to delete."
    )


class UploadOut(BaseModel):
    """A native chunked upload and exactly which chunks are received and missing."""

    id: str = Field(pattern=ID)
    upload_url: str
    url: str = Field(deprecated=True, description="Deprecated: upload_url.")
    size: int = Field(ge=1)
    chunk_size: int = Field(ge=1)
    chunk_count: int = Field(ge=1)
    received: list[int]
    missing: list[int]
    state: Literal["receiving", "completing", "completed"]
    created_at: str
    expires_at: str
    sha256: str | None
    filename: str | None
    content_type: str | None
    image_id: str | None
    image_url: str | None
    original_url: str | None


class ChunkOut(BaseModel):
    """A stored chunk: where it lies in the image and its sha256."""

    upload_id: str = Field(pattern=ID)
    index: int = Field(ge=0)
    offset: int = Field(ge=0)
    size: int = Field(ge=1)
    sha256: str = Field(pattern=SHA256)


class ImagePage(BaseModel):
    """A page of ``GET /v1/images``: ``next_cursor`` is null on the last."""

    images: list[ImageOut]
    next_cursor: str | None


class BlobOut(BaseModel):
    """Bytes with this sha256 are stored (``GET /v1/blobs/sha256/{digest}``)."""

    sha256: str = Field(pattern=SHA256)
    size: int = Field(ge=1)


class LimitsOut(BaseModel):
    """``GET /v1/limits``: what a client can check before it sends anything."""

    max_request_size: int
    max_image_size: int
    default_chunk_size: int
    min_chunk_size: int
    max_chunk_size: int
    max_chunks: int
    upload_ttl: int
    formats: list[str]
    content_types: list[str]
    max_width: int
    max_height: int
    max_pixels: int
    max_frames: int
    decode_timeout: float
    variant_presets: dict[str, int]
    variant_sizes: list[int]
    variant_formats: list[str]


class Health(BaseModel):
    status: Literal["ok"]
    version: str


Check = Literal["ok", "down", "timeout"]


class Ready(BaseModel):
    """``GET /readyz``: whether the database and the blob store answer now (both absent
    while the server shuts down)."""

    status: Literal["ok", "unavailable", "shutting-down"]
    database: Check | None = None
    blob_store: Check | None = None


class GrantOut(BaseModel):
    """A direct-upload grant (``http/direct.py``), as ``GET /v1/direct-uploads/{grant}``
    and its issue show it."""

    id: str = Field(pattern=ID)
    status_url: str
    created_at: str = Field(description="ISO 8601, UTC.")
    expires_at: str = Field(description="ISO 8601, UTC: an upload must start before.")
    max_size: int | None = Field(ge=1)
    formats: list[str] | None
    private: bool
    metadata: dict[str, object] | None


class IssuedGrantOut(GrantOut):
    """``POST /v1/direct-uploads``: the new grant with its token, shown this once."""

    token: str = Field(pattern=GRANT_TOKEN)
    upload_url: str = Field(description="POST the image here (no header needed).")


class GrantStatus(GrantOut):
    """What became of a grant: used (its image, unless deleted since) or not, expired or not."""

    used: bool
    expired: bool
    image_id: str | None = Field(pattern=ID)
    image: ImageOut | None


def _header(text: str) -> dict[str, object]:
    return {"description": text, "schema": {"type": "string"}}


_BLOB_HEADERS = {
    "ETag": _header("Strong: the bytes behind a URL never change."),
    "Accept-Ranges": _header("bytes"),
    "Cache-Control": _header("How long the answer may be kept."),
    "Content-Disposition": _header("inline, with a safe file name."),
}
_BYTES = {"*/*": {"schema": {"type": "string", "format": "binary"}}}

#: The successes of a GET of image bytes (``serve.send_blob``): whole, one range, unchanged.
BLOB_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"description": "The bytes", "headers": _BLOB_HEADERS, "content": _BYTES},
    206: {
        "description": "One range of the bytes (Range, If-Range)",
        "headers": {**_BLOB_HEADERS, "Content-Range": _header("bytes START-END/SIZE")},
        "content": _BYTES,
    },
    304: {"description": "Not modified (If-None-Match)", "headers": _BLOB_HEADERS},
}
#: ``--blob-redirect`` on an S3 store: a GET of an original may be sent to the bucket.
REDIRECT_RESPONSE: dict[int | str, dict[str, object]] = {
    302: {
        "description": "With blob_redirect: a short-lived presigned URL of the bytes",
        "headers": {"Location": _header("The presigned URL.")},
    }
}


#: What ``POST /v1/keys`` takes, as the published schema states it (``http/keys.py:
#: CreateKey`` reads it): a scope of ``auth.SCOPES``, a rate and a lifetime of the forms
#: ``auth/keys.py`` parses (any case; empty: none), a quota in bytes or with a unit.
_RATE = (
    r"^$|^\s*0*[1-9][0-9]{0,8}\s*/\s*"
    r"([sS][eE][cC][oO][nN][dD]|[mM][iI][nN][uU][tT][eE]|[hH][oO][uU][rR]|[dD][aA][yY])\s*$"
)
_DURATION = r"^$|^\s*0*[1-9][0-9]{0,4}\s*[smhdwSMHDW]\s*$"
#: A size of at least one byte, and at most ``MAX_QUOTA`` (2**53): up to 999999 GiB, 999 TiB.
_SIZE = (
    r"^\s*0*([1-9][0-9]{0,5}(\.[0-9]{1,6})?\s*(([kKmMgG][iI]?)?[bB])?"
    r"|[1-9][0-9]{0,2}(\.[0-9]{1,6})?\s*[tT][iI]?[bB])\s*$"
)


class CreateKeyIn(BaseModel):
    """Body of ``POST /v1/keys``: the options of ``pixdrop keys create``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    scopes: list[Literal["upload", "read", "delete", "admin"]] = Field(
        min_length=1, description="What the key may do (admin: everything)."
    )
    quota: int | str | None = Field(
        None, description="Bytes the key may keep: a count, or with a unit (10GiB)."
    )
    max_open_uploads: int | None = Field(None, ge=1, le=2**31 - 1)  # keys.MAX_OPEN_UPLOADS
    rate: str | None = Field(
        None, pattern=_RATE, description="Requests per second, minute, hour or day: 100/minute."
    )
    expires: str | None = Field(
        None, pattern=_DURATION, description="Lifetime: 90d, 12h, 30m, 2w, 45s."
    )


def _create_key_schema() -> dict[str, object]:
    schema = CreateKeyIn.model_json_schema()
    quota = schema["properties"]["quota"]
    quota["anyOf"] = [
        {"type": "integer", "minimum": 1, "maximum": 2**53},  # keys.MAX_QUOTA
        {"type": "string", "pattern": _SIZE},
        {"type": "null"},
    ]
    return schema


CREATE_KEY_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _create_key_schema()}},
    }
}


class KeyOut(BaseModel):
    """An API key as ``GET /v1/keys`` and ``pixdrop keys list`` show it: never its secret."""

    id: str = Field(pattern=ID)
    name: str
    scopes: list[Literal["upload", "read", "delete", "admin"]]
    created_at: str = Field(description="ISO 8601, UTC.")
    expires_at: str | None = Field(description="ISO 8601, UTC; null: never.")
    revoked_at: str | None = Field(description="ISO 8601, UTC; null: not revoked.")
    quota: int | None = Field(description="Bytes the key may keep; null: no cap.")
    max_open_uploads: int | None
    rate: str | None = Field(description="Its own rate limit; null: the server's.")
    used_bytes: int = Field(ge=0)
    open_uploads: int = Field(ge=0)


class IssuedKeyOut(KeyOut):
    """``POST /v1/keys``: the new key with its secret, shown this once."""

    secret: str = Field(pattern=KEY_SECRET, description="Send as 'Authorization: Bearer'.")


class KeyList(BaseModel):
    """``GET /v1/keys``: every key, revoked and expired ones included."""

    keys: list[KeyOut]


class SignedUrlOut(BaseModel):
    """``GET /v1/images/{id}/signed-url``: a URL of the original that needs no key."""

    url: str = Field(description="The original's URL with the signature.")
    query: str = Field(description="'expires=...&sig=...': add it to any of the image's URLs.")
    expires_at: int = Field(description="Unix time the signature stops working.")


#: What ``POST /v1/webhooks`` takes, as published (``http/webhooks.py: CreateWebhook`` reads
#: it; ``webhooks.outbox.new_endpoint`` checks it, the one check ``pixdrop webhooks add`` uses).
_EVENTS = [*EVENT_TYPES, "*"]


class CreateWebhookIn(BaseModel):
    """Body of ``POST /v1/webhooks``: the options of ``pixdrop webhooks add``."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=URL_PATTERN, description="Where events are POSTed: http(s).")
    events: list[str] = Field(
        min_length=1, description="Event types to send; '*' among them: all of them."
    )
    secret: str | None = Field(
        None,
        pattern=SECRET_PATTERN,
        description="The signing secret (whsec_...); absent or null: a new random one.",
    )


def _create_webhook_schema() -> dict[str, object]:
    schema = CreateWebhookIn.model_json_schema()
    schema["properties"]["events"]["items"] = {"type": "string", "enum": _EVENTS}
    return schema


CREATE_WEBHOOK_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _create_webhook_schema()}},
    }
}


class WebhookOut(BaseModel):
    """A webhook endpoint as ``GET /v1/webhooks`` and ``pixdrop webhooks list`` show it:
    never its secret."""

    id: str = Field(pattern=ID)
    url: str
    events: list[str] = Field(description="The event types it is sent.")
    created_at: str = Field(description="ISO 8601, UTC.")


class IssuedWebhookOut(WebhookOut):
    """``POST /v1/webhooks``: the new endpoint with its signing secret, shown this once."""

    secret: str = Field(pattern=SECRET_PATTERN, description="Verify signatures with it.")


class WebhookList(BaseModel):
    """``GET /v1/webhooks``: every endpoint, oldest first."""

    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    """One event for one endpoint (``pixdrop webhooks deliveries``)."""

    id: int = Field(ge=1, description="Resend it with POST .../deliveries/{id}/resend.")
    event_id: str = Field(description="The webhook-id header, the same on every attempt.")
    type: str
    endpoint_id: str
    url: str
    resource: str = Field(description="upload/<id> or image/<id>.")
    state: Literal["pending", "delivered", "failed"]
    attempts: int = Field(ge=0)
    last_status: int | None = Field(description="The receiver's last HTTP status.")
    last_error: str | None
    queued_at: str = Field(description="ISO 8601, UTC.")
    next_attempt_at: str | None = Field(description="ISO 8601, UTC; null unless pending.")


class DeliveryPage(BaseModel):
    """``GET /v1/webhooks/deliveries``: newest first."""

    deliveries: list[DeliveryOut]
    next_cursor: int | None = Field(description="Pass as ?cursor= for the next page; null: last.")
