"""The IETF resumable-upload draft (interop versions 3 to 8) on tus's URL space; see docs/ietf.md.

A request under the tus mount that carries ``Upload-Draft-Interop-Version`` is this module's:
``http/tus.py`` hands it over at the top of each handler (and ``TusMiddleware`` leaves it
alone). The draft's rules per version live in ``protocols/ietf*.py``; the upload's in
``services/resumable.py``. Here: headers in, service calls, headers out, and the one
``104 (Upload Resumption Supported)`` on creation where the server can send it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from fastapi import Request, Response

from pixdrop.errors import PixdropError
from pixdrop.http import tus
from pixdrop.http.state import runtime
from pixdrop.http.wire import content_length
from pixdrop.models import Upload, UploadState
from pixdrop.protocols import ietf, ietf_requests, ietf_responses
from pixdrop.services.appends import AppendResult, Checksum, Progress
from pixdrop.services.resumable import ResumableService

#: The scope extension of ``http/h1.py`` that sends a 1xx before the final response.
INFORMATIONAL = "pixdrop.informational"


def _service(request: Request) -> ResumableService:
    return runtime(request).resumable


def _version(request: Request) -> int:
    """The request's interop version (400 if pixdrop does not speak it)."""
    version = ietf.interop_version(request.headers)
    if version is None:  # tus.py dispatches on the header's presence
        raise AssertionError("not an IETF resumable-upload request")
    return version


@contextmanager
def _speaking(
    version: int,
    *,
    appending_bytes: bool = False,
    limit: str | None = None,
    length_errors: bool = False,
) -> Iterator[None]:
    """Turn the errors raised inside into what an IETF client of *version* should see."""
    try:
        yield
    except PixdropError as exc:
        error = ietf_responses.translate_error(
            exc,
            version,
            appending_bytes=appending_bytes,
            limit=limit,
            length_errors=length_errors,
        )
        if error is exc:
            raise
        raise error from exc


def _limit(request: Request, version: int, upload: Upload | None = None) -> str | None:
    """``Upload-Limit``: the largest image and, while *upload* receives, its remaining life."""
    service = _service(request)
    age = None
    if upload is not None and upload.state is UploadState.RECEIVING:
        age = ietf_responses.seconds_left(upload.expires_at, service.clock())
    return ietf_responses.format_upload_limit(service.max_size, version=version, max_age=age)


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
    headers = {"Pixdrop-Image": tus.image_header(request, image.id)}
    headers.update(ietf_responses.repr_digest_header(image.sha256))
    if stored is not None and stored.delete_token:
        headers["Pixdrop-Delete-Token"] = stored.delete_token
    return headers


async def _append(
    request: Request,
    version: int,
    upload_id: str,
    *,
    offset: int,
    complete: bool,
    length: int | None,
    checksum: tuple[str, bytes] | None,
) -> AppendResult:
    """Append the request body at *offset* (creation: 0), errors as the draft wants them."""
    declared = content_length(request)
    with _speaking(
        version,
        appending_bytes=declared != 0,
        limit=_limit(request, version),
        length_errors=True,
    ):
        result = await _service(request).append(
            upload_id,
            offset=offset,
            body=request.stream(),
            content_length=declared,
            length=length,
            # Up to interop 6, reaching the known length completes the upload whatever the
            # completeness field says: tus-js-client (versions 5 and 6) sends ?0 on a last
            # chunk shorter than its chunk size. From 7 on, only ?1 completes.
            complete=True if complete else (False if version >= 7 else None),
            checksum=Checksum(*checksum) if checksum is not None else None,
        )
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
    version = _version(request)
    headers = ietf_responses.options_headers(version, limit=_limit(request, version))
    return Response(status_code=204, headers=headers)


async def create(request: Request) -> Response:
    """``POST`` to the mount: create the upload, announce it (104), append the body at 0."""
    version = _version(request)
    with _speaking(version, limit=_limit(request, version)):
        creation = ietf_requests.parse_creation(request.headers, version, content_length(request))
        upload = await _service(request).create(
            protocol="ietf",
            length=creation.length,
            filename=creation.filename,
            content_type=creation.content_type,
            sha256=creation.sha256,
        )
    location = tus.upload_url(request, upload.id)
    limit = _limit(request, version, upload)
    # Before reading the body: a client whose transfer breaks can resume from here on.
    await _informational(
        request, ietf_responses.interim_headers(version, location=location, limit=limit)
    )
    result = await _append(
        request,
        version,
        upload.id,
        offset=0,
        complete=creation.complete,
        length=None,
        checksum=creation.checksum,
    )
    limit = _limit(request, version, result.progress.upload)  # no lifetime once complete
    return _answer(request, version, result, location=location, limit=limit)


async def head(request: Request, upload_id: str) -> Response:
    """``HEAD`` on an upload: offset retrieval (204, never cached)."""
    version = _version(request)
    with _speaking(version):
        ietf_requests.check_no_upload_fields(request.headers, version, "HEAD")
        # The offset must be the one the next append is held to: stop a writer still at it.
        progress = await _service(request).progress(upload_id, settle=True)
    headers = ietf_responses.offset_retrieval_headers(
        version,
        offset=progress.offset or 0,
        complete=progress.upload.state is UploadState.COMPLETED,
        length=progress.length,
        limit=_limit(request, version, progress.upload),
    )
    headers.update(_image_headers(request, progress))
    return Response(status_code=204, headers=headers)


async def append(request: Request, upload_id: str) -> Response:
    """``PATCH`` on an upload: append the body at ``Upload-Offset``."""
    version = _version(request)
    with _speaking(version):
        patch = ietf_requests.parse_append(request.headers, version, content_length(request))
    result = await _append(
        request,
        version,
        upload_id,
        offset=patch.offset,
        complete=patch.complete,
        length=patch.length,
        checksum=patch.checksum,
    )
    return _answer(request, version, result)


async def cancel(request: Request, upload_id: str) -> Response:
    """``DELETE`` on an upload: forget it and free its bytes; always 204 (tus-js-client
    accepts nothing else)."""
    version = _version(request)
    with _speaking(version):
        ietf_requests.check_no_upload_fields(request.headers, version, "DELETE")
        await _service(request).terminate(upload_id)
    return Response(status_code=204, headers={ietf.INTEROP_HEADER: str(version)})
