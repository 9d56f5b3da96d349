"""The IETF resumable-upload draft (interop versions 3 to 8) on tus's URL space; see docs/ietf.md.

A request under the tus mount that carries ``Upload-Draft-Interop-Version`` is this module's:
``http/tus.py`` hands it over at the top of each handler (and ``TusMiddleware`` leaves it
alone). The draft's rules per version live in ``protocols/ietf*.py``: ``ietf_requests`` reads
a request into one value (``Creation``, ``Append``, ``Bare``), ``ietf_responses`` writes the
answers and translates errors; the upload's rules live in ``services/resumable.py``. Here: one
read, the service call, the answer, and the one ``104 (Upload Resumption Supported)`` on
creation where the server can send it.
"""

from __future__ import annotations

from contextlib import suppress

from fastapi import Request, Response

from pixdrop.errors import BodyEnded, ClientGone
from pixdrop.http.direct import opener_of
from pixdrop.http.resumable import image_header, service, upload_url
from pixdrop.http.wire import body, content_length
from pixdrop.models import Upload, UploadState
from pixdrop.protocols import ietf_requests, ietf_responses
from pixdrop.protocols.ietf import INTEROP_HEADER
from pixdrop.services.resumable import AppendResult, Checksum, Progress, ResumableService

#: The scope extension of ``http/h1.py`` that sends a 1xx before the final response.
INFORMATIONAL = "pixdrop.informational"


def _limit(resumable: ResumableService, version: int, upload: Upload | None = None) -> str | None:
    """``Upload-Limit``: the largest image and, while *upload* receives, its remaining life."""
    age = None
    if upload is not None and upload.state is UploadState.RECEIVING:
        age = ietf_responses.seconds_left(upload.expires_at, resumable.clock())
    return ietf_responses.format_upload_limit(resumable.max_size, version=version, max_age=age)


async def _informational(request: Request, headers: dict[str, str]) -> None:
    """Send a 104 with *headers* if the server can (``http/h1.py`` on HTTP/1.1); else none."""
    send = request.scope.get("extensions", {}).get(INFORMATIONAL)
    if send is None:
        return
    fields = [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()
    ]
    with suppress(RuntimeError):  # the final response started: too late, and harmless
        await send(ietf_responses.STATUS_UPLOAD_RESUMPTION_SUPPORTED, fields)


def _image_headers(request: Request, result: AppendResult | Progress) -> dict[str, str]:
    """``Pixdrop-Image`` (as tus sends it) and ``Repr-Digest`` of a completed upload's image;
    ``Pixdrop-Delete-Token`` on the response that stored it (the only time it is known)."""
    stored = result.stored if isinstance(result, AppendResult) else None
    progress = result.progress if isinstance(result, AppendResult) else result
    image = stored.image if stored is not None else progress.image
    if image is None:
        return {}
    headers = {"Pixdrop-Image": image_header(request, image.id)}
    headers.update(ietf_responses.repr_digest_header(image.sha256))
    if stored is not None and stored.delete_token:
        headers["Pixdrop-Delete-Token"] = stored.delete_token
    return headers


async def check_abandoned(request: Request, result: AppendResult) -> None:
    """An append cut short because its client went away keeps what arrived, but nobody is
    left to read an answer: raise ``ClientGone``, so that the access log says 499 (as for a
    native chunk cut short) and not the success that was never delivered. An append that
    stopped for idleness, or for a newer request, is answered as usual.

    The body's own idle deadline (``metering.Body``) and the connection guard's
    (``http/connections.py``) are equal; when the body's fires first, the guard ends the body
    a moment later, and the first ``receive`` after that raises ``BodyEnded``: the client is
    idle, not gone."""
    if not result.interrupted:
        return
    try:
        gone = await request.is_disconnected()
    except BodyEnded:
        gone = False
    if gone:
        raise ClientGone


async def _append(
    request: Request,
    upload_id: str,
    sent: ietf_requests.Append,
    declared: int | None,
) -> AppendResult:
    """Append the request body as *sent* says, errors as the draft wants them."""
    resumable = service(request)
    version = sent.version
    with ietf_responses.spoken(
        version,
        appending_bytes=declared != 0,
        limit=_limit(resumable, version),
        length_errors=True,
    ):
        result = await resumable.append(
            upload_id,
            offset=sent.offset,
            body=body(request),
            content_length=declared,
            length=sent.length,
            # Up to interop 6, reaching the known length completes the upload whatever the
            # completeness field says: tus-js-client (versions 5 and 6) sends ?0 on a last
            # chunk shorter than its chunk size. From 7 on, only ?1 completes.
            complete=True if sent.complete else (False if version >= 7 else None),
            checksum=Checksum(*sent.checksum) if sent.checksum is not None else None,
        )
    await check_abandoned(request, result)
    return result


def _answer(
    request: Request,
    version: int,
    result: AppendResult,
    *,
    location: str | None = None,
    limit: str | None = None,
) -> Response:
    """The final response to a fully received creation (*location* set) or append."""
    progress = result.progress
    done = progress.upload.state is UploadState.COMPLETED
    headers = ietf_responses.upload_response_headers(
        version, offset=progress.offset or 0, complete=done, location=location, limit=limit
    )
    headers.update(_image_headers(request, result))
    status = ietf_responses.success_status(version, creating=location is not None, complete=done)
    return Response(status_code=status, headers=headers)


async def options(request: Request) -> Response:
    """``OPTIONS`` on the mount or an upload: ``Accept-Patch`` and ``Upload-Limit``."""
    version = ietf_requests.read_bare(request.headers, "OPTIONS").version
    limit = _limit(service(request), version)
    return Response(status_code=204, headers=ietf_responses.options_headers(version, limit=limit))


async def create(request: Request) -> Response:
    """``POST`` to the mount: create the upload, announce it (104), append the body at 0."""
    declared = content_length(request)
    creation = ietf_requests.read_creation(request.headers, declared)
    version, resumable = creation.version, service(request)
    with ietf_responses.spoken(version, limit=_limit(resumable, version)):
        upload = await resumable.create(
            protocol="ietf",
            length=creation.length,
            filename=creation.filename,
            content_type=creation.content_type,
            sha256=creation.sha256,
            opener=await opener_of(request),
        )
    location = upload_url(request, upload.id)
    limit = _limit(resumable, version, upload)
    # Before reading the body: a client whose transfer breaks can resume from here on.
    await _informational(
        request, ietf_responses.interim_headers(version, location=location, limit=limit)
    )
    body_at_start = ietf_requests.Append(
        version, offset=0, complete=creation.complete, length=None, checksum=creation.checksum
    )
    result = await _append(request, upload.id, body_at_start, declared)
    limit = _limit(resumable, version, result.progress.upload)  # no lifetime once complete
    return _answer(request, version, result, location=location, limit=limit)


async def head(request: Request, upload_id: str) -> Response:
    """``HEAD`` on an upload: offset retrieval (204, never cached)."""
    version = ietf_requests.read_bare(request.headers, "HEAD").version
    resumable = service(request)
    with ietf_responses.spoken(version):
        # The offset must be the one the next append is held to: stop a writer still at it.
        progress = await resumable.progress(upload_id, settle=True)
    headers = ietf_responses.offset_retrieval_headers(
        version,
        offset=progress.offset or 0,
        complete=progress.upload.state is UploadState.COMPLETED,
        length=progress.length,
        limit=_limit(resumable, version, progress.upload),
    )
    headers.update(_image_headers(request, progress))
    return Response(status_code=204, headers=headers)


async def append(request: Request, upload_id: str) -> Response:
    """``PATCH`` on an upload: append the body at ``Upload-Offset``."""
    declared = content_length(request)
    sent = ietf_requests.read_append(request.headers, declared)
    result = await _append(request, upload_id, sent, declared)
    return _answer(request, sent.version, result)


async def cancel(request: Request, upload_id: str) -> Response:
    """``DELETE`` on an upload: forget it and free its bytes; always 204 (tus-js-client
    accepts nothing else)."""
    version = ietf_requests.read_bare(request.headers, "DELETE").version
    with ietf_responses.spoken(version):
        await service(request).terminate(upload_id)
    return Response(status_code=204, headers={INTEROP_HEADER: str(version)})
