"""tus 1.0.0 header grammar: parsing and formatting only, no I/O (spec: tus.io protocol.md).

The single fields come first; ``parse_creation`` and ``parse_patch`` read a whole request's
fields (a case-insensitive mapping such as Starlette's ``Headers``) into one value, every field
validated, so that ``http/tus.py`` makes its service call from that value alone.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from pixdrop.errors import InvalidResumableRequest, UnsupportedMediaType
from pixdrop.protocols import fields

VERSION = "1.0.0"
#: Extensions pixdrop implements, in the order the spec lists them.
EXTENSIONS = (
    "creation",
    "creation-with-upload",
    "creation-defer-length",
    "expiration",
    "checksum",
    "checksum-trailer",
    "termination",
    "concatenation",
    "concatenation-unfinished",
)
#: The media type of every tus request body.
OFFSET_OCTET_STREAM = "application/offset+octet-stream"

_INTEGER = re.compile(r"^[0-9]{1,19}$")
_KEY = re.compile(r"^[^\s,]+$")


def parse_length(value: str, header: str) -> int:
    """A non-negative integer header (``Upload-Length``, ``Upload-Offset``)."""
    value = value.strip()
    if not _INTEGER.fullmatch(value):
        raise InvalidResumableRequest(
            f"{header} must be a non-negative integer; got {value!r}.", header=header
        )
    return int(value)


def parse_metadata(value: str) -> dict[str, bytes]:
    """``Upload-Metadata``: comma-separated ``key base64value`` pairs (value optional)."""
    pairs: dict[str, bytes] = {}
    for item in value.split(","):
        item = item.strip()
        if not item:
            raise InvalidResumableRequest(
                "Upload-Metadata has an empty entry; send 'key base64value' pairs separated "
                "by commas.",
                header="Upload-Metadata",
            )
        key, _, encoded = item.partition(" ")
        if not _KEY.fullmatch(key) or " " in encoded.strip():
            raise InvalidResumableRequest(
                f"Upload-Metadata entry {item!r} is not 'key base64value'.",
                header="Upload-Metadata",
            )
        if key in pairs:
            raise InvalidResumableRequest(
                f"Upload-Metadata names the key {key!r} twice; keys must be unique.",
                header="Upload-Metadata",
            )
        try:
            pairs[key] = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidResumableRequest(
                f"The value of Upload-Metadata key {key!r} is not base64.",
                header="Upload-Metadata",
            ) from None
    return pairs


def metadata_text(pairs: dict[str, bytes], *keys: str) -> str | None:
    """The first of *keys* present in *pairs*, as text (``None`` if absent or not UTF-8)."""
    for key in keys:
        if key in pairs:
            try:
                text = pairs[key].decode()
            except UnicodeDecodeError:
                return None
            # A name or type that will end up in headers: no control characters.
            return "".join(c for c in text if c.isprintable())[:1024] or None
    return None


@dataclass(frozen=True, slots=True)
class ChecksumHeader:
    """``Upload-Checksum: <algorithm> <base64 digest>``."""

    algorithm: str
    digest: bytes


def parse_checksum(value: str, supported: tuple[str, ...]) -> ChecksumHeader:
    """Parse ``Upload-Checksum``; an unknown algorithm or a malformed value is a 400."""
    algorithm, _, encoded = value.strip().partition(" ")
    if algorithm not in supported:
        raise InvalidResumableRequest(
            f"Checksum algorithm {algorithm!r} is not supported; use one of "
            f"{', '.join(supported)}.",
            header="Upload-Checksum",
            supported=list(supported),
        )
    try:
        digest = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if not digest:
        raise InvalidResumableRequest(
            "Upload-Checksum must be '<algorithm> <base64 digest>'.", header="Upload-Checksum"
        )
    return ChecksumHeader(algorithm, digest)


@dataclass(frozen=True, slots=True)
class Concat:
    """``Upload-Concat``: ``partial``, or ``final;`` and the partial upload URLs in order."""

    partial: bool
    urls: tuple[str, ...] = ()


def parse_concat(value: str) -> Concat:
    value = value.strip()
    if value == "partial":
        return Concat(partial=True)
    kind, separator, rest = value.partition(";")
    if kind.strip() == "final" and separator:
        urls = tuple(rest.split())
        if urls:
            return Concat(partial=False, urls=urls)
    raise InvalidResumableRequest(
        "Upload-Concat must be 'partial' or 'final;' followed by the partial upload URLs "
        "separated by spaces.",
        header="Upload-Concat",
    )


def upload_id_from_url(url: str, mount: str) -> str | None:
    """The upload id in an (absolute or relative) upload URL under *mount*, or ``None``."""
    path = urlsplit(url).path
    prefix = mount.rstrip("/") + "/"
    if not path.startswith(prefix):
        return None
    rest = path[len(prefix) :]
    return rest if rest and "/" not in rest else None


def http_date(moment: datetime) -> str:
    """An RFC 9110 IMF-fixdate (``Upload-Expires``)."""
    return format_datetime(moment, usegmt=True)


# --- whole requests -------------------------------------------------------------------------


def _field(headers: Mapping[str, str], name: str) -> str | None:
    """The value of field *name* (lower case), or ``None``; a plain ``dict`` with other
    spellings of the name is searched too."""
    value = headers.get(name)
    if value is not None:
        return value
    return next((v for k, v in headers.items() if k.lower() == name), None)


def body_is_data(headers: Mapping[str, str]) -> bool:
    """Whether the request carries upload data (``application/offset+octet-stream``)."""
    kind = (_field(headers, "content-type") or "").split(";")[0].strip().lower()
    return kind == OFFSET_OCTET_STREAM


def _check_data_type(with_data: bool, content_length: int | None, *, creating: bool) -> None:
    """415 for a body that is not upload data. An empty one is no body; a creation without
    ``Content-Length`` counts as empty, a PATCH's chunked body does not."""
    empty = content_length == 0 or (creating and content_length is None)
    if not with_data and not empty:
        raise UnsupportedMediaType(
            f"Upload data must be sent as Content-Type: {OFFSET_OCTET_STREAM}.",
            expected=OFFSET_OCTET_STREAM,
        )


@dataclass(frozen=True, slots=True)
class BodyChecksum:
    """How a request's body is checked: ``Upload-Checksum`` as a header, or announced as a
    trailer (``Trailer: Upload-Checksum``) to be read after the body; or neither."""

    header: ChecksumHeader | None = None
    in_trailer: bool = False


def _body_checksum(headers: Mapping[str, str], supported: tuple[str, ...]) -> BodyChecksum:
    value = _field(headers, "upload-checksum")
    if value is not None:
        return BodyChecksum(header=parse_checksum(value, supported))
    announced = [t.strip().lower() for t in (_field(headers, "trailer") or "").split(",")]
    return BodyChecksum(in_trailer="upload-checksum" in announced)


@dataclass(frozen=True, slots=True)
class TusPatch:
    """A PATCH to an upload, read: the body is appended at *offset*."""

    offset: int
    #: ``Upload-Length``: the total size, declared late (creation-defer-length).
    length: int | None
    checksum: BodyChecksum


def parse_patch(
    headers: Mapping[str, str], content_length: int | None, supported: tuple[str, ...]
) -> TusPatch:
    """Read a PATCH: media type (415), ``Upload-Offset`` (required), ``Upload-Length``,
    ``Upload-Checksum`` in one of the *supported* algorithms (400s)."""
    _check_data_type(body_is_data(headers), content_length, creating=False)
    offset = _field(headers, "upload-offset")
    if offset is None:
        raise InvalidResumableRequest("A PATCH needs Upload-Offset: the offset it writes at.")
    length = _field(headers, "upload-length")
    return TusPatch(
        offset=parse_length(offset, "Upload-Offset"),
        length=None if length is None else parse_length(length, "Upload-Length"),
        checksum=_body_checksum(headers, supported),
    )


@dataclass(frozen=True, slots=True)
class TusCreation:
    """A POST to the mount, read: a new upload, maybe with (part of) its data."""

    #: ``Upload-Metadata`` as sent (``None`` when absent or blank), and the image's file name
    #: and media type found in it.
    metadata: str | None
    filename: str | None
    content_type: str | None
    #: The total size; ``None`` when deferred, and for a final upload (the sum of its parts).
    length: int | None = None
    #: ``Upload-Concat: partial``.
    partial: bool = False
    #: A final upload: the ids of the partial uploads it joins, in order, and its
    #: ``Upload-Concat`` value as sent.
    final: tuple[str, ...] | None = None
    concat: str = ""
    #: The body is upload data (creation-with-upload) ...
    with_data: bool = False
    #: ... and it is the whole upload, of a length stated up front.
    whole: bool = False
    checksum: BodyChecksum = BodyChecksum()


def _metadata(headers: Mapping[str, str]) -> tuple[str | None, dict[str, bytes]]:
    raw = _field(headers, "upload-metadata")
    if raw is None or not raw.strip():
        return None, {}
    fields.check_upload_metadata(raw)  # before decoding it
    return raw, parse_metadata(raw)


def _creation_length(headers: Mapping[str, str]) -> int | None:
    """``Upload-Length``, or ``None`` for ``Upload-Defer-Length: 1``; exactly one of them."""
    length = _field(headers, "upload-length")
    defer = _field(headers, "upload-defer-length")
    if defer is not None and defer.strip() != "1":
        raise InvalidResumableRequest(
            f"Upload-Defer-Length must be 1; got {defer!r}.", header="Upload-Defer-Length"
        )
    if length is not None and defer is not None:
        raise InvalidResumableRequest("Send Upload-Length or Upload-Defer-Length, not both.")
    if length is not None:
        return parse_length(length, "Upload-Length")
    if defer is None:
        raise InvalidResumableRequest(
            "Creating an upload needs Upload-Length (its size in bytes) or "
            "Upload-Defer-Length: 1 (size told later)."
        )
    return None


def _final_ids(headers: Mapping[str, str], concat: Concat, mount: str) -> tuple[str, ...]:
    """The partial upload ids a final upload names (400 for a URL not of this server)."""
    if _field(headers, "upload-length") is not None:
        raise InvalidResumableRequest(
            "A final upload (Upload-Concat: final) must not send Upload-Length: its "
            "length is the sum of its partial uploads."
        )
    ids = []
    for url in concat.urls:
        found = upload_id_from_url(url, mount)
        if found is None:
            raise InvalidResumableRequest(
                f"Upload-Concat names {url!r}, which is not an upload URL of this server.",
                partial=url,
            )
        ids.append(found)
    return tuple(ids)


def parse_creation(
    headers: Mapping[str, str],
    content_length: int | None,
    *,
    mount: str,
    supported: tuple[str, ...],
) -> TusCreation:
    """Read a creation under *mount*: metadata, concatenation, length, and for a body of
    upload data its checksum in one of the *supported* algorithms (400s, 415)."""
    raw_metadata, pairs = _metadata(headers)
    filename = metadata_text(pairs, "filename", "name")
    content_type = metadata_text(pairs, "filetype", "type", "contentType")
    concat_value = _field(headers, "upload-concat")
    fields.check_upload_concat(concat_value)  # before looking up the uploads it names
    concat = None if concat_value is None else parse_concat(concat_value)
    if concat is not None and not concat.partial:
        return TusCreation(
            raw_metadata,
            filename,
            content_type,
            final=_final_ids(headers, concat, mount),
            concat=(concat_value or "").strip(),
        )
    with_data = body_is_data(headers)
    _check_data_type(with_data, content_length, creating=True)
    length = _creation_length(headers)
    return TusCreation(
        raw_metadata,
        filename,
        content_type,
        length=length,
        partial=concat is not None,
        with_data=with_data,
        whole=with_data and concat is None and bool(length) and content_length == length,
        checksum=_body_checksum(headers, supported) if with_data else BodyChecksum(),
    )
