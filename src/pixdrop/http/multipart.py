"""Stream the ``file`` field out of a ``multipart/form-data`` body without spooling it.

Starlette's ``request.form()`` copies uploads to a temporary file first; pixdrop instead feeds
the body to python-multipart's push parser and hands the file part's bytes straight on to the
blob store, so a multipart upload is written once, like a raw one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

from pixdrop.errors import BadRequest

FIELD = "file"


#: RFC 2046 §5.1.1: a boundary is 1 to 70 of these characters, not ending in a space.
MAX_BOUNDARY = 70
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


def check_boundary(boundary: bytes) -> None:
    """``BadRequest`` for a boundary RFC 2046 does not allow (python-multipart itself refuses
    only those over 256 bytes, with an error of its own)."""
    if len(boundary) > MAX_BOUNDARY:
        raise BadRequest(
            f"The multipart boundary is {len(boundary)} characters; RFC 2046 allows at most "
            f"{MAX_BOUNDARY}.",
            limit="max_boundary",
            value=len(boundary),
            allowed=MAX_BOUNDARY,
        )
    if not _BOUNDARY.fullmatch(boundary):
        raise BadRequest(
            "The multipart boundary has characters RFC 2046 does not allow (letters, digits "
            "and '()+_,-./:=? only, not ending in a space)."
        )


class MultipartFile:
    """The ``file`` part of a multipart body; ``await open()`` before reading ``stream()``."""

    def __init__(self, body: AsyncIterator[bytes], content_type: str) -> None:
        _, params = parse_options_header(content_type)
        boundary = params.get(b"boundary")
        if not boundary:
            raise BadRequest("The multipart/form-data Content-Type has no boundary parameter.")
        check_boundary(boundary)
        self._body = body
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )
        self._field, self._value = b"", b""
        self._disposition = b""
        self._in_file = False
        self._file_seen = False
        self._file_done = False
        self._pending: list[bytes] = []
        self.filename: str | None = None

    # -- parser callbacks (synchronous, called from inside MultipartParser.write) --
    def _part_begin(self) -> None:
        self._disposition = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._field.lower() == b"content-disposition":
            self._disposition = self._value
        self._field, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, params = parse_options_header(self._disposition)
        if params.get(b"name") == FIELD.encode() and not self._file_seen:
            self._in_file = self._file_seen = True
            raw_name = params.get(b"filename")
            self.filename = raw_name.decode("utf-8", "replace") if raw_name else None

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._pending.append(bytes(data[start:end]))

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file = False
            self._file_done = True

    # -- async side --
    async def _feed(self) -> bool:
        """Parse the next piece of the body; False when the body has ended."""
        try:
            data = await anext(self._body)
        except StopAsyncIteration:
            return False
        try:
            self._parser.write(data)
        except FormParserError as exc:  # MultipartParseError and the rest of its kind
            raise BadRequest(f"The multipart/form-data body is malformed: {exc}.") from exc
        return True

    async def open(self) -> None:
        """Read until the ``file`` part starts; raise ``BadRequest`` if there is none."""
        while not self._file_seen:
            if not await self._feed():
                raise BadRequest(
                    f"The multipart/form-data body has no '{FIELD}' field; "
                    f"send the image as the field named '{FIELD}'."
                )

    async def stream(self) -> AsyncIterator[bytes]:
        """The file part's bytes, then the rest of the body is read and checked."""
        while True:
            pending, self._pending = self._pending, []
            for block in pending:
                yield block
            if self._file_done:
                break
            if not await self._feed():
                raise BadRequest(
                    "The multipart/form-data body ended inside the file part: "
                    "the upload was cut short."
                )
        while await self._feed():
            pass
