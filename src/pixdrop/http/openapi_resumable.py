"""The tus 1.0 / IETF draft endpoint in ``/openapi.json``, as far as OpenAPI can say it.

Both protocols share the URLs under ``tus_path`` (``http/tus.py``, ``http/ietf.py``): a request
carrying ``Upload-Draft-Interop-Version`` is the draft's, any other tus's. OpenAPI has one
operation per path and method, so each operation here lists the headers of both, and the
answers of both (tus answers ``HEAD`` with 200, the draft with 204). What OpenAPI cannot say
(which header combinations make a valid request; the draft's ``104`` interim response) is in
the descriptions and in docs/tus.md and docs/ietf.md.
"""

from __future__ import annotations

from typing import Any

from pixdrop.config import Settings
from pixdrop.http.problems import headers, responses
from pixdrop.protocols import tus
from pixdrop.protocols.ietf import INTEROP_HEADER, PARTIAL_UPLOAD, SUPPORTED_VERSIONS
from pixdrop.services.metering import CHECKSUM_ALGORITHMS

_STRING: dict[str, Any] = {"type": "string"}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _header(name: str, description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema or _STRING,
    }


def _protocol(*, tus_version: bool = True) -> list[dict[str, Any]]:
    """The headers saying which protocol a request speaks: ``Tus-Resumable`` on every tus
    request but OPTIONS (*tus_version*), where tus says a server ignores it. (tus's
    X-HTTP-Method-Override, for clients that can send only POST, is left out: it makes a
    request another operation.)"""
    version = _header(
        "Tus-Resumable",
        f"tus: the protocol version, {tus.VERSION} (missing or any other: 412). Not read "
        "when the request speaks the IETF draft.",
        {"type": "string", "enum": [tus.VERSION]},
    )
    interop = _header(
        INTEROP_HEADER,
        "IETF draft: its interop version. Present: the request speaks the draft.",
        {"type": "integer", "enum": sorted(SUPPORTED_VERSIONS)},
    )
    return [{**version, "required": True}, interop] if tus_version else [interop]


_CHECKSUM = _header(
    "Upload-Checksum",
    f"tus: ALGORITHM BASE64 of this request's body ({', '.join(CHECKSUM_ALGORITHMS)}); a "
    "mismatch is 460 and nothing is kept.",
)
_COMPLETE = [
    _header(
        "Upload-Complete",
        "IETF draft (interop 4 on): ?1 if this request's body ends the upload, ?0 if more follows.",
        {"type": "string", "enum": ["?0", "?1"]},
    ),
    _header(
        "Upload-Incomplete",
        "IETF draft (interop 3): the inverse of Upload-Complete.",
        {"type": "string", "enum": ["?0", "?1"]},
    ),
    _header("Repr-Digest", "IETF draft: RFC 9530 digest of the whole upload."),
    _header("Content-Digest", "IETF draft: RFC 9530 digest of this request's body."),
]
_BODY = {
    "required": False,
    "description": "Bytes of the upload, appended at its offset.",
    "content": {
        tus.OFFSET_OCTET_STREAM: _BINARY,
        PARTIAL_UPLOAD: _BINARY,
        "application/octet-stream": _BINARY,
    },
}
_UPLOAD_ID = {"name": "upload_id", "in": "path", "required": True, "schema": _STRING}

_EXPIRES = "tus: when the unfinished upload is swept (HTTP date)."
_IMAGE = "The stored image, once the upload is complete: an RFC 8941 dictionary (id, links)."
_DELETE_HANDLE = (
    "The image's delete token, on the response that stored it (the only time it is sent)."
)
_LIMIT = "IETF draft (interop 6 on): max-size and, while it receives, max-age (RFC 8941)."
_OFFSET = "Bytes of the upload received so far."


def _options(max_size: int) -> dict[str, Any]:
    answered = headers(
        Tus_Version="tus: the versions spoken.",
        Tus_Extension=f"tus: {','.join(tus.EXTENSIONS)}.",
        Tus_Checksum_Algorithm="tus: " + ",".join(CHECKSUM_ALGORITHMS) + ".",
        Accept_Patch=f"IETF draft: {PARTIAL_UPLOAD}.",
        Upload_Limit=_LIMIT,
    )
    answered["Tus-Max-Size"] = {
        "description": "tus: the largest upload, in bytes (max_image_size).",
        "schema": {"type": "string", "enum": [str(max_size)]},
    }
    return {
        "tags": ["tus"],
        "summary": "What the server supports (tus discovery, IETF draft options)",
        "operationId": "resumable_options",
        "parameters": _protocol(tus_version=False),
        "responses": responses(
            "resumable_options", {204: {"description": "Supported", "headers": answered}}
        ),
    }


def _create(max_size: int) -> dict[str, Any]:
    created = headers(
        Location="The upload's URL.",
        Upload_Offset=_OFFSET,
        Upload_Expires=_EXPIRES,
        Upload_Complete="IETF draft: whether the upload is complete.",
        Upload_Limit=_LIMIT,
        Pixdrop_Image=_IMAGE,
        Pixdrop_Delete_Token=_DELETE_HANDLE,
        Repr_Digest="IETF draft, once complete: sha-256 of the upload.",
    )
    length = {"type": "integer", "minimum": 0, "maximum": max_size}
    return {
        "tags": ["tus"],
        "summary": "Create an upload, optionally with its first bytes or all of them",
        "description": "tus creation (with upload, deferred length, concatenation) or the "
        "IETF draft's upload creation, which first answers 104 (Upload Resumption Supported) "
        "with the upload's Location where the connection allows. tus needs Upload-Length, "
        "Upload-Defer-Length or a final Upload-Concat.",
        "operationId": "resumable_create",
        "parameters": [
            *_protocol(),
            _header("Upload-Length", f"The upload's size in bytes (at most {max_size}).", length),
            _header(
                "Upload-Defer-Length",
                "tus: 1 if the size is told later.",
                {"type": "integer", "enum": [1]},
            ),
            _header(
                "Upload-Metadata",
                "tus: KEY BASE64 pairs, comma-separated (filename, filetype are kept).",
            ),
            _header("Upload-Concat", "tus: partial, or final;URL URL..."),
            _CHECKSUM,
            *_COMPLETE,
        ],
        "requestBody": _BODY,
        "responses": responses(
            "resumable_create", {201: {"description": "Created", "headers": created}}
        ),
    }


def _head() -> dict[str, Any]:
    progress = headers(
        Upload_Offset=_OFFSET,
        Upload_Length="The upload's size, once known.",
        Upload_Defer_Length="tus: 1 while the size is unknown.",
        Upload_Metadata="tus: as sent at creation.",
        Upload_Concat="tus: partial, or final;URL URL...",
        Upload_Expires=_EXPIRES,
        Upload_Complete="IETF draft: whether the upload is complete.",
        Upload_Limit=_LIMIT,
        Pixdrop_Image=_IMAGE,
        Repr_Digest="IETF draft, once complete: sha-256 of the upload.",
        Cache_Control="no-store",
    )
    return {
        "tags": ["tus"],
        "summary": "The upload's offset (where the next append goes)",
        "operationId": "resumable_head",
        "parameters": [*_protocol(), _UPLOAD_ID],
        "responses": responses(
            "resumable_head",
            {
                200: {"description": "tus: the upload's state", "headers": progress},
                204: {"description": "IETF draft: the upload's state", "headers": progress},
            },
        ),
    }


def _patch(max_size: int) -> dict[str, Any]:
    appended = headers(
        Upload_Offset=_OFFSET,
        Upload_Expires=_EXPIRES,
        Upload_Complete="IETF draft: whether the upload is complete.",
        Pixdrop_Image=_IMAGE,
        Pixdrop_Delete_Token=_DELETE_HANDLE,
        Repr_Digest="IETF draft, once complete: sha-256 of the upload.",
    )
    offset = {"type": "integer", "minimum": 0, "maximum": max_size}
    return {
        "tags": ["tus"],
        "summary": "Append bytes at the upload's offset",
        "description": "tus answers 204. The IETF draft answers 201 when the append "
        "completed the upload (and, up to interop 6, for an incomplete one), else 204.",
        "operationId": "resumable_patch",
        "parameters": [
            *_protocol(),
            _UPLOAD_ID,
            {
                **_header("Upload-Offset", "Where this body goes: the upload's offset.", offset),
                "required": True,
            },
            _header(
                "Upload-Length",
                "tus: the size of an upload created with "
                "Upload-Defer-Length; IETF draft: the size, if not told before.",
                {"type": "integer", "minimum": 0, "maximum": max_size},
            ),
            _CHECKSUM,
            *_COMPLETE,
        ],
        "requestBody": _BODY,
        "responses": responses(
            "resumable_patch",
            {
                201: {"description": "IETF draft: appended (see above)", "headers": appended},
                204: {"description": "Appended", "headers": appended},
            },
        ),
    }


def _delete() -> dict[str, Any]:
    return {
        "tags": ["tus"],
        "summary": "Terminate (tus) or cancel (IETF draft) the upload and free its bytes",
        "operationId": "resumable_delete",
        "parameters": [*_protocol(), _UPLOAD_ID],
        "responses": responses("resumable_delete", {204: {"description": "Gone"}}),
    }


def resumable_paths(settings: Settings, max_size: int) -> dict[str, dict[str, Any]]:
    """The path items of the tus / IETF mount of an app with *settings*."""
    mount = settings.tus_path.rstrip("/")
    return {
        mount + "/": {"options": _options(max_size), "post": _create(max_size)},
        mount + "/{upload_id}": {
            "options": {
                **_options(max_size),
                "operationId": "resumable_options_upload",
                "parameters": [*_protocol(tus_version=False), _UPLOAD_ID],
            },
            "head": _head(),
            "patch": _patch(max_size),
            "delete": _delete(),
        },
    }
