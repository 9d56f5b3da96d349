"""tus 1.0.0 (core + nine extensions) on ``ResumableService``; see docs/tus.md.

The rules live in the service: ``protocols/tus.py`` reads a request's fields into one value,
each handler here makes its service call from that value and turns the result into headers.
``TusMiddleware`` does what must happen before routing or to every response under the mount:
``X-HTTP-Method-Override``, the ``Tus-Resumable`` check (412) and header. The mount's routes
are tus's; a request carrying the IETF draft's marker is handed to ``http/ietf.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request, Response
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pixdrop.auth.middleware import is_true, mark_private
from pixdrop.config import Settings
from pixdrop.errors import InvalidResumableRequest, UnsupportedProtocolVersion
from pixdrop.http import ietf
from pixdrop.http.direct import opener_of
from pixdrop.http.errors import problem_response
from pixdrop.http.resumable import IETF_MARKER, image_header, is_ietf, service, upload_url
from pixdrop.http.state import runtime
from pixdrop.http.wire import body, content_length
from pixdrop.protocols import tus
from pixdrop.services.images import StoredImage
from pixdrop.services.resumable import CHECKSUM_ALGORITHMS, AppendResult, Checksum, Progress

#: Methods ``X-HTTP-Method-Override`` may name.
_OVERRIDABLE = {"HEAD", "PATCH", "DELETE", "POST", "OPTIONS", "GET"}
#: The scope extension of ``http/h1.py`` that reads request trailers after the body.
_TRAILERS = "pixdrop.request_trailers"


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


def _options_headers(max_size: int) -> dict[str, str]:
    return {
        "Tus-Version": tus.VERSION,
        "Tus-Extension": ",".join(tus.EXTENSIONS),
        "Tus-Max-Size": str(max_size),
        "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
    }


async def options(request: Request) -> Response:
    if is_ietf(request):
        return await ietf.options(request)
    return Response(status_code=204, headers=_options_headers(service(request).max_size))


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


def _appended_headers(request: Request, result: AppendResult) -> dict[str, str]:
    """The new offset, the expiry while the upload is unfinished, and the image it made."""
    upload = result.progress.upload
    headers = {"Upload-Offset": str(result.progress.offset)}
    if upload.state.value != "completed":
        headers["Upload-Expires"] = tus.http_date(upload.expires_at)
    headers.update(_stored_headers(request, result.stored))
    return headers


async def head(request: Request, upload_id: str) -> Response:
    if is_ietf(request):
        return await ietf.head(request, upload_id)
    progress = await service(request).progress(upload_id)
    return Response(status_code=200, headers=_progress_headers(request, progress))


_TrailerReader = Callable[[], Checksum | None]


def _checksums(
    request: Request, checksum: tus.BodyChecksum
) -> tuple[Checksum | None, _TrailerReader | None]:
    """The service's ``checksum`` (from the header) or ``trailer_checksum`` (a reader of the
    announced trailer, called after the body); 400 if trailers cannot be read here."""
    if checksum.header is not None:
        return Checksum(checksum.header.algorithm, checksum.header.digest), None
    if not checksum.in_trailer:
        return None, None
    trailers = request.scope.get("extensions", {}).get(_TRAILERS)
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

    return None, read_trailer


async def patch(request: Request, upload_id: str) -> Response:
    if is_ietf(request):
        return await ietf.append(request, upload_id)
    declared = content_length(request)
    parsed = tus.parse_patch(request.headers, declared, CHECKSUM_ALGORITHMS)
    checksum, trailer_checksum = _checksums(request, parsed.checksum)
    result = await service(request).append(
        upload_id,
        offset=parsed.offset,
        body=body(request),
        content_length=declared,
        length=parsed.length,
        checksum=checksum,
        trailer_checksum=trailer_checksum,
    )
    await ietf.check_abandoned(request, result)
    return Response(status_code=204, headers=_appended_headers(request, result))


async def create(request: Request) -> Response:
    if is_ietf(request):
        return await ietf.create(request)
    declared = content_length(request)
    creation = tus.parse_creation(
        request.headers,
        declared,
        mount=runtime(request).settings.tus_path,
        supported=CHECKSUM_ALGORITHMS,
    )
    if creation.metadata and is_true(tus.parse_metadata(creation.metadata).get("private")):
        mark_private()  # Upload-Metadata: private dHJ1ZQ== ("true"), as Uppy sends fields
    if creation.final is not None:
        return await _create_final(request, creation, creation.final)
    if creation.whole:
        return await _create_whole(request, creation)
    return await _create_open(request, creation, declared)


async def _create_final(
    request: Request, creation: tus.TusCreation, partial_ids: tuple[str, ...]
) -> Response:
    """Concatenation: a final upload made of *partial_ids*; its headers as HEAD gives them."""
    resumable = service(request)
    upload, stored = await resumable.create_final(
        protocol="tus",
        partial_ids=list(partial_ids),
        concat=creation.concat,
        metadata=creation.metadata,
        filename=creation.filename,
        content_type=creation.content_type,
        opener=await opener_of(request),
    )
    # The length of a final upload whose partial uploads are unfinished is the service's.
    progress = await resumable.progress(upload.id)
    headers = {"Location": upload_url(request, upload.id)}
    headers.update(_progress_headers(request, progress))
    headers.pop("Cache-Control")
    headers.update(_stored_headers(request, stored))
    return Response(status_code=201, headers=headers)


async def _create_whole(request: Request, creation: tus.TusCreation) -> Response:
    """The whole upload in this request: one transaction records it with its image."""
    assert creation.length is not None  # whole: a stated length equal to Content-Length
    checksum, trailer_checksum = _checksums(request, creation.checksum)
    result = await service(request).create_whole(
        protocol="tus",
        length=creation.length,
        body=body(request),
        metadata=creation.metadata,
        filename=creation.filename,
        content_type=creation.content_type,
        checksum=checksum,
        trailer_checksum=trailer_checksum,
        opener=await opener_of(request),
    )
    await ietf.check_abandoned(request, result)
    location = upload_url(request, result.progress.upload.id)
    headers = {"Location": location, **_appended_headers(request, result)}
    return Response(status_code=201, headers=headers)


async def _create_open(
    request: Request, creation: tus.TusCreation, declared: int | None
) -> Response:
    """An upload that more requests complete; the body's data, if any, goes in at 0."""
    checksum, trailer_checksum = _checksums(request, creation.checksum)
    resumable = service(request)
    upload = await resumable.create(
        protocol="tus",
        length=creation.length,
        metadata=creation.metadata,
        filename=creation.filename,
        content_type=creation.content_type,
        partial=creation.partial,
        opener=await opener_of(request),
    )
    headers = {
        "Location": upload_url(request, upload.id),
        "Upload-Expires": tus.http_date(upload.expires_at),
        "Upload-Offset": "0",
    }
    if creation.with_data:
        result = await resumable.append(
            upload.id,
            offset=0,
            body=body(request),
            content_length=declared,
            checksum=checksum,
            trailer_checksum=trailer_checksum,
        )
        await ietf.check_abandoned(request, result)
        headers["Upload-Offset"] = str(result.progress.offset)
        headers.update(_stored_headers(request, result.stored))
    return Response(status_code=201, headers=headers)


async def terminate(request: Request, upload_id: str) -> Response:
    if is_ietf(request):
        return await ietf.cancel(request, upload_id)
    await service(request).terminate(upload_id)
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
