"""IETF "Resumable Uploads for HTTP" (draft-ietf-httpbis-resumable-upload): versions, fields.

Sans-I/O: these functions read header values (a ``Mapping[str, str]`` such as Starlette's
``Headers``) and return values or raise ``PixdropError``s. This module reads single fields;
``ietf_requests`` reads whole requests, ``ietf_responses`` writes the answers, and
``http/ietf.py`` ties them to ``services/resumable.py``. What each interop version asks of a
server (docs/ietf.md has more):

=========  ===========  ==================================================================
interop    drafts       what changed for a server
=========  ===========  ==================================================================
3          -01          ``Upload-Incomplete`` (sf-boolean, true = more to come)
4          -02          ``Upload-Complete`` replaces it (true = this request ends the upload)
5          -03          200 allowed for HEAD; progress 104s with ``Upload-Offset``
6          -04, -05     PATCH needs ``application/partial-upload``; ``Upload-Limit``
                        (lifetime ``expires``); IANA problem types; ``Upload-Length``
7          -06 to -08   ``expires`` is ``max-age``; inconsistent-length problem; an append
                        must say ``Upload-Complete``; incomplete appends get any 2xx
8          -09 to -11   limits must be announced; OPTIONS answers ``Accept-Patch``
=========  ===========  ==================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from pixdrop.errors import (
    InconsistentUploadLength,
    InvalidDigest,
    InvalidResumableRequest,
    UnsupportedMediaType,
)
from pixdrop.protocols import sfv

INTEROP_HEADER: Final = "Upload-Draft-Interop-Version"
#: Interop versions pixdrop speaks. 9 (announced after draft -11) waits for its text.
SUPPORTED_VERSIONS: Final = frozenset({3, 4, 5, 6, 7, 8})
#: Draft revisions of draft-ietf-httpbis-resumable-upload per interop version.
DRAFTS: Final[Mapping[int, tuple[str, ...]]] = {
    3: ("01",),
    4: ("02",),
    5: ("03",),
    6: ("04", "05"),
    7: ("06", "07", "08"),
    8: ("09", "10", "11"),
}
#: The media type of an append body (required from interop 6 on).
PARTIAL_UPLOAD: Final = "application/partial-upload"

UPLOAD_OFFSET: Final = "Upload-Offset"
UPLOAD_COMPLETE: Final = "Upload-Complete"
UPLOAD_INCOMPLETE: Final = "Upload-Incomplete"
UPLOAD_LENGTH: Final = "Upload-Length"
UPLOAD_LIMIT: Final = "Upload-Limit"


@dataclass(frozen=True, slots=True)
class Features:
    """What one interop version asks of a server (see the module docstring)."""

    version: int
    #: ``Upload-Incomplete`` (3: true while more is to come) or ``Upload-Complete`` (4 on).
    complete_field: str
    #: An append body must be ``application/partial-upload``.
    partial_upload_required: bool
    #: ``Upload-Limit`` exists; ``age_key`` names its lifetime member.
    upload_limit: bool
    age_key: str | None
    #: Status of a successful append that does not complete the upload.
    incomplete_append_status: int
    #: HEAD and DELETE carrying upload fields are refused with 400.
    refuses_fields_on_head_and_delete: bool
    #: An append may leave out the completeness field, meaning "this ends the upload".
    complete_optional_on_append: bool
    #: A malformed ``Upload-Length`` is ignored rather than refused.
    ignores_malformed_fields: bool


def features(version: int) -> Features:
    """The rules of interop *version* (one of ``SUPPORTED_VERSIONS``)."""
    if version not in SUPPORTED_VERSIONS:
        raise ValueError(f"interop version {version} is not supported")
    return Features(
        version=version,
        complete_field=UPLOAD_INCOMPLETE if version == 3 else UPLOAD_COMPLETE,
        partial_upload_required=version >= 6,
        upload_limit=version >= 6,
        age_key=None if version < 6 else "expires" if version == 6 else "max-age",
        incomplete_append_status=201 if version <= 6 else 204,
        refuses_fields_on_head_and_delete=version <= 6,
        complete_optional_on_append=version <= 6,
        ignores_malformed_fields=version >= 7,
    )


def field(headers: Mapping[str, str], name: str) -> str | None:
    """One field's value, its lines joined by ``, `` (RFC 9110 5.3); ``None`` if absent.

    Starlette's ``Headers.get`` returns the first line only, which would hide a repeated
    ``Upload-Offset``; ``getlist`` is used when the mapping has one.
    """
    getlist = getattr(headers, "getlist", None)
    if callable(getlist):
        values = [str(v) for v in getlist(name)]
    else:
        lowered = name.lower()
        values = [v for k, v in headers.items() if k.lower() == lowered]
    return ", ".join(values) if values else None


# --- versions -------------------------------------------------------------------------------


def parse_interop_version(value: str) -> int:
    """The ``Upload-Draft-Interop-Version`` value; 400 if it is not one pixdrop speaks."""
    supported = sorted(SUPPORTED_VERSIONS)
    spoken = (
        f"pixdrop speaks interop versions {supported[0]} to {supported[-1]} "
        f"(draft-ietf-httpbis-resumable-upload -{DRAFTS[supported[0]][0]} to "
        f"-{DRAFTS[supported[-1]][-1]})"
    )
    try:
        version = sfv.parse_sf_integer(value)
    except sfv.StructuredFieldError:
        raise InvalidResumableRequest(
            f"{INTEROP_HEADER} must be an integer, got {value!r}; {spoken}.",
            header=INTEROP_HEADER,
            supported=supported,
        ) from None
    if version not in SUPPORTED_VERSIONS:
        raise InvalidResumableRequest(
            f"{INTEROP_HEADER} {version} is not spoken here; {spoken}.",
            header=INTEROP_HEADER,
            supported=supported,
            provided=version,
        )
    return version


def interop_version(headers: Mapping[str, str]) -> int | None:
    """The request's interop version, or ``None`` when it is not an IETF draft request."""
    value = field(headers, INTEROP_HEADER)
    return None if value is None else parse_interop_version(value)


# --- fields ---------------------------------------------------------------------------------


def _malformed(name: str, value: str, want: str) -> InvalidResumableRequest:
    return InvalidResumableRequest(
        f"{name} must be {want}, got {value!r}.", header=name, value=value
    )


def _non_negative(headers: Mapping[str, str], name: str) -> int | None:
    value = field(headers, name)
    if value is None:
        return None
    malformed = _malformed(name, value, "a non-negative integer (sf-integer)")
    try:
        number = sfv.parse_sf_integer(value)
    except sfv.StructuredFieldError:
        raise malformed from None
    if number < 0:
        raise malformed
    return number


def upload_offset(headers: Mapping[str, str]) -> int | None:
    """``Upload-Offset`` (sf-integer >= 0), ``None`` if absent; 400 if malformed."""
    return _non_negative(headers, UPLOAD_OFFSET)


def upload_length(headers: Mapping[str, str], version: int) -> int | None:
    """``Upload-Length`` (sf-integer >= 0), ``None`` if absent. A malformed value is refused
    (400) up to interop 6 and ignored from 7 on, as those drafts require."""
    try:
        return _non_negative(headers, UPLOAD_LENGTH)
    except InvalidResumableRequest:
        if features(version).ignores_malformed_fields:
            return None
        raise


def upload_complete(headers: Mapping[str, str], version: int) -> bool | None:
    """Does the request say this body ends the upload? ``None`` when it does not say.

    Interop 3 reads ``Upload-Incomplete`` (inverted), later versions ``Upload-Complete``;
    the other version's field is ignored. A non-boolean is refused (400) in every version.
    """
    name = features(version).complete_field
    value = field(headers, name)
    if value is None:
        return None
    try:
        flag = sfv.parse_sf_boolean(value)
    except sfv.StructuredFieldError:
        raise _malformed(name, value, "?1 or ?0 (sf-boolean)") from None
    return not flag if version == 3 else flag


def creation_completes(headers: Mapping[str, str], version: int) -> bool:
    """Completeness of a creation request; the field is required from interop 4 on.

    Interop 3 counts an upload complete when ``Upload-Incomplete`` is "omitted or set to
    false", so there its absence means the body is the whole upload.
    """
    complete = upload_complete(headers, version)
    if complete is not None:
        return complete
    if version == 3:
        return True
    raise InvalidResumableRequest(
        f"Creating a resumable upload needs {UPLOAD_COMPLETE}: ?1 (the body is the whole "
        f"upload) or {UPLOAD_COMPLETE}: ?0 (more follows in PATCH requests).",
        header=UPLOAD_COMPLETE,
    )


def append_completes(headers: Mapping[str, str], version: int) -> bool:
    """Completeness of an append; up to interop 6 a missing field means "this is the end"."""
    complete = upload_complete(headers, version)
    if complete is not None:
        return complete
    if features(version).complete_optional_on_append:
        return True
    raise InvalidResumableRequest(
        f"An append needs {UPLOAD_COMPLETE}: ?1 (this body ends the upload) or "
        f"{UPLOAD_COMPLETE}: ?0 (more follows).",
        header=UPLOAD_COMPLETE,
    )


def media_type(content_type: str | None) -> str | None:
    """The bare media type of a ``Content-Type`` value, lower case; ``None`` if empty."""
    bare = (content_type or "").split(";", 1)[0].strip().lower()
    return bare or None


def check_append_content_type(content_type: str | None, version: int) -> None:
    """From interop 6 on an append body must be ``application/partial-upload`` (parameters and
    case aside): else 415 with ``Accept-Patch`` (RFC 5789 2.2). Before, anything goes."""
    if not features(version).partial_upload_required:
        return
    if media_type(content_type) == PARTIAL_UPLOAD:
        return
    error = UnsupportedMediaType(
        f"An append (PATCH) must have Content-Type: {PARTIAL_UPLOAD}, "
        f"got {content_type or 'none'}.",
        accepted=[PARTIAL_UPLOAD],
    )
    error.headers["Accept-Patch"] = PARTIAL_UPLOAD
    raise error


#: RFC 9530 algorithms pixdrop checks: hashlib name and digest size.
_DIGESTS: Final = {"sha-256": ("sha256", 32), "sha-512": ("sha512", 64)}


def _digest(
    headers: Mapping[str, str], name: str, keys: tuple[str, ...]
) -> tuple[str, bytes] | None:
    """The first of *keys* in the digest field *name*: ``(hashlib name, digest)``. Other
    algorithms are ignored, as RFC 9530 allows, so a field naming none of *keys* (e.g. only
    ``sha=``) is ignored as a whole. A malformed field or value is a 400."""
    value = field(headers, name)
    if value is None:
        return None
    malformed = InvalidDigest(
        f"{name} is malformed: expected e.g. sha-256=:<base64 digest>: (RFC 9530).", header=name
    )
    try:
        members = sfv.parse_sf_dictionary(value)
    except sfv.StructuredFieldError:
        raise malformed from None
    for key in keys:
        if key in members:
            digest, (algorithm, size) = members[key][0], _DIGESTS[key]
            if not isinstance(digest, bytes) or len(digest) != size:
                raise malformed
            return algorithm, digest
    return None


def repr_digest(headers: Mapping[str, str]) -> str | None:
    """The sha-256 (hex) in ``Repr-Digest``: the whole upload's, announced at creation and
    checked by the service on completion (the only algorithm it checks)."""
    found = _digest(headers, "Repr-Digest", ("sha-256",))
    return None if found is None else found[1].hex()


def content_digest(headers: Mapping[str, str]) -> tuple[str, bytes] | None:
    """``Content-Digest`` of this request's content: sha-256 or else sha-512, as
    ``(hashlib name, digest)``, for the service's per-request checksum."""
    return _digest(headers, "Content-Digest", ("sha-256", "sha-512"))


def request_length(
    *, declared: int | None, content_length: int | None, offset: int, complete: bool
) -> int | None:
    """The upload's total length as this request states it, or ``None`` if it does not.

    Two indicators exist: ``Upload-Length`` (*declared*), and a completing request's
    ``Content-Length`` added to its *offset*. Both present must agree, else 400 with the
    inconsistent-upload-length problem.
    """
    implied = offset + content_length if complete and content_length is not None else None
    if declared is not None and implied is not None and declared != implied:
        raise InconsistentUploadLength(
            f"{UPLOAD_LENGTH} says {declared} bytes, but this request ends the upload at "
            f"{offset} + {content_length} = {implied} bytes.",
            **{"upload-length": declared, "implied-length": implied},
        )
    return declared if declared is not None else implied
