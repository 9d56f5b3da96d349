"""IETF resumable uploads: the header fields of pixdrop's answers, and its errors per version.

Sans-I/O like ``protocols/ietf.py`` (which reads the requests): everything returns header
dicts, status codes or ``PixdropError``s. Every header dict carries the request's
``Upload-Draft-Interop-Version``, as the drafts ask for 104s and pixdrop does everywhere.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Final

from pixdrop.errors import (
    ChecksumMismatch,
    CompletedUpload,
    DigestMismatch,
    InconsistentUploadLength,
    InvalidResumableRequest,
    MismatchingUploadOffset,
    OffsetMismatch,
    PayloadTooLarge,
    PixdropError,
    UnprocessableImage,
    UploadExpired,
    UploadNotFound,
    UploadNotReceiving,
)
from pixdrop.protocols import sfv
from pixdrop.protocols.ietf import (
    INTEROP_HEADER,
    PARTIAL_UPLOAD,
    UPLOAD_COMPLETE,
    UPLOAD_INCOMPLETE,
    UPLOAD_LENGTH,
    UPLOAD_LIMIT,
    UPLOAD_OFFSET,
    features,
)

#: The interim status announcing the upload resource ("Upload Resumption Supported").
STATUS_UPLOAD_RESUMPTION_SUPPORTED: Final = 104


def _version_header(version: int) -> dict[str, str]:
    return {INTEROP_HEADER: str(version)}


def completion_headers(complete: bool, version: int) -> dict[str, str]:
    """The completeness field: ``Upload-Incomplete: ?1/?0`` (interop 3) or
    ``Upload-Complete: ?0/?1`` (4 on)."""
    if version == 3:
        return {UPLOAD_INCOMPLETE: sfv.format_sf_boolean(not complete)}
    features(version)
    return {UPLOAD_COMPLETE: sfv.format_sf_boolean(complete)}


def format_upload_limit(
    max_size: int | None = None,
    *,
    version: int,
    min_size: int | None = None,
    max_append_size: int | None = None,
    min_append_size: int | None = None,
    max_age: int | None = None,
) -> str | None:
    """The ``Upload-Limit`` value (an sf-dictionary of integers); ``None`` before interop 6,
    which had no such field. *max_age* is the upload's remaining lifetime in seconds:
    ``expires`` in interop 6, ``max-age`` from 7. No limits at all gives ``min-size=0``, as
    the drafts ask instead of an empty value."""
    age_key = features(version).age_key
    if age_key is None:
        return None
    members: dict[str, int] = {}
    for key, value in (
        ("max-size", max_size),
        ("min-size", min_size),
        ("max-append-size", max_append_size),
        ("min-append-size", min_append_size),
        (age_key, max_age),
    ):
        if value is not None:
            if value < 0:
                raise ValueError(f"Upload-Limit {key} must not be negative, got {value}")
            members[key] = value
    return sfv.format_sf_dictionary(members or {"min-size": 0})


def seconds_left(expires_at: datetime, now: datetime) -> int:
    """Whole seconds until *expires_at* (never negative), for ``max-age`` / ``expires``."""
    return max(0, int((expires_at - now).total_seconds()))


def interim_headers(
    version: int,
    *,
    location: str | None = None,
    offset: int | None = None,
    limit: str | None = None,
) -> dict[str, str]:
    """Headers of a ``104 (Upload Resumption Supported)``.

    The creation's 104 announces the upload resource: *location* and, from interop 6,
    *limit*. Progress 104s carry *offset* only, never ``Location``.
    """
    headers = _version_header(version)
    if location is not None:
        headers["Location"] = location
        if limit is not None and features(version).upload_limit:
            headers[UPLOAD_LIMIT] = limit
    if offset is not None:
        headers[UPLOAD_OFFSET] = sfv.format_sf_integer(offset)
    return headers


def success_status(version: int, *, creating: bool, complete: bool) -> int:
    """Status of a fully received creation or append: 201 when it created the upload or
    completed it (the image is stored); an incomplete append gets 201 up to interop 6 (the
    drafts say so) and 204 from 7 on."""
    if complete or creating:
        return 201
    return features(version).incomplete_append_status


def upload_response_headers(
    version: int,
    *,
    offset: int,
    complete: bool,
    location: str | None = None,
    limit: str | None = None,
) -> dict[str, str]:
    """Headers of a successful creation or append: ``Upload-Offset`` (interop 3 to 6 require
    it; tus-js-client reads it in every mode), completeness, *location* (creation) and
    *limit* (interop 6 on)."""
    headers = _version_header(version)
    headers[UPLOAD_OFFSET] = sfv.format_sf_integer(offset)
    headers.update(completion_headers(complete, version))
    if location is not None:
        headers["Location"] = location
    if limit is not None and features(version).upload_limit:
        headers[UPLOAD_LIMIT] = limit
    return headers


def offset_retrieval_headers(
    version: int,
    *,
    offset: int,
    complete: bool,
    length: int | None = None,
    limit: str | None = None,
) -> dict[str, str]:
    """Headers answering ``HEAD`` on an upload (204): ``Upload-Offset``, completeness,
    ``Upload-Length`` once known, ``Upload-Limit`` (interop 6 on) and ``no-store``."""
    headers = _version_header(version)
    headers[UPLOAD_OFFSET] = sfv.format_sf_integer(offset)
    headers.update(completion_headers(complete, version))
    if length is not None:
        headers[UPLOAD_LENGTH] = sfv.format_sf_integer(length)
    if limit is not None and features(version).upload_limit:
        headers[UPLOAD_LIMIT] = limit
    headers["Cache-Control"] = "no-store"
    return headers


def options_headers(version: int, *, limit: str | None = None) -> dict[str, str]:
    """Headers of ``OPTIONS``: ``Accept-Patch`` with ``application/partial-upload`` (required
    from interop 8, harmless before) and ``Upload-Limit`` (interop 6 on)."""
    headers = _version_header(version)
    headers["Accept-Patch"] = PARTIAL_UPLOAD
    if limit is not None and features(version).upload_limit:
        headers[UPLOAD_LIMIT] = limit
    return headers


def repr_digest_header(sha256_hex: str) -> dict[str, str]:
    """``Repr-Digest`` (RFC 9530) of the uploaded bytes, from their sha-256 in hex."""
    encoded = base64.b64encode(bytes.fromhex(sha256_hex)).decode()
    return {"Repr-Digest": f"sha-256=:{encoded}:"}


# --- errors ---------------------------------------------------------------------------------


def error_headers(
    version: int, *, offset: int | None = None, complete: bool = False
) -> dict[str, str]:
    """Headers of an error: the interop version, completeness (``?0``: the answer is about
    the transfer, not the image's processing) and, when known, ``Upload-Offset`` (required
    on failures up to interop 6, e.g. on 409)."""
    headers = _version_header(version)
    headers.update(completion_headers(complete, version))
    if offset is not None:
        headers[UPLOAD_OFFSET] = sfv.format_sf_integer(offset)
    return headers


def mismatch_error(expected: int, provided: int, version: int) -> MismatchingUploadOffset:
    """409 for an append at the wrong offset: ``Upload-Offset: <expected>`` and the problem
    members ``expected-offset`` and ``provided-offset`` (defined from interop 6; sent to all)."""
    error = MismatchingUploadOffset(
        f"{UPLOAD_OFFSET} is {provided}, but the upload has {expected} bytes; "
        f"send from offset {expected}.",
        **{"expected-offset": expected, "provided-offset": provided},
    )
    error.headers.update(error_headers(version, offset=expected))
    return error


def completed_error(version: int, *, length: int, appending_bytes: bool) -> PixdropError:
    """400 for an append to a completed upload: interop 8 counts a non-empty body as an
    inconsistent length, everything else is the completed-upload problem. Completeness
    ``?1`` tells the client the upload is done."""
    detail = f"The upload is complete ({length} bytes) and takes no more data."
    error: PixdropError
    if appending_bytes and version >= 8:
        error = InconsistentUploadLength(detail, **{"upload-length": length})
    else:
        error = CompletedUpload(detail, **{"upload-length": length})
    error.headers.update(error_headers(version, offset=length, complete=True))
    return error


def _retyped(error: PixdropError, cls: type[PixdropError]) -> PixdropError:
    """*error* as a *cls*, with its detail, members and headers."""
    other = cls(error.detail, **error.extra)
    other.headers.update(error.headers)
    return other


def _about_length(error: PixdropError) -> bool:
    """The service's ``append`` raises plain ``InvalidResumableRequest`` only about lengths
    (a changed one, a completion short of it); a ``PayloadTooLarge`` naming ``upload_length``
    is a body that runs past the known length."""
    if type(error) is InvalidResumableRequest:
        return True
    return isinstance(error, PayloadTooLarge) and error.extra.get("limit") == "upload_length"


def translate_error(
    error: PixdropError,
    version: int,
    *,
    appending_bytes: bool = False,
    limit: str | None = None,
    length_errors: bool = False,
) -> PixdropError:
    """The error an IETF client should see for *error*, raised while serving its request.

    * ``OffsetMismatch`` (409) becomes ``mismatch_error`` (from its ``offset`` and
      ``provided_offset`` members);
    * ``UploadNotReceiving`` (the upload is complete) becomes ``completed_error``;
    * with *length_errors* (errors of the service's ``append``), length errors become
      ``InconsistentUploadLength`` (400);
    * ``UploadExpired`` (410) is 404 up to interop 6, which answer inactive uploads so;
    * ``ChecksumMismatch`` (tus's 460, for ``Content-Digest``) becomes ``DigestMismatch`` (400);
    * ``PayloadTooLarge`` (413) gains ``Upload-Limit`` (pass *limit*);
    * ``UnprocessableImage`` (422) says ``Upload-Complete: ?1``: the upload is done and
      resuming cannot help;
    * every error gains the interop version, completeness ``?0`` and any known offset.
    """
    offset = error.extra.get("offset")
    known = offset if type(offset) is int and offset >= 0 else None
    provided = error.extra.get("provided_offset")
    mismatch = isinstance(error, OffsetMismatch) and not isinstance(error, MismatchingUploadOffset)
    if mismatch and known is not None and type(provided) is int:
        return mismatch_error(known, provided, version)
    if isinstance(error, UploadNotReceiving) and known is not None:
        return completed_error(version, length=known, appending_bytes=appending_bytes)
    if length_errors and _about_length(error):
        error = _retyped(error, InconsistentUploadLength)
    elif isinstance(error, UploadExpired) and version <= 6:
        error = _retyped(error, UploadNotFound)
    elif isinstance(error, ChecksumMismatch):
        error = _retyped(error, DigestMismatch)
    if isinstance(error, PayloadTooLarge) and limit and features(version).upload_limit:
        error.headers[UPLOAD_LIMIT] = limit
    complete = isinstance(error, UnprocessableImage)
    for name, value in error_headers(version, offset=known, complete=complete).items():
        error.headers.setdefault(name, value)
    return error


@contextmanager
def spoken(
    version: int,
    *,
    appending_bytes: bool = False,
    limit: str | None = None,
    length_errors: bool = False,
) -> Iterator[None]:
    """Raise the ``PixdropError``s raised inside as ``translate_error`` has an IETF client of
    *version* see them (the keywords are its own)."""
    try:
        yield
    except PixdropError as exc:
        error = translate_error(
            exc,
            version,
            appending_bytes=appending_bytes,
            limit=limit,
            length_errors=length_errors,
        )
        if error is exc:
            raise
        raise error from exc
