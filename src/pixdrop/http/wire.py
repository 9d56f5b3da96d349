"""Request-side helpers shared by the protocol modules: lengths, digests and bodies."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from starlette.requests import ClientDisconnect

from pixdrop.errors import BadRequest, ClientGone, PayloadTooLarge
from pixdrop.protocols.digest import ExpectedDigests, merge, parse_digest_field


def content_length(request: Request) -> int | None:
    """The declared body length, or None (chunked transfer); ``BadRequest`` if malformed."""
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"Content-Length {value!r} is not a byte count.")
    return int(value)


async def body(request: Request) -> AsyncIterator[bytes]:
    """The request body as it arrives; ``ClientGone`` if the client disconnects meanwhile
    (services see that, not Starlette's ``ClientDisconnect``)."""
    try:
        async for block in request.stream():
            yield block
    except ClientDisconnect:
        raise ClientGone from None


def expected_digests(request: Request) -> ExpectedDigests:
    """Digests the client announced in ``Content-Digest`` and ``Repr-Digest`` (RFC 9530)."""
    fields = [
        parse_digest_field(request.headers[name], name)
        for name in ("Content-Digest", "Repr-Digest")
        if name in request.headers
    ]
    return merge(*fields)


#: JSON control bodies (e.g. creating an upload) are tiny; anything bigger is a mistake or abuse.
MAX_JSON_BODY = 64 * 1024


async def read_json_body(request: Request) -> bytes:
    """The request body, at most ``MAX_JSON_BODY`` bytes (``PayloadTooLarge`` beyond)."""
    length = content_length(request)
    too_large = PayloadTooLarge(
        f"A JSON request body may be at most {MAX_JSON_BODY} bytes.",
        limit="max_json_body",
        allowed=MAX_JSON_BODY,
    )
    if length is not None and length > MAX_JSON_BODY:
        raise too_large
    body = bytearray()
    async for block in request.stream():
        body += block
        if len(body) > MAX_JSON_BODY:
            raise too_large
    return bytes(body)


BINARY = {"schema": {"type": "string", "format": "binary"}}
RAW_BODY = {"requestBody": {"required": True, "content": {"application/octet-stream": BINARY}}}
