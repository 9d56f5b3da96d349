"""Which problems each route can answer: one table, read by the routes' ``responses=``.

Each route (by its handler's name) lists the error classes of ``pixdrop.errors`` it can answer
with in :data:`ROUTE_PROBLEMS`; :data:`EVERY_ROUTE` holds what any route can answer. A
route's decorator says ``responses=problems("put_chunk")``, so a problem every route gains is
one more entry of ``EVERY_ROUTE``, not an edit of every decorator. Problems that only an app
with some feature on can answer (a pre-create hook, ``--rate-limit``, a cap on open uploads,
``--auth keys``' 401/403 where a route needs a key) are a :class:`Feature` of
:data:`FEATURES`: the settings turn it on, and ``http/openapi.py`` adds its problems to the
routes it names (every route, by default). Each status is described as
``application/problem+json`` (docs/errors.md) whose ``type`` is one of those listed;
``tests/http/test_schemathesis.py`` holds the table to what the server answers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pixdrop.config import Settings
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
    GrantExpired,
    GrantFormatRefused,
    GrantNotFound,
    GrantTooLarge,
    GrantUsed,
    HeaderTooLarge,
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
    QuotaExceeded,
    RangeNotSatisfiable,
    RequestTimeout,
    ServiceUnavailable,
    TooManyOpenUploads,
    TooManyRequests,
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

#: What any route can answer: the generic 500, what the connection layer
#: (``http/connections.py``) answers before a request reaches a route: a head or body that
#: stopped coming (408), a head over ``max_header_size`` (431), too many connections or a
#: shutdown (503); and, in any ``--auth`` mode, the authentication layer's 401 to an
#: ``Authorization: Bearer`` credential (``pxk_``, ``pxg_``) that is unknown, revoked or
#: expired (``auth/middleware.py``).
EVERY_ROUTE: tuple[Entry, ...] = (
    INTERNAL,
    RequestTimeout,
    HeaderTooLarge,
    ServiceUnavailable,
    Unauthorized,
)

#: A request body's ``Content-Length`` that is not a byte count, or a malformed multipart body.
_BODY = (BadRequest,)
#: A route that stores bytes or records: the disk or the database may be full.
_STORES = (InsufficientStorage,)
#: Completion: the bytes are not an acceptable image, or carry bytes after its end.
_COMPLETES = (UnprocessableImage, TrailingData)
_DIGESTS = (InvalidDigest, DigestMismatch)
_IMAGE = (UnprocessableImage, Conflict)  # Conflict: another node renders the same image
_RANGE = (RangeNotSatisfiable,)
#: A direct-upload grant (``http/direct.py``) opening an upload: used, expired, or smaller
#: than the size declared (``services/grants.py: check_open``).
_GRANT_OPENS = (GrantUsed, GrantExpired, GrantTooLarge)
#: ... any way in but the upload URL, where the grant is an ``Authorization: Bearer pxg_``
#: token: 401 if it is no grant's.
_BEARER_GRANT = (Unauthorized, *_GRANT_OPENS)
#: The image made with a grant: of a format it allows, within its size, and the grant's first
#: (``check_image``, the claim in ``Completion.ingest``).
_GRANT_COMPLETES = (GrantFormatRefused, GrantTooLarge, GrantUsed)
#: What an API key owns counts against its quota of bytes and open uploads (in both
#: ``--auth`` modes: a key sent to an open server still owns what it creates): opening an
#: upload reserves its size, recording an image its bytes (``metadata/quotas.py``).
_QUOTA = (QuotaExceeded,)
#: A private image (``auth/scopes.py: check_private_read``): 401 with no key (nor signature,
#: nor delete token), 403 to a key that is not its owner's read key. In both modes.
_PRIVATE = (Unauthorized, Forbidden)
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
    *_GRANT_COMPLETES,
    *_QUOTA,
)

#: Route (its handler's name) → the problems it can answer besides ``EVERY_ROUTE``.
ROUTE_PROBLEMS: dict[str, tuple[Entry, ...]] = {
    "create_image": (
        *_BODY,
        InvalidUploadRequest,  # a bad query parameter (``private``)
        *_DIGESTS,
        FieldTooLong,
        PayloadTooLarge,
        *_COMPLETES,
        *_STORES,
        *_BEARER_GRANT,
        *_GRANT_COMPLETES,
        *_QUOTA,
    ),
    "list_images": (BadRequest, InvalidUploadRequest),
    "get_image": (ImageNotFound, *_PRIVATE),
    "get_original": (ImageNotFound, *_RANGE, *_IMAGE, *_PRIVATE),
    "head_original": (ImageNotFound, *_RANGE, *_IMAGE, *_PRIVATE),
    # 401: no delete token nor key; 403: a wrong delete token, or a key that may not.
    "delete_image": (ImageNotFound, Unauthorized, Forbidden, *_STORES),
    "get_variant": (ImageNotFound, NotFound, BadRequest, *_RANGE, *_IMAGE, *_STORES, *_PRIVATE),
    "head_variant": (ImageNotFound, NotFound, BadRequest, *_RANGE, *_IMAGE, *_STORES, *_PRIVATE),
    # Signing: a bad expires_in (400); only the owner's read key, an admin key or the delete
    # token sign (403).
    "signed_url": (ImageNotFound, InvalidUploadRequest, Forbidden),
    "get_blob": (NotFound,),
    "head_blob": (NotFound,),
    "create_upload": (
        *_BODY,
        InvalidUploadRequest,
        FieldTooLong,
        PayloadTooLarge,
        *_STORES,
        *_BEARER_GRANT,
        *_QUOTA,
    ),
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
        *_GRANT_COMPLETES,
        *_QUOTA,
    ),
    "delete_upload": (UploadNotFound, UploadNotReceiving, Conflict, *_STORES),
    # Direct uploads (``http/direct.py``). Issuing: a bad body, or a grant asking for one.
    "create_grant": (*_BODY, InvalidUploadRequest, PayloadTooLarge, Forbidden, *_STORES),
    "get_grant": (GrantNotFound,),
    # The upload URL: the token in the path is the credential (404 if it is no grant's).
    "upload_with_grant": (
        GrantNotFound,
        *_BODY,
        *_DIGESTS,
        FieldTooLong,
        PayloadTooLarge,
        *_GRANT_OPENS,
        *_COMPLETES,
        *_GRANT_COMPLETES,
        *_STORES,
        *_QUOTA,
    ),
    "get_limits": (),
    "healthz": (),
    "readyz": (),
    # The tus / IETF endpoint (``http/openapi_resumable.py`` describes its operations).
    "resumable_options": (*_TUS,),
    # Forbidden: tus concatenation with a grant.
    "resumable_create": (*_RESUMABLE_WRITE, *_BEARER_GRANT, Forbidden),
    "resumable_head": (*_TUS, UploadNotFound, UploadExpired, UploadLocked),
    "resumable_patch": (*_RESUMABLE_WRITE,),
    "resumable_delete": (*_TUS, UploadNotFound, Conflict, UploadLocked, *_STORES),
    # The keys admin API (``http/keys.py``; scope admin: ``AUTH``).
    "create_key": (*_BODY, InvalidUploadRequest, PayloadTooLarge, *_STORES),
    "list_keys": (),
    "revoke_key": (NotFound, *_STORES),
    # The webhooks admin API (``http/webhooks.py``; scope admin: ``AUTH``).
    "create_webhook": (*_BODY, InvalidUploadRequest, PayloadTooLarge, *_STORES),
    "list_webhooks": (),
    "remove_webhook": (NotFound, *_STORES),
    "list_deliveries": (InvalidUploadRequest,),
    "resend_delivery": (NotFound, InvalidUploadRequest, *_STORES),
}


@dataclass(frozen=True, slots=True)
class Feature:
    """Problems only an app with a feature on answers: on the *routes* named (``None``: every
    route but those *exempt*), when *on* says the settings turn the feature on."""

    on: Callable[[Settings], bool]
    problems: tuple[Entry, ...]
    routes: frozenset[str] | None = None
    exempt: frozenset[str] = frozenset()

    def covers(self, route: str, settings: Settings) -> bool:
        if route in self.exempt or (self.routes is not None and route not in self.routes):
            return False
        return self.on(settings)


#: The routes that create an upload, which the pre-create hook (``hook_url``) may refuse.
HOOKED = frozenset({"create_image", "create_upload", "resumable_create", "upload_with_grant"})
#: What the hook adds to them: its refusal (403, or the status the hook names) and, when it
#: gives no answer and fails closed, 503.
HOOK = Feature(lambda s: bool(s.hook_url), (HookRefused, HookUnavailable), routes=HOOKED)
#: ``--rate-limit``: 429 on every route the rate-limit layer counts (``http/ratelimit.py``:
#: ``EXEMPT_PATHS``; ``tests/http/test_openapi.py`` holds the two together).
RATE_LIMIT = Feature(
    lambda s: s.rate_limit is not None, (TooManyRequests,), exempt=frozenset({"healthz", "readyz"})
)
#: ``--max-open-uploads-per-client``: the routes that open an upload that stays open
#: (``Lifecycle.open``; a one-request upload is never open).
OPEN_UPLOADS = Feature(
    lambda s: s.max_open_uploads_per_client is not None,
    (TooManyOpenUploads,),
    routes=frozenset({"create_upload", "resumable_create"}),
)
#: The routes that need a scope under ``--auth keys`` (``auth.scopes.require``, declared on
#: the route or its router in ``http/app.py``); the tus OPTIONS never does.
SCOPED = frozenset(
    {
        "create_image",
        "list_images",
        "create_upload",
        "get_upload",
        "put_chunk",
        "complete_upload",
        "delete_upload",
        "get_blob",
        "head_blob",
        "create_grant",
        "signed_url",
        "create_key",
        "list_keys",
        "revoke_key",
        "create_webhook",
        "list_webhooks",
        "remove_webhook",
        "list_deliveries",
        "resend_delivery",
        "resumable_create",
        "resumable_head",
        "resumable_patch",
        "resumable_delete",
    }
)
#: ... and those that need a key, any key (``require(ANY)``).
ANY_KEY = frozenset({"get_limits"})
#: The routes that need a credential under ``--auth keys``: their operations carry the
#: bearer ``security`` requirement (``http/openapi.py``).
CREDENTIALED = SCOPED | ANY_KEY


def _keys(settings: Settings) -> bool:
    return settings.auth_mode == "keys"


#: ``--auth keys``: 401 ``unauthorized`` (with ``WWW-Authenticate: Bearer``) to a request
#: without a key, 403 ``forbidden`` to a key without the route's scope.
AUTH = Feature(_keys, (Unauthorized, Forbidden), routes=SCOPED)
AUTH_ANY = Feature(_keys, (Unauthorized,), routes=ANY_KEY)
#: Every feature that adds problems.
FEATURES: tuple[Feature, ...] = (HOOK, RATE_LIMIT, OPEN_UPLOADS, AUTH, AUTH_ANY)


def kinds(route: str, settings: Settings | None = None) -> list[Kind]:
    """Every problem *route* can answer (of an app with *settings*; ``None``: with no
    feature on), without repeats, by status then type."""
    extra = [
        entry
        for feature in FEATURES
        if settings is not None and feature.covers(route, settings)
        for entry in feature.problems
    ]
    found = {
        entry if isinstance(entry, Kind) else Kind.of(entry)
        for entry in (*EVERY_ROUTE, *ROUTE_PROBLEMS[route], *extra)
    }
    return sorted(found, key=lambda k: (k.status, k.uri))


def problems(route: str, settings: Settings | None = None) -> dict[int | str, dict[str, Any]]:
    """The error part of ``responses=`` for *route* (of an app with *settings*): per status,
    a problem+json body whose ``type`` is one of the types the table lists for it."""
    by_status: dict[int, list[Kind]] = {}
    for kind in kinds(route, settings):
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
    response: dict[str, Any] = {
        "description": "; ".join(f"`{k.uri}`: {k.title}" for k in found),
        "content": {MEDIA_TYPE: {"schema": schema}},
    }
    if found[0].status == 401:  # ``errors.Unauthorized`` always names the scheme
        response["headers"] = {
            "WWW-Authenticate": {
                "description": 'The scheme to authenticate with: Bearer realm="pixdrop".',
                "required": True,
                "schema": {"type": "string", "pattern": "^Bearer"},
            }
        }
    return response


def headers(**described: str) -> dict[str, dict[str, Any]]:
    """Response headers of a success, each an optional string: ``Upload_Offset="..."``."""
    return {
        name.replace("_", "-"): {"description": text, "schema": {"type": "string"}}
        for name, text in described.items()
    }


def merged(into: dict[int | str, Any], added: Mapping[int | str, dict[str, Any]]) -> None:
    """Add the problems *added* (of :func:`problems`) to the responses *into*. A status that
    is also a route's own answer (``/readyz``'s 503 body) keeps its own description, which
    must mention the problem, and both contents."""
    for status, response in added.items():
        had = into.get(status)
        own = had is not None and ("model" in had or set(had.get("content", {})) - {MEDIA_TYPE})
        if not own:
            into[status] = response
            continue
        assert had is not None
        into[status] = {**had, "content": {**had.get("content", {}), **response["content"]}}


def responses(
    route: str, success: Mapping[int | str, dict[str, Any]], settings: Settings | None = None
) -> dict[int | str, Any]:
    """``responses=`` of *route*: its successes (status → description, headers, content) and
    its problems (of an app with *settings*)."""
    described: dict[int | str, Any] = dict(success)
    merged(described, problems(route, settings))
    return described
