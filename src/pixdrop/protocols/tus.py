"""tus 1.0.0 header grammar: parsing and formatting only, no I/O (spec: tus.io protocol.md)."""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime
from urllib.parse import urlsplit

from pixdrop.errors import InvalidResumableRequest

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
