"""tus 1.0.0 (core + nine extensions) on ``ResumableService``; see docs/tus.md.

The rules live in the service; this module maps headers to arguments and results to headers.
``TusMiddleware`` does what must happen before routing or to every response under the mount:
``X-HTTP-Method-Override``, the ``Tus-Resumable`` check (412) and header.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixdrop.config import Settings
from pixdrop.errors import (
    InvalidResumableRequest,
    UnsupportedMediaType,
    UnsupportedProtocolVersion,
)
from pixdrop.http import ietf
from pixdrop.http.errors import problem_response
from pixdrop.http.state import base_url, runtime
from pixdrop.http.wire import content_length
from pixdrop.protocols import tus
from pixdrop.services.appends import CHECKSUM_ALGORITHMS, AppendResult, Checksum, Progress
from pixdrop.services.images import StoredImage
from pixdrop.services.resumable import ResumableService

#: Methods ``X-HTTP-Method-Override`` may name.
_OVERRIDABLE = {"HEAD", "PATCH", "DELETE", "POST", "OPTIONS", "GET"}
#: The header that marks a request as the IETF draft's rather than tus's.
IETF_MARKER = "upload-draft-interop-version"


def _under(path: str, mount: str) -> bool:
    return path == mount or path.startswith(mount + "/")


class TusMiddleware:
    """Method override, version negotiation and ``Tus-Resumable`` on every tus response."""

    def __init__(self, app: ASGIApp, *, mount: str) -> None:
        self.app = app
        self.mount = mount.rstrip("/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _under(scope["path"], self.mount):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        override = headers.get("x-http-method-override", "").strip().upper()
        if override in _OVERRIDABLE:
            scope = dict(scope, method=override)
        if IETF_MARKER in headers:
            await self.app(scope, receive, send)
            return

        async def send_tus(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["Tus-Resumable"] = tus.VERSION
            await send(message)

        version = headers.get("tus-resumable")
        if scope["method"] != "OPTIONS" and version != tus.VERSION:
            said = "no Tus-Resumable header" if version is None else f"Tus-Resumable {version!r}"
            error = UnsupportedProtocolVersion(
                f"The request has {said}; this server speaks tus {tus.VERSION} and nothing "
                "else on this URL.",
                supported=[tus.VERSION],
            )
            error.headers["Tus-Version"] = tus.VERSION
            await problem_response(error, Request(scope))(scope, receive, send_tus)
            return
        await self.app(scope, receive, send_tus)


def _service(request: Request) -> ResumableService:
    return runtime(request).resumable


def upload_url(request: Request, upload_id: str) -> str:
    mount = runtime(request).settings.tus_path.rstrip("/")
    return f"{base_url(request)}{mount}/{upload_id}"


def image_header(request: Request, image_id: str) -> str:
    """``Pixdrop-Image``: an RFC 8941 dictionary naming the stored image."""
    return f'id="{image_id}", url="{base_url(request)}/v1/images/{image_id}"'


def _options_headers(service: ResumableService) -> dict[str, str]:
    return {
        "Tus-Version": tus.VERSION,
        "Tus-Extension": ",".join(tus.EXTENSIONS),
        "Tus-Max-Size": str(service.max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }


async def options(request: Request) -> Response:
    if IETF_MARKER in request.headers:
        return await ietf.options(request)
    return Response(status_code=204, headers=_options_headers(_service(request)))


def _progress_headers(request: Request, progress: Progress) -> dict[str, str]:
    upload = progress.upload
    headers = {"Cache-Control": "no-store"}
    if progress.offset is not None:
        headers["Upload-Offset"] = str(progress.offset)
    if progress.length is not None:
        headers["Upload-Length"] = str(progress.length)
    elif not upload.is_final:
        headers["Upload-Defer-Length"] = "1"
    if upload.upload_metadata is not None:
        headers["Upload-Metadata"] = upload.upload_metadata
    if upload.concat is not None:
        headers["Upload-Concat"] = upload.concat
    if upload.state.value != "completed":
        headers["Upload-Expires"] = tus.http_date(upload.expires_at)
    if progress.image is not None:
        headers["Pixdrop-Image"] = image_header(request, progress.image.id)
    return headers


def _stored_headers(request: Request, stored: StoredImage | None) -> dict[str, str]:
    if stored is None:
        return {}
    headers = {"Pixdrop-Image": image_header(request, stored.image.id)}
    if stored.delete_token:
        headers["Pixdrop-Delete-Token"] = stored.delete_token
    return headers


async def head(request: Request, upload_id: str) -> Response:
    if IETF_MARKER in request.headers:
        return await ietf.head(request, upload_id)
    progress = await _service(request).progress(upload_id)
    return Response(status_code=200, headers=_progress_headers(request, progress))


def _body_is_data(request: Request) -> bool:
    """Whether the request carries upload data (``application/offset+octet-stream``)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return kind == tus.OFFSET_OCTET_STREAM


def _require_data_type(request: Request, length: int | None) -> None:
    if not _body_is_data(request) and (length is None or length > 0):
        raise UnsupportedMediaType(
            f"Upload data must be sent as Content-Type: {tus.OFFSET_OCTET_STREAM}.",
            expected=tus.OFFSET_OCTET_STREAM,
        )


def _checksum_args(request: Request) -> dict[str, Any]:
    """``checksum`` from ``Upload-Checksum``, or a trailer reader when it is announced."""
    value = request.headers.get("upload-checksum")
    if value is not None:
        parsed = tus.parse_checksum(value, CHECKSUM_ALGORITHMS)
        return {"checksum": Checksum(parsed.algorithm, parsed.digest)}
    announced = [t.strip().lower() for t in request.headers.get("trailer", "").split(",")]
    if "upload-checksum" not in announced:
        return {}
    trailers = request.scope.get("extensions", {}).get("pixdrop.request_trailers")
    if trailers is None:
        raise InvalidResumableRequest(
            "This server cannot read request trailers on this connection; send "
            "Upload-Checksum as a header."
        )

    def read_trailer() -> Checksum | None:
        for name, raw in trailers.headers:
            if name.lower() == b"upload-checksum":
                parsed = tus.parse_checksum(raw.decode("latin-1"), CHECKSUM_ALGORITHMS)
                return Checksum(parsed.algorithm, parsed.digest)
        return None

    return {"trailer_checksum": read_trailer}


async def _append(
    request: Request, upload_id: str, offset: int, length: int | None
) -> AppendResult:
    declared = content_length(request)
    return await _service(request).append(
        upload_id,
        offset=offset,
        body=request.stream(),
        content_length=declared,
        length=length,
        **_checksum_args(request),
    )


async def patch(request: Request, upload_id: str) -> Response:
    if IETF_MARKER in request.headers:
        return await ietf.append(request, upload_id)
    declared = content_length(request)
    _require_data_type(request, declared)
    if "upload-offset" not in request.headers:
        raise InvalidResumableRequest("A PATCH needs Upload-Offset: the offset it writes at.")
    offset = tus.parse_length(request.headers["upload-offset"], "Upload-Offset")
    length = None
    if "upload-length" in request.headers:
        length = tus.parse_length(request.headers["upload-length"], "Upload-Length")
    result = await _append(request, upload_id, offset, length)
    return Response(status_code=204, headers=_appended_headers(request, result))


def _appended_headers(request: Request, result: AppendResult) -> dict[str, str]:
    """The new offset, the expiry while the upload is unfinished, and the image it made."""
    upload = result.progress.upload
    headers = {"Upload-Offset": str(result.progress.offset)}
    if upload.state.value != "completed":
        headers["Upload-Expires"] = tus.http_date(upload.expires_at)
    headers.update(_stored_headers(request, result.stored))
    return headers


def _metadata(request: Request) -> tuple[str | None, dict[str, bytes]]:
    raw = request.headers.get("upload-metadata")
    if raw is None or not raw.strip():
        return None, {}
    return raw, tus.parse_metadata(raw)


def _creation_length(request: Request) -> int | None:
    has_length = "upload-length" in request.headers
    defer = request.headers.get("upload-defer-length")
    if defer is not None and defer.strip() != "1":
        raise InvalidResumableRequest(
            f"Upload-Defer-Length must be 1; got {defer!r}.", header="Upload-Defer-Length"
        )
    if has_length and defer is not None:
        raise InvalidResumableRequest("Send Upload-Length or Upload-Defer-Length, not both.")
    if has_length:
        return tus.parse_length(request.headers["upload-length"], "Upload-Length")
    if defer is None:
        raise InvalidResumableRequest(
            "Creating an upload needs Upload-Length (its size in bytes) or "
            "Upload-Defer-Length: 1 (size told later)."
        )
    return None


async def create(request: Request) -> Response:
    if IETF_MARKER in request.headers:
        return await ietf.create(request)
    service = _service(request)
    settings: Settings = runtime(request).settings
    raw_metadata, pairs = _metadata(request)
    filename = tus.metadata_text(pairs, "filename", "name")
    content_type = tus.metadata_text(pairs, "filetype", "type", "contentType")
    concat_value = request.headers.get("upload-concat")
    concat = tus.parse_concat(concat_value) if concat_value is not None else None
    declared = content_length(request)
    stored: StoredImage | None = None
    if concat is not None and not concat.partial:
        if "upload-length" in request.headers:
            raise InvalidResumableRequest(
                "A final upload (Upload-Concat: final) must not send Upload-Length: its "
                "length is the sum of its partial uploads."
            )
        ids = []
        for url in concat.urls:
            found = tus.upload_id_from_url(url, settings.tus_path)
            if found is None:
                raise InvalidResumableRequest(
                    f"Upload-Concat names {url!r}, which is not an upload URL of this server.",
                    partial=url,
                )
            ids.append(found)
        upload, stored = await service.create_final(
            protocol="tus",
            partial_ids=ids,
            concat=concat_value.strip() if concat_value else "",
            metadata=raw_metadata,
            filename=filename,
            content_type=content_type,
        )
        progress = await service.progress(upload.id)
        headers = {"Location": upload_url(request, upload.id)}
        headers.update(_progress_headers(request, progress))
        headers.pop("Cache-Control")
        headers.update(_stored_headers(request, stored))
        return Response(status_code=201, headers=headers)
    with_data = _body_is_data(request)
    if not with_data and declared:
        _require_data_type(request, declared)
    length = _creation_length(request)
    if with_data and concat is None and length and declared == length:
        # The whole upload in this request: one transaction records it with its image.
        result = await service.create_whole(
            protocol="tus",
            length=length,
            body=request.stream(),
            metadata=raw_metadata,
            filename=filename,
            content_type=content_type,
            **_checksum_args(request),
        )
        location = upload_url(request, result.progress.upload.id)
        headers = {"Location": location, **_appended_headers(request, result)}
        return Response(status_code=201, headers=headers)
    upload = await service.create(
        protocol="tus",
        length=length,
        metadata=raw_metadata,
        filename=filename,
        content_type=content_type,
        partial=concat is not None,
    )
    headers = {
        "Location": upload_url(request, upload.id),
        "Upload-Expires": tus.http_date(upload.expires_at),
        "Upload-Offset": "0",
    }
    if with_data:
        result = await _append(request, upload.id, 0, None)
        headers["Upload-Offset"] = str(result.progress.offset)
        headers.update(_stored_headers(request, result.stored))
    return Response(status_code=201, headers=headers)


async def terminate(request: Request, upload_id: str) -> Response:
    if IETF_MARKER in request.headers:
        return await ietf.cancel(request, upload_id)
    await _service(request).terminate(upload_id)
    return Response(status_code=204)


def router(settings: Settings) -> APIRouter:
    """The tus routes under ``settings.tus_path`` (with and without a trailing slash)."""
    mount = settings.tus_path.rstrip("/")
    routes = APIRouter(tags=["tus"], include_in_schema=False)
    for path in (mount, mount + "/"):
        routes.add_api_route(path, options, methods=["OPTIONS"])
        routes.add_api_route(path, create, methods=["POST"])
    item = mount + "/{upload_id}"
    routes.add_api_route(item, options, methods=["OPTIONS"])
    routes.add_api_route(item, head, methods=["HEAD"])
    routes.add_api_route(item, patch, methods=["PATCH"])
    routes.add_api_route(item, terminate, methods=["DELETE"])
    return routes
