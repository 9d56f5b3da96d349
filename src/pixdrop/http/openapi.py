"""``/openapi.json``: FastAPI's description of the routes, made complete and true per app.

* Errors: every route's problems come from the one table of ``http/problems.py``.
* Success bodies: the models of ``http/schemas.py`` (``response_model=``).
* Bounds: from the app's ``Settings`` and, once it runs, from its services (on S3 the smallest
  chunk is the store's 5 MiB part minimum), stated where the routes enforce them.
* Credentials: the bearer scheme (``components.securitySchemes``), required by the operations
  that need a key under ``--auth keys`` (``problems.CREDENTIALED``), and by none under
  ``--auth none``.
* The tus / IETF endpoint under ``tus_path`` (routed by hand, ``include_in_schema=False``) is
  described as far as OpenAPI can (``http/openapi_resumable.py``): one operation per method,
  whichever of the two protocols the request speaks.

Built once per app, on the first request after it started (:func:`install`).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from pixdrop.config import KNOWN_FORMATS, Settings
from pixdrop.http.openapi_resumable import resumable_paths
from pixdrop.http.problems import CREDENTIALED, merged, problems
from pixdrop.http.schemas import Problem


@dataclass(frozen=True, slots=True)
class Bounds:
    """The limits a running app enforces, which its description states."""

    min_chunk_size: int
    max_chunk_size: int
    max_image_size: int
    max_request_size: int
    variant_formats: tuple[str, ...]
    formats: tuple[str, ...]  # the image formats accepted

    @classmethod
    def of(cls, app: FastAPI, settings: Settings) -> Bounds | None:
        """From the running app's services; None before it started (nothing is cached)."""
        rt = getattr(app.state, "runtime", None)
        if rt is None:
            return None
        return cls(
            min_chunk_size=rt.uploads.min_chunk_size,
            max_chunk_size=int(settings.max_chunk_size),
            max_image_size=int(settings.max_image_size),
            max_request_size=int(settings.max_request_size),
            variant_formats=("auto", *rt.renditions.codec.encodes),
            formats=rt.direct.formats,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Bounds:
        """Before the app started (its services unknown): the settings alone, and every
        variant format the decoder pool may offer."""
        return cls(
            min_chunk_size=int(settings.min_chunk_size),
            max_chunk_size=int(settings.max_chunk_size),
            max_image_size=int(settings.max_image_size),
            max_request_size=int(settings.max_request_size),
            variant_formats=("auto", "webp", "avif", "jpeg", "png"),
            formats=settings.format_list or KNOWN_FORMATS,
        )


def _operations(doc: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for item in doc["paths"].values():
        yield from (op for op in item.values() if isinstance(op, dict) and "responses" in op)


def _drop_validation_errors(doc: dict[str, Any]) -> None:
    """FastAPI's own ``422 HTTPValidationError`` is never answered: a bad parameter is a
    ``400 invalid-upload-request`` problem (``http/errors.py``)."""
    for op in _operations(doc):
        response = op["responses"].get("422", {})
        if "HTTPValidationError" in str(response.get("content", "")):
            del op["responses"]["422"]
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)


def _schema_of(op: dict[str, Any], media_type: str) -> dict[str, Any]:
    schema: dict[str, Any] = op["requestBody"]["content"][media_type]["schema"]
    return schema


def _parameter(op: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in op["parameters"] if p["name"] == name)


def _bound(doc: dict[str, Any], settings: Settings, bounds: Bounds) -> None:
    """State the app's limits where its routes enforce them."""
    paths = doc["paths"]
    create = _schema_of(paths["/v1/uploads"]["post"], "application/json")["properties"]
    create["size"]["maximum"] = bounds.max_image_size
    chunk = create["chunk_size"]["anyOf"][0]
    chunk["minimum"], chunk["maximum"] = bounds.min_chunk_size, bounds.max_chunk_size
    one = paths["/v1/images"]["post"]
    one["requestBody"]["description"] += f" At most {bounds.max_request_size} bytes."
    put = paths["/v1/uploads/{upload_id}/chunks/{index}"]["put"]
    put["requestBody"]["description"] = (
        f"The chunk's bytes: exactly chunk_size ({bounds.min_chunk_size} to "
        f"{bounds.max_chunk_size}), only the last chunk shorter."
    )
    for method in ("get", "head"):
        _bound_variant(paths["/v1/images/{image_id}/{variant}"][method], settings, bounds)
    grant = _schema_of(paths["/v1/direct-uploads"]["post"], "application/json")["properties"]
    grant["max_size"]["anyOf"][0]["maximum"] = bounds.max_image_size
    grant["formats"]["anyOf"][0]["items"]["enum"] = list(bounds.formats)


def _or_empty(schema: dict[str, Any]) -> dict[str, Any]:
    """A variant parameter's values; an empty one (``?fit=``) is as if it were not sent."""
    return {"anyOf": [schema, {"type": "string", "enum": [""]}]}


def _bound_variant(op: dict[str, Any], settings: Settings, bounds: Bounds) -> None:
    """The presets, sizes, fits, formats and qualities this app offers."""
    sizes = {"type": "integer", "enum": list(settings.size_list)}
    values = {
        "variant": {"type": "string", "enum": sorted(settings.preset_sizes)},
        "w": _or_empty(sizes),
        "h": _or_empty(sizes),
        "fit": _or_empty({"type": "string", "enum": ["contain", "cover"]}),
        "format": _or_empty({"type": "string", "enum": list(bounds.variant_formats)}),
        "q": _or_empty({"type": "integer", "minimum": 1, "maximum": 100}),
    }
    for name, schema in values.items():
        _parameter(op, name)["schema"] = schema


def operation_id(route: APIRoute) -> str:
    """An operation's id is its handler's name: the key of its row in ``ROUTE_PROBLEMS``."""
    return route.name


#: Operations described by another's row: the OPTIONS of an upload shares the mount's.
_ROW_OF = {"resumable_options_upload": "resumable_options"}


def _features(doc: dict[str, Any], settings: Settings) -> None:
    """The problems of the features *settings* turn on (``problems.FEATURES``: a pre-create
    hook, a rate limit, ...), on the routes they concern."""
    for op in _operations(doc):
        route = _ROW_OF.get(op["operationId"], op["operationId"])
        added = problems(route, settings)
        merged(op["responses"], {str(status): r for status, r in added.items()})


#: The name of the bearer scheme in ``components.securitySchemes``.
BEARER = "apiKey"
_BEARER_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key (`pxk_...`: `pixdrop keys create`, `POST /v1/keys`) or, where "
    "an upload is opened, a direct-upload grant's token (`pxg_...`). A `pxk_` or `pxg_` "
    "token that is unknown, revoked or expired is answered 401 on every route, whatever the "
    "`--auth` mode. docs/auth.md.",
}
_KEYS = (
    "\n\nThis server runs `--auth keys`: the operations that list `apiKey` under `security` "
    "need `Authorization: Bearer <key>` with their scope, else 401 (no key) or 403 (a key "
    "without the scope)."
)
_NONE = (
    "\n\nThis server runs `--auth none`: no operation needs a credential. A key sent anyway "
    "owns what the request creates (its quota applies); private images still need their "
    "owner's read key, a signed URL or the delete token."
)


def _security(doc: dict[str, Any], settings: Settings) -> None:
    """The bearer scheme; under ``--auth keys`` each operation that needs a key says so."""
    doc["components"]["securitySchemes"] = {BEARER: _BEARER_SCHEME}
    keys = settings.auth_mode == "keys"
    doc["info"]["description"] = doc["info"].get("description", "") + (_KEYS if keys else _NONE)
    if not keys:
        return
    for op in _operations(doc):
        if _ROW_OF.get(op["operationId"], op["operationId"]) in CREDENTIALED:
            op["security"] = [{BEARER: []}]


def build(app: FastAPI, settings: Settings, bounds: Bounds) -> dict[str, Any]:
    """The description of *app*: FastAPI's, made complete and true (see the module doc)."""
    # A copy: FastAPI's answer shares dicts with the routes (``openapi_extra``), and the
    # bounds written below are this app's only.
    doc = copy.deepcopy(
        get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
    )
    _drop_validation_errors(doc)
    doc["components"]["schemas"]["Problem"] = Problem.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    _bound(doc, settings, bounds)
    doc["paths"].update(resumable_paths(settings, bounds.max_image_size))
    for op in _operations(doc):  # JSON's keys are strings; the hand-written paths use ints
        op["responses"] = {str(status): r for status, r in op["responses"].items()}
    _features(doc, settings)
    _security(doc, settings)
    return doc


def install(app: FastAPI, settings: Settings) -> None:
    """Serve *app*'s own description at ``/openapi.json``, built once it runs."""
    cache: dict[str, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        if "doc" in cache:
            return cache["doc"]
        bounds = Bounds.of(app, settings)
        if bounds is None:  # not started: from the settings alone, and not kept
            return build(app, settings, Bounds.from_settings(settings))
        cache["doc"] = build(app, settings, bounds)
        return cache["doc"]

    app.openapi = openapi  # type: ignore[method-assign]
