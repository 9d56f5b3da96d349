"""Which problems each route can answer: one table, read by the routes' ``responses=``.

Each route (by its handler's name) lists the error classes of ``pixdrop.errors`` it can answer
with in :data:`ROUTE_PROBLEMS`; :data:`EVERY_ROUTE` holds what any route can answer. A
route's decorator says ``responses=problems("put_chunk")``, so a problem every route gains
(access control's 401, 403, 429) is one more entry of ``EVERY_ROUTE``, not an edit of every
decorator. Each status is described as ``application/problem+json`` (docs/errors.md) whose
``type`` is one of those listed; ``tests/http/test_schemathesis.py`` holds the table to what
the server answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pixdrop.errors import (
    PROBLEM_BASE,
    BadRequest,
    ChecksumMismatch,
    ChunkBusy,
    ChunkConflict,
    ChunkNotFound,
    ChunkSizeMismatch,
    CompletedUpload,
    Conflict,
    DigestMismatch,
    FieldTooLong,
    FinalUploadNotWritable,
    Forbidden,
    HookRefused,
    HookUnavailable,
    ImageNotFound,
    InconsistentUploadLength,
    InsufficientStorage,
    InvalidDigest,
    InvalidResumableRequest,
    InvalidUploadRequest,
    MismatchingUploadOffset,
    NotFound,
    OffsetMismatch,
    PayloadTooLarge,
    PixdropError,
    RangeNotSatisfiable,
    TrailingData,
    Unauthorized,
    UnprocessableImage,
    UnsupportedMediaType,
    UnsupportedProtocolVersion,
    UploadExpired,
    UploadIncomplete,
    UploadLocked,
    UploadNotFound,
    UploadNotReceiving,
    UploadTakenOver,
)
from pixdrop.protocols.problem import MEDIA_TYPE

#: Where ``http/openapi.py`` puts the ``Problem`` model (``http/schemas.py``).
PROBLEM_REF = "#/components/schemas/Problem"


@dataclass(frozen=True, slots=True)
class Kind:
    """One problem type as a client sees it: status, ``type`` URI, title."""

    status: int
    uri: str  # the problem's ``type``
    title: str

    @classmethod
    def of(cls, error: type[PixdropError]) -> Kind:
        return cls(error.status, error.type_uri or PROBLEM_BASE + error.slug, error.title)


#: The generic 500 (``http/errors.py: internal_error``): any route, any time.
INTERNAL = Kind(500, "about:blank", "Internal server error")

Entry = type[PixdropError] | Kind

#: What any route can answer. Access control adds its 401/403/429 here.
EVERY_ROUTE: tuple[Entry, ...] = (INTERNAL,)

#: A request body's ``Content-Length`` that is not a byte count, or a malformed multipart body.
_BODY = (BadRequest,)
#: A route that stores bytes or records: the disk or the database may be full.
_STORES = (InsufficientStorage,)
#: Completion: the bytes are not an acceptable image, or carry bytes after its end.
_COMPLETES = (UnprocessableImage, TrailingData)
_DIGESTS = (InvalidDigest, DigestMismatch)
_IMAGE = (UnprocessableImage, Conflict)  # Conflict: another node renders the same image
_RANGE = (RangeNotSatisfiable,)
#: Everything the tus mount answers before a handler runs (``TusMiddleware``).
_TUS = (UnsupportedProtocolVersion, InvalidResumableRequest)
_RESUMABLE_WRITE = (
    *_TUS,
    BadRequest,
    InconsistentUploadLength,
    CompletedUpload,
    FieldTooLong,
    InvalidDigest,
    UploadNotFound,
    UploadExpired,
    FinalUploadNotWritable,
    OffsetMismatch,
    MismatchingUploadOffset,
    UploadTakenOver,
    UploadNotReceiving,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    UnprocessableImage,
    UploadLocked,
    ChecksumMismatch,
    *_STORES,
    *_COMPLETES,
)

#: Route (its handler's name) → the problems it can answer besides ``EVERY_ROUTE``.
ROUTE_PROBLEMS: dict[str, tuple[Entry, ...]] = {
    "create_image": (*_BODY, *_DIGESTS, FieldTooLong, PayloadTooLarge, *_COMPLETES, *_STORES),
    "list_images": (BadRequest, InvalidUploadRequest),
    "get_image": (ImageNotFound,),
    "get_original": (ImageNotFound, *_RANGE, *_IMAGE),
    "head_original": (ImageNotFound, *_RANGE, *_IMAGE),
    "delete_image": (ImageNotFound, Unauthorized, Forbidden, *_STORES),
    "get_variant": (ImageNotFound, NotFound, BadRequest, *_RANGE, *_IMAGE),
    "head_variant": (ImageNotFound, NotFound, BadRequest, *_RANGE, *_IMAGE),
    "get_blob": (NotFound,),
    "head_blob": (NotFound,),
    "create_upload": (*_BODY, InvalidUploadRequest, FieldTooLong, PayloadTooLarge, *_STORES),
    "get_upload": (UploadNotFound,),
    "put_chunk": (
        *_BODY,
        *_DIGESTS,
        ChunkSizeMismatch,
        UploadNotFound,
        ChunkNotFound,
        ChunkConflict,
        ChunkBusy,
        UploadNotReceiving,
        UploadExpired,
        *_STORES,
    ),
    "complete_upload": (
        UploadNotFound,
        UploadExpired,
        UploadIncomplete,
        UploadNotReceiving,
        Conflict,
        *_COMPLETES,
        *_STORES,
    ),
    "delete_upload": (UploadNotFound, UploadNotReceiving, Conflict, *_STORES),
    "get_limits": (),
    "healthz": (),
    # The tus / IETF endpoint (``http/openapi_resumable.py`` describes its operations).
    "resumable_options": (*_TUS,),
    "resumable_create": (*_RESUMABLE_WRITE,),
    "resumable_head": (*_TUS, UploadNotFound, UploadExpired, UploadLocked),
    "resumable_patch": (*_RESUMABLE_WRITE,),
    "resumable_delete": (*_TUS, UploadNotFound, Conflict, UploadLocked, *_STORES),
}

#: The routes that create an upload, which the pre-create hook (``hook_url``) may refuse.
HOOKED = frozenset({"create_image", "create_upload", "resumable_create"})
#: What the hook adds to them: its refusal (403, or the status the hook names) and, when it
#: gives no answer and fails closed, 503. Described only by apps that have a hook.
HOOK_PROBLEMS: tuple[Entry, ...] = (HookRefused, HookUnavailable)


def kinds(route: str, *, hook: bool = False) -> list[Kind]:
    """Every problem *route* can answer (of an app with a pre-create *hook*), without
    repeats, by status then type."""
    extra = HOOK_PROBLEMS if hook and route in HOOKED else ()
    found = {
        entry if isinstance(entry, Kind) else Kind.of(entry)
        for entry in (*EVERY_ROUTE, *ROUTE_PROBLEMS[route], *extra)
    }
    return sorted(found, key=lambda k: (k.status, k.uri))


def problems(route: str, *, hook: bool = False) -> dict[int | str, dict[str, Any]]:
    """The error part of ``responses=`` for *route*: per status, a problem+json body whose
    ``type`` is one of the types the table lists for it."""
    by_status: dict[int, list[Kind]] = {}
    for kind in kinds(route, hook=hook):
        by_status.setdefault(kind.status, []).append(kind)
    return {status: _problem_response(found) for status, found in by_status.items()}


def _problem_response(found: list[Kind]) -> dict[str, Any]:
    types = [k.uri for k in found]
    schema = {
        "allOf": [
            {"$ref": PROBLEM_REF},
            {"properties": {"type": {"enum": types}, "status": {"const": found[0].status}}},
        ]
    }
    return {
        "description": "; ".join(f"`{k.uri}`: {k.title}" for k in found),
        "content": {MEDIA_TYPE: {"schema": schema}},
    }


def headers(**described: str) -> dict[str, dict[str, Any]]:
    """Response headers of a success, each an optional string: ``Upload_Offset="..."``."""
    return {
        name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
        for name, text in described.items()
    }


def responses(
    route: str, success: Mapping[int | str, dict[str, Any]], *, hook: bool = False
) -> dict[int | str, Any]:
    """``responses=`` of *route*: its successes (status → description, headers, content) and
    its problems."""
    return {**success, **problems(route, hook=hook)}
