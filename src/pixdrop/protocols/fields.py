"""What a client says about its upload and pixdrop stores: cleaned, then bounded.

Every way in (``POST /v1/uploads``, ``POST /v1/images``, tus, the IETF draft) hands its file
name, media type and tus header values to ``services.lifecycle`` (or, for a one-request
upload, the file name to ``http/simple.py``), which passes them through here before anything
is stored. The rules are the same on every metadata backend (PostgreSQL refuses NUL in text,
SQLite would keep it) and are listed in docs/security.md, "Limits and refusals".

Cleaning drops what no client means: a path before the base name, and characters of Unicode
category C (controls such as NUL, format characters, lone surrogates, private use,
unassigned). A value still too long after cleaning is refused (``FieldTooLong``, 400), not
cut: a cut name would be stored as something the client never sent.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from pixdrop.errors import FieldTooLong

#: A file name after cleaning, in UTF-8 bytes (the common file system limit).
MAX_FILENAME_BYTES: Final = 255
#: A declared media type after cleaning, in UTF-8 bytes (RFC 6838 names are at most 127 + 127).
MAX_CONTENT_TYPE_BYTES: Final = 255
#: tus ``Upload-Metadata`` as sent (kept verbatim, and echoed on every HEAD).
MAX_UPLOAD_METADATA_BYTES: Final = 4096
#: tus ``Upload-Concat`` of a final upload as sent (kept verbatim): some 60 upload URLs.
MAX_UPLOAD_CONCAT_BYTES: Final = 4096


def printable(text: str) -> str:
    """*text* without characters of Unicode category C (NUL and other controls, format
    characters, lone surrogates, private use, unassigned), stripped."""
    return "".join(c for c in text if unicodedata.category(c)[0] != "C").strip()


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def base_name(name: str) -> str:
    """The last path segment of *name* (``/`` or ``\\`` separated), cleaned."""
    return printable(name.replace("\\", "/").rsplit("/", 1)[-1])


def clean_filename(name: str | None) -> str | None:
    """A file name reduced to a harmless base name, at most ``MAX_FILENAME_BYTES`` (cut on a
    character boundary): for names stored before the limit was enforced."""
    if not name:
        return None
    base = base_name(name).encode("utf-8")[:MAX_FILENAME_BYTES]
    return base.decode("utf-8", "ignore").strip() or None


def checked_filename(name: str | None) -> str | None:
    """A client's file name, cleaned (``base_name``); ``FieldTooLong`` past the limit."""
    if not name:
        return None
    base = base_name(name)
    _check("filename", base, "max_filename_bytes", MAX_FILENAME_BYTES, "after cleaning")
    return base or None


def checked_content_type(value: str | None) -> str | None:
    """A client's declared media type, cleaned (``printable``); ``FieldTooLong`` past the
    limit."""
    if not value:
        return None
    cleaned = printable(value)
    _check("content_type", cleaned, "max_content_type_bytes", MAX_CONTENT_TYPE_BYTES, "")
    return cleaned or None


def check_upload_metadata(value: str | None) -> None:
    """``FieldTooLong`` for a tus ``Upload-Metadata`` longer than the limit."""
    if value is not None:
        _check("Upload-Metadata", value, "max_upload_metadata_bytes", MAX_UPLOAD_METADATA_BYTES, "")


def check_upload_concat(value: str | None) -> None:
    """``FieldTooLong`` for a tus ``Upload-Concat`` longer than the limit."""
    if value is not None:
        _check("Upload-Concat", value, "max_upload_concat_bytes", MAX_UPLOAD_CONCAT_BYTES, "")


def _check(field: str, text: str, limit: str, allowed: int, when: str) -> None:
    size = _utf8_length(text)
    if size > allowed:
        said = f" {when}" if when else ""
        raise FieldTooLong(
            f"{field} is {size} bytes{said}; at most {allowed} are accepted ({limit}).",
            field=field,
            limit=limit,
            value=size,
            allowed=allowed,
        )
