"""IETF resumable uploads: whole requests read (creation, append, HEAD and DELETE checks).

Sans-I/O, on the single fields of ``protocols/ietf.py``. ``read_creation``, ``read_append``
and ``read_bare`` read a request's interop version and then all its fields into one value,
raising errors as a client of that version must see them (``ietf_responses.spoken``);
``http/ietf.py`` makes its service call from that value. A creation request also carries the
image's representation metadata: ``Content-Type`` and a ``Content-Disposition`` file name,
or tus's ``Upload-Metadata`` (tus-js-client sends that in its IETF modes too).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote_to_bytes

from pixdrop.errors import InvalidResumableRequest
from pixdrop.protocols import fields, tus
from pixdrop.protocols.ietf import (
    INTEROP_HEADER,
    PARTIAL_UPLOAD,
    UPLOAD_LENGTH,
    UPLOAD_OFFSET,
    append_completes,
    check_append_content_type,
    content_digest,
    creation_completes,
    features,
    field,
    interop_version,
    media_type,
    repr_digest,
    request_length,
    upload_length,
    upload_offset,
)
from pixdrop.protocols.ietf_responses import spoken

#: Transfer media types that say nothing about the uploaded image.
_TRANSFER_TYPES: Final = (PARTIAL_UPLOAD, tus.OFFSET_OCTET_STREAM, "application/octet-stream")


def representation_type(content_type: str | None) -> str | None:
    """The image's declared media type from a creation request, if it names one.

    ``application/partial-upload`` (tus-js-client's ``ietf-draft-05`` mode puts it on the
    creation POST too), tus's ``application/offset+octet-stream`` and
    ``application/octet-stream`` describe the transfer, not the image: no type.
    """
    bare = media_type(content_type)
    return None if bare in _TRANSFER_TYPES else bare


_DISPOSITION_PARAM = re.compile(
    r';\s*([A-Za-z0-9!#$&+.^_`|~*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)\s*'
)


def disposition_filename(value: str | None) -> str | None:
    """The file name in a ``Content-Disposition`` field (RFC 6266): ``filename*`` (RFC 8187,
    UTF-8 or ISO-8859-1) wins over ``filename``; ``None`` if neither is usable."""
    if not value or ";" not in value:
        return None
    params: dict[str, str] = {}
    for match in _DISPOSITION_PARAM.finditer(value[value.index(";") :]):
        name, raw = match.group(1).lower(), match.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params.setdefault(name, raw)
    extended = params.get("filename*")
    if extended is not None:
        charset, _, rest = extended.partition("'")
        _language, quote, encoded = rest.partition("'")
        if quote and charset.lower() in ("utf-8", "iso-8859-1"):
            try:
                name = unquote_to_bytes(encoded).decode(charset.lower())
            except UnicodeDecodeError:
                name = ""
            if name:
                return name
    return params.get("filename") or None


def tus_metadata(headers: Mapping[str, str]) -> tuple[str | None, str | None]:
    """File name and media type from tus's ``Upload-Metadata`` (tus-js-client sends it in its
    IETF modes too); ``(None, None)`` when absent or malformed, as it is only a fallback."""
    value = field(headers, "Upload-Metadata")
    if not value or not value.strip():
        return None, None
    fields.check_upload_metadata(value)  # the same bound as tus's, before decoding
    try:
        pairs = tus.parse_metadata(value)
    except InvalidResumableRequest:
        return None, None
    kind = tus.metadata_text(pairs, "filetype", "type", "contentType")
    return tus.metadata_text(pairs, "filename", "name"), representation_type(kind)


@dataclass(frozen=True, slots=True)
class Creation:
    """A creation request (``POST`` to the creation URL), read."""

    version: int
    #: The body is the whole upload.
    complete: bool
    #: The total length, if the request states one.
    length: int | None
    #: The image's media type and file name: ``Content-Type`` and ``Content-Disposition``,
    #: else tus's ``Upload-Metadata``.
    content_type: str | None
    filename: str | None
    #: ``Repr-Digest`` sha-256 (hex) of the whole upload, checked on completion.
    sha256: str | None
    #: ``Content-Digest`` of this request's content: ``(hashlib name, digest)``.
    checksum: tuple[str, bytes] | None


def parse_creation(
    headers: Mapping[str, str], version: int, content_length: int | None
) -> Creation:
    """Read a creation request (400 on malformed or inconsistent fields)."""
    offset = upload_offset(headers)
    if offset:
        raise InvalidResumableRequest(
            f"A creation request starts at offset 0; it carried {UPLOAD_OFFSET}: {offset}. "
            "Append to the upload resource (PATCH) instead.",
            header=UPLOAD_OFFSET,
        )
    complete = creation_completes(headers, version)
    length = request_length(
        declared=upload_length(headers, version),
        content_length=content_length,
        offset=0,
        complete=complete,
    )
    fallback_name, fallback_type = tus_metadata(headers)
    return Creation(
        version=version,
        complete=complete,
        length=length,
        content_type=representation_type(field(headers, "Content-Type")) or fallback_type,
        filename=disposition_filename(field(headers, "Content-Disposition")) or fallback_name,
        sha256=repr_digest(headers),
        checksum=content_digest(headers),
    )


@dataclass(frozen=True, slots=True)
class Append:
    """An append request (``PATCH`` to the upload resource), read."""

    version: int
    offset: int
    #: This body ends the upload.
    complete: bool
    #: The total length, if the request states one (``Upload-Length`` or completion).
    length: int | None
    #: ``Content-Digest`` of this request's content: ``(hashlib name, digest)``.
    checksum: tuple[str, bytes] | None = None


def parse_append(headers: Mapping[str, str], version: int, content_length: int | None) -> Append:
    """Read an append: media type (415), ``Upload-Offset`` (required), completeness, length."""
    check_append_content_type(field(headers, "Content-Type"), version)
    offset = upload_offset(headers)
    if offset is None:
        raise InvalidResumableRequest(
            f"An append needs {UPLOAD_OFFSET}: the offset this body starts at "
            "(ask with HEAD if unsure).",
            header=UPLOAD_OFFSET,
        )
    complete = append_completes(headers, version)
    length = request_length(
        declared=upload_length(headers, version),
        content_length=content_length,
        offset=offset,
        complete=complete,
    )
    return Append(version, offset, complete, length, content_digest(headers))


def check_no_upload_fields(headers: Mapping[str, str], version: int, method: str) -> None:
    """Interop 3 to 6: HEAD and DELETE must not carry ``Upload-Offset`` or the completeness
    field (6: nor ``Upload-Length``), else 400. Later drafts dropped the rule."""
    info = features(version)
    if not info.refuses_fields_on_head_and_delete:
        return
    names = [UPLOAD_OFFSET, info.complete_field] + ([UPLOAD_LENGTH] if version == 6 else [])
    present = [name for name in names if field(headers, name) is not None]
    if present:
        raise InvalidResumableRequest(
            f"A {method.upper()} request to an upload must not carry {', '.join(present)}.",
            fields=present,
        )


# --- whole requests, version included -------------------------------------------------------


def read_version(headers: Mapping[str, str]) -> int:
    """The request's interop version: 400 if pixdrop does not speak it, or if it is missing
    (the caller sends only requests carrying ``Upload-Draft-Interop-Version`` here)."""
    version = interop_version(headers)
    if version is None:
        raise InvalidResumableRequest(
            f"This is not an IETF resumable-upload request: it has no {INTEROP_HEADER}.",
            header=INTEROP_HEADER,
        )
    return version


def read_creation(headers: Mapping[str, str], content_length: int | None) -> Creation:
    """A creation request's version and fields (``parse_creation``), in one value."""
    version = read_version(headers)
    with spoken(version):
        return parse_creation(headers, version, content_length)


def read_append(headers: Mapping[str, str], content_length: int | None) -> Append:
    """An append's version and fields (``parse_append``), in one value."""
    version = read_version(headers)
    with spoken(version):
        return parse_append(headers, version, content_length)


@dataclass(frozen=True, slots=True)
class Bare:
    """A request that carries no upload data (``OPTIONS``, ``HEAD``, ``DELETE``), read."""

    version: int


def read_bare(headers: Mapping[str, str], method: str) -> Bare:
    """The version of a request without upload data, and for ``HEAD`` and ``DELETE`` the
    check that it carries no upload fields (``check_no_upload_fields``)."""
    version = read_version(headers)
    if method.upper() in ("HEAD", "DELETE"):
        with spoken(version):
            check_no_upload_fields(headers, version, method)
    return Bare(version)
