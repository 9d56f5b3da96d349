"""Tell what an image is from its first bytes: format by magic bytes, size from the header.

Pure, no I/O, no pixel decoding: only the bytes decide, never file names or client claims.
The sniffer and the per-format header parsers are in ``headers``; this module decides what is
allowed and words the refusals. Every refusal is an ``UnprocessableImage`` whose ``reason``
field is one of ``empty``, ``unknown-format``, ``unsupported-format``, ``format-not-allowed``,
``truncated-header``, ``header-too-large``, ``corrupt-header`` or ``zero-dimensions``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Final

from pixdrop.errors import UnprocessableImage
from pixdrop.formats import BY_NAME, FORMATS, NAMES, Signature
from pixdrop.imaging.headers import Corrupt, Truncated, dimensions, sniff
from pixdrop.models import ImageInfo

__all__ = ["CONTENT_TYPES", "DEFAULT_HEAD_SIZE", "HeaderProber"]

#: The formats accepted by default, in the order messages list them, and their IANA media
#: types. The optional ones (HEIC) are accepted only when asked for (``pixdrop.formats``).
CONTENT_TYPES: Final = {f.name: f.media_type for f in FORMATS if not f.optional}

#: 1 MiB: JPEG puts EXIF, ICC and XMP segments (up to 64 KiB each, often several) before the
#: frame header, and AVIF may put ``meta`` after a small ``mdat``; 1 MiB reaches past both.
DEFAULT_HEAD_SIZE: Final = 1 << 20

#: Common things that are not images, named so the person learns what they actually sent.
_LOOKALIKES: Final[tuple[tuple[Signature, str, str], ...]] = (
    (((0, b"%PDF-"),), "pdf", "a PDF document"),
    (((0, b"PK\x03\x04"),), "zip", "a ZIP archive (or an Office document)"),
    (((0, b"\x1f\x8b"),), "gzip", "gzip-compressed data"),
    (((0, b"BM"), (6, b"\x00\x00\x00\x00")), "bmp", "a BMP image, which is not accepted"),
    (((4, b"ftyp"),), "iso-media", "an MP4/QuickTime video or other ISO media file"),
)


def _markup(sample: bytes) -> str | None:
    """``HTML``, ``SVG`` or ``XML`` for a lower-cased sample that looks like markup."""
    if sample.startswith((b"<!doctype html", b"<html")):
        return "HTML"
    if b"<svg" in sample:
        return "SVG"
    if sample.startswith(b"<?xml"):
        return "XML"
    if sample.startswith(b"<") and any(t in sample for t in (b"<html", b"<head", b"<body")):
        return "HTML"
    return None


def _is_text(sample: bytes) -> bool:
    try:
        text = sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(sample) - 3:  # not just a character cut in two by the sample's end
            return False
        text = sample[: exc.start].decode("utf-8")
    return bool(text) and all(ch.isprintable() or ch in "\t\n\r\f" for ch in text)


def _looks_like(head: bytes) -> tuple[str, str] | None:
    """(short name, phrase) for a recognisable non-image, or None."""
    for signature, name, phrase in _LOOKALIKES:
        if all(head.startswith(magic, at) for at, magic in signature):
            return name, phrase
    sample = head[:1024].removeprefix(b"\xef\xbb\xbf")
    markup = _markup(sample.lstrip().lower())
    if markup == "SVG":  # XML that browsers run scripts from: never served back to anyone
        return "svg", "SVG, which is not accepted because it can carry scripts; send a PNG"
    if markup is not None:
        return markup.lower(), markup
    return ("text", "plain text") if _is_text(sample) else None


def _name(fmt: str) -> str:
    return BY_NAME[fmt].display


class HeaderProber:
    """``ImageProber`` that reads formats and dimensions from header bytes, without decoding."""

    def __init__(
        self, allowed_formats: Collection[str] | None = None, *, head_size: int = DEFAULT_HEAD_SIZE
    ) -> None:
        allowed = set(CONTENT_TYPES if allowed_formats is None else allowed_formats)
        if not allowed or not allowed <= BY_NAME.keys() or isinstance(allowed_formats, str):
            raise ValueError(f"allowed_formats must be some of {list(NAMES)}: {allowed}")
        #: Allowed formats in the canonical order, for stable messages and problem fields.
        self.allowed_formats: tuple[str, ...] = tuple(f for f in NAMES if f in allowed)
        self.content_types = {f: BY_NAME[f].media_type for f in self.allowed_formats}
        self.head_size = head_size
        names = [BY_NAME[f].display for f in self.allowed_formats]
        listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        #: "a JPEG, PNG or GIF" / "an AVIF": the allowed formats, for messages.
        self._either = ("an " if listed[0] in "AEIOU" else "a ") + listed

    def probe(self, head: bytes) -> ImageInfo:
        """Sniff format and dimensions; raise ``UnprocessableImage`` if it is not an image."""
        if not head:
            raise UnprocessableImage(
                "The file is empty (0 bytes); send the image's bytes.", reason="empty"
            )
        fmt = sniff(head)
        if fmt is None:
            raise self._unknown(head)
        if fmt not in self.allowed_formats:
            raise self._not_allowed(fmt)
        try:
            width, height = dimensions(fmt, head)
        except Truncated as exc:
            raise self._truncated(fmt, head, str(exc)) from None
        except Corrupt as exc:
            raise UnprocessableImage(
                f"The {_name(fmt)} header is corrupt: {exc}. Re-save or re-export the image "
                "and upload it again.",
                reason="corrupt-header",
                format=fmt,
            ) from None
        if width == 0 or height == 0:
            raise UnprocessableImage(
                f"The {_name(fmt)} header says the image is {width}x{height} pixels; an image "
                "needs a width and a height of at least 1.",
                reason="zero-dimensions",
                format=fmt,
                width=width,
                height=height,
            )
        return ImageInfo(fmt, self.content_types[fmt], width, height)

    def _not_allowed(self, fmt: str) -> UnprocessableImage:
        if fmt == "heic":  # not merely left out here: most servers cannot decode it at all
            return UnprocessableImage(
                "HEIC/HEIF images are not supported; convert the photo to JPEG or AVIF and "
                "upload that (iPhones can save JPEG: Settings > Camera > Formats > Most "
                "Compatible).",
                reason="unsupported-format",
                format="heic",
            )
        return UnprocessableImage(
            f"{_name(fmt)} images are not accepted here; send {self._either} image.",
            reason="format-not-allowed",
            format=fmt,
            allowed=list(self.allowed_formats),
        )

    def _unknown(self, head: bytes) -> UnprocessableImage:
        seen = _looks_like(head)
        hint = f" (they look like {seen[1]})" if seen else ""
        return UnprocessableImage(
            f"The bytes are not {self._either} image{hint}.",
            reason="unknown-format",
            **({"looks_like": seen[0]} if seen else {}),
        )

    def _truncated(self, fmt: str, head: bytes, what: str) -> UnprocessableImage:
        # A head shorter than head_size is the whole file: callers pass what there is.
        if len(head) < self.head_size:
            return UnprocessableImage(
                f"The {_name(fmt)} file ends after {len(head)} bytes, before its {what}; it "
                "looks truncated. Send the whole file.",
                reason="truncated-header",
                format=fmt,
            )
        return UnprocessableImage(
            f"The {_name(fmt)} image's {what} is not within its first {self.head_size} "
            "bytes, which is all that is examined; re-save it with its header first and less "
            "metadata.",
            reason="header-too-large",
            format=fmt,
            limit=self.head_size,
        )
