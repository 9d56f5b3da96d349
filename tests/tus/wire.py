"""tus 1.0 on the wire, for the tests: request helpers, header checks, a chunked raw socket.

Everything talks to a real server; nothing reaches into the app. ``Reply`` is the one shape
both httpx responses and raw-socket responses are checked in.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx

VERSION = "1.0.0"
TUS = {"Tus-Resumable": VERSION}
OCTETS = "application/offset+octet-stream"
PROBLEM = "application/problem+json"
ID = r"[A-Za-z0-9_-]{22}"
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
ALGORITHMS = ("sha1", "sha256", "md5", "crc32")


# --- replies -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """A response: status, headers (lower-case names; repeated ones joined by ", "), body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def of(cls, response: httpx.Response) -> Reply:
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        return cls(response.status_code, headers, response.content)

    def json(self) -> Any:
        return json.loads(self.body)

    def __str__(self) -> str:
        return f"{self.status} {self.headers} {self.body[:300]!r}"


def problem_errors(reply: Reply, method: str) -> list[str]:
    """What is wrong with *reply* as an RFC 9457 problem (HEAD replies carry no body)."""
    errors: list[str] = []
    if method == "HEAD":
        return errors
    media = reply.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != PROBLEM:
        return [f"Content-Type is {media!r}, not {PROBLEM}"]
    try:
        body = reply.json()
    except ValueError:
        return ["problem body is not JSON"]
    if not isinstance(body, dict):
        return ["problem body is not an object"]
    if body.get("status") != reply.status:
        errors.append(f"problem status {body.get('status')!r} != {reply.status}")
    for key in ("title", "detail"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            errors.append(f"problem has no {key}")
    return errors


# --- header checks -------------------------------------------------------------------------


class Check:
    """A predicate on one response header value (``None``: the header is absent)."""

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        raise NotImplementedError


@dataclass(frozen=True)
class Equals(Check):
    """Exactly this value; ``{name}`` fields are filled from the row's context."""

    template: str

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        return value == self.template.format_map(ctx)


class _Absent(Check):
    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        return value is None

    def __repr__(self) -> str:
        return "ABSENT"


class _Present(Check):
    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        return value is not None and value.strip() != ""

    def __repr__(self) -> str:
        return "PRESENT"


ABSENT: Check = _Absent()
PRESENT: Check = _Present()


@dataclass(frozen=True)
class UploadUrl(Check):
    """An absolute upload URL: *prefix* (a template) followed by a 22-character id."""

    prefix: str

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        pattern = re.escape(self.prefix.format_map(ctx)) + ID
        return value is not None and re.fullmatch(pattern, value) is not None


IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"\d{4} \d\d:\d\d:\d\d GMT"
)


def imf_date(value: str) -> datetime:
    """Parse an RFC 7231 IMF-fixdate (the preferred HTTP-date form); raise ``ValueError``."""
    if not IMF_FIXDATE.fullmatch(value):
        raise ValueError(f"not an IMF-fixdate: {value!r}")
    return parsedate_to_datetime(value)


@dataclass(frozen=True)
class FutureDate(Check):
    """An RFC 7231 IMF-fixdate (``Sun, 06 Nov 1994 08:49:37 GMT``) later than now."""

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        try:
            return value is not None and imf_date(value) > datetime.now(UTC)
        except ValueError:
            return False


@dataclass(frozen=True)
class Lists(Check):
    """A comma-separated list holding at least *items* (case-insensitive)."""

    items: tuple[str, ...]

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        if value is None:
            return False
        have = {item.strip().lower() for item in value.split(",")}
        return {item.lower() for item in self.items} <= have


def lists(*items: str) -> Lists:
    return Lists(items)


@dataclass(frozen=True)
class Matches(Check):
    """The whole value matches the regular expression *pattern* (not a template)."""

    pattern: str

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        return value is not None and re.fullmatch(self.pattern, value) is not None


@dataclass(frozen=True)
class Integer(Check):
    """A non-negative decimal integer."""

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        return value is not None and value.isdigit()


def sf_strings(value: str) -> dict[str, str]:
    """An RFC 8941 dictionary whose members are all strings: ``a="x", b="y"``; ``ValueError``."""
    members: dict[str, str] = {}
    pattern = re.compile(r'\s*([a-z*][a-z0-9_.*-]*)="((?:[^"\\]|\\["\\])*)"\s*(,|$)')
    pos = 0
    while pos < len(value):
        match = pattern.match(value, pos)
        if match is None:
            raise ValueError(f"not a dictionary of strings: {value!r}")
        members[match[1]] = re.sub(r"\\(.)", r"\1", match[2])
        pos = match.end()
    return members


@dataclass(frozen=True)
class PixdropImage(Check):
    """``id="<image id>", url="<base>/v1/images/<image id>"`` (an RFC 8941 dictionary)."""

    base: str = "{base}"

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        if value is None:
            return False
        try:
            members = sf_strings(value)
        except ValueError:
            return False
        image_id = members.get("id", "")
        url = f"{self.base.format_map(ctx)}/v1/images/{image_id}"
        return re.fullmatch(ID, image_id) is not None and members.get("url") == url


def check_headers(
    reply: Reply, expected: Mapping[str, Check | str], ctx: Mapping[str, str]
) -> list[str]:
    """One message per header of *expected* that *reply* does not satisfy."""
    errors = []
    for name, want in expected.items():
        check = Equals(want) if isinstance(want, str) else want
        value = reply.headers.get(name.lower())
        if not check.ok(value, ctx):
            errors.append(f"{name}: got {value!r}, want {check!r}")
    return errors


# --- checksums -----------------------------------------------------------------------------


def checksum(algorithm: str, data: bytes) -> str:
    """An ``Upload-Checksum`` value: the algorithm, a space, the base64 digest."""
    if algorithm == "crc32":
        digest = zlib.crc32(data).to_bytes(4, "big")
    else:
        digest = hashlib.new(algorithm, data).digest()
    return f"{algorithm} {base64.b64encode(digest).decode()}"


def metadata(**values: str) -> str:
    """An ``Upload-Metadata`` value: ``key base64(value)`` pairs, comma-separated."""
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


# --- requests ------------------------------------------------------------------------------


def create(
    client: httpx.Client,
    length: int | None,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    files: str = "/files",
) -> httpx.Response:
    """``POST`` to the creation URL; ``length=None`` defers the length."""
    sent = {**TUS, **(headers or {})}
    if length is None:
        sent["Upload-Defer-Length"] = "1"
    else:
        sent["Upload-Length"] = str(length)
    if body:
        sent["Content-Type"] = OCTETS
    return client.post(files, content=body, headers=sent)


def location_path(response: httpx.Response) -> str:
    """The path of a creation response's ``Location``; assert it was created."""
    assert response.status_code == 201, response.text
    return urlsplit(response.headers["location"]).path


def new_upload(client: httpx.Client, length: int | None, **kwargs: Any) -> str:
    """Create an upload; return its path (``/files/<id>``)."""
    return location_path(create(client, length, **kwargs))


def patch(
    client: httpx.Client,
    path: str,
    offset: int,
    data: bytes | Iterable[bytes],
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    sent = {**TUS, "Content-Type": OCTETS, "Upload-Offset": str(offset), **(headers or {})}
    return client.patch(path, content=data, headers=sent)


def head(client: httpx.Client, path: str) -> httpx.Response:
    return client.head(path, headers=TUS)


def offset_of(client: httpx.Client, path: str) -> int:
    response = head(client, path)
    assert response.status_code == 200, (response.status_code, dict(response.headers))
    return int(response.headers["upload-offset"])


def fetch_image(client: httpx.Client, pixdrop_image: str, token: str | None = None) -> bytes:
    """Follow a ``Pixdrop-Image`` header: the image's metadata, then its original bytes."""
    url = sf_strings(pixdrop_image)["url"]
    meta = client.get(url)
    assert meta.status_code == 200, meta.text
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    original = client.get(meta.json()["url"], headers=auth)
    assert original.status_code == 200, original.text
    assert meta.json()["sha256"] == hashlib.sha256(original.content).hexdigest()
    return original.content


# --- a chunked body with trailers, over a raw socket (httpx cannot send trailers) -----------


def send_chunked(
    base_url: str,
    method: str,
    target: str,
    headers: Mapping[str, str],
    chunks: Iterable[bytes],
    trailers: Mapping[str, str],
    timeout: float = 10.0,
) -> Reply:
    """Send *chunks* with ``Transfer-Encoding: chunked``, then *trailers*; read the reply."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conn = h11.Connection(our_role=h11.CLIENT)
    request_headers = [("Host", f"{host}:{port}"), ("Transfer-Encoding", "chunked")]
    if trailers:
        request_headers.append(("Trailer", ", ".join(trailers)))
    request_headers += headers.items()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        events: list[h11.Event] = [
            h11.Request(method=method, target=target, headers=request_headers)
        ]
        events += [h11.Data(data=chunk) for chunk in chunks if chunk]
        events.append(h11.EndOfMessage(headers=list(trailers.items())))
        for event in events:
            data = conn.send(event)
            if data:
                sock.sendall(data)
        return read_reply(conn, sock, method)


def read_reply(conn: h11.Connection, sock: socket.socket, method: str = "GET") -> Reply:
    """Read one response from *sock* with *conn* (a client-side h11 connection)."""
    status, headers, body = 0, {}, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
            for name, value in event.headers:
                key, text = name.decode().lower(), value.decode()
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            return Reply(status, headers, bytes(body))
        elif isinstance(event, h11.ConnectionClosed):
            raise AssertionError(f"connection closed before a full response ({method})")


def send_expecting_continue(
    base_url: str, target: str, headers: Mapping[str, str], body: bytes, timeout: float = 10.0
) -> tuple[bool, Reply]:
    """``POST`` with ``Expect: 100-continue``: send the body only after a ``100 Continue``.

    Return whether the 100 came (else the final reply came first and no body was sent) and
    the final reply.
    """
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    conn = h11.Connection(our_role=h11.CLIENT)
    request_headers = [
        ("Host", f"{host}:{port}"),
        ("Content-Length", str(len(body))),
        ("Expect", "100-continue"),
        *headers.items(),
    ]
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(conn.send(h11.Request(method="POST", target=target, headers=request_headers)))
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.InformationalResponse) and event.status_code == 100:
                sock.sendall(conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                return True, read_reply(conn, sock, "POST")
            elif isinstance(event, h11.Response):
                return False, finish_reply(conn, sock, event)
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError("connection closed before a response")


def finish_reply(conn: h11.Connection, sock: socket.socket, head: h11.Response) -> Reply:
    """Read the body of the response whose head *head* was already received."""
    headers = {k.decode().lower(): v.decode() for k, v in head.headers}
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return Reply(head.status_code, headers, bytes(body))
