"""The IETF resumable-upload draft on the wire, for the tests: request headers per interop
version, checks on response headers, and 104s read off a raw socket.

Everything talks to a real server; nothing reaches into the app.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import h11
import httpx

from tests.http.helpers import RawRequest

INTEROP = "Upload-Draft-Interop-Version"
PARTIAL = "application/partial-upload"
PROBLEM = "application/problem+json"
IANA = "https://iana.org/assignments/http-problem-types#"
ID = r"[A-Za-z0-9_-]{22}"


# --- requests ------------------------------------------------------------------------------


def interop(version: int) -> dict[str, str]:
    return {INTEROP: str(version)}


def completeness(version: int, complete: bool) -> dict[str, str]:
    """``Upload-Incomplete`` (interop 3, inverted) or ``Upload-Complete``."""
    if version == 3:
        return {"Upload-Incomplete": "?0" if complete else "?1"}
    return {"Upload-Complete": "?1" if complete else "?0"}


def append_type(version: int) -> dict[str, str]:
    """The ``Content-Type`` an append needs: ``application/partial-upload`` from interop 6."""
    return {"Content-Type": PARTIAL} if version >= 6 else {}


def sha256_field(data: bytes) -> str:
    """An RFC 9530 digest field value with the sha-256 of *data*."""
    return f"sha-256=:{base64.b64encode(hashlib.sha256(data).digest()).decode()}:"


def location_path(response: httpx.Response) -> str:
    assert response.status_code == 201, (response.status_code, response.text)
    return urlsplit(response.headers["location"]).path


def offset_of(client: httpx.Client, path: str, version: int = 8) -> int:
    response = client.head(path, headers=interop(version))
    assert response.status_code == 204, (response.status_code, dict(response.headers))
    return int(response.headers["upload-offset"])


def wait_for_offset(client: httpx.Client, path: str, offset: int, timeout: float = 10.0) -> int:
    """HEAD until the upload's offset is *offset* (an interrupted request records its bytes
    when the server notices the disconnect); return the last offset seen."""
    deadline = time.monotonic() + timeout
    while True:
        seen = offset_of(client, path)
        if seen == offset or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


def sf_strings(value: str) -> dict[str, str]:
    """An RFC 8941 dictionary whose members are all strings (``Pixdrop-Image``)."""
    pattern = re.compile(r'\s*([a-z*][a-z0-9_.*-]*)="((?:[^"\\]|\\["\\])*)"\s*(,|$)')
    members: dict[str, str] = {}
    pos = 0
    while pos < len(value):
        match = pattern.match(value, pos)
        if match is None:
            raise ValueError(f"not a dictionary of strings: {value!r}")
        members[match[1]] = re.sub(r"\\(.)", r"\1", match[2])
        pos = match.end()
    return members


def fetch_image(client: httpx.Client, pixdrop_image: str) -> tuple[dict[str, Any], bytes]:
    """Follow ``Pixdrop-Image``: the image's metadata, and its original bytes."""
    meta = client.get(sf_strings(pixdrop_image)["url"])
    assert meta.status_code == 200, meta.text
    body: dict[str, Any] = meta.json()
    original = client.get(body["url"])
    assert original.status_code == 200, original.text
    return body, original.content


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
        return f"{self.status} {self.headers} {self.body[:400]!r}"


def problem_errors(reply: Reply, members: Mapping[str, Any]) -> list[str]:
    """What is wrong with *reply* as an RFC 9457 problem holding *members*."""
    media = reply.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != PROBLEM:
        return [f"Content-Type is {media!r}, not {PROBLEM}"]
    body = reply.json()
    errors = []
    if body.get("status") != reply.status:
        errors.append(f"problem status {body.get('status')!r} != {reply.status}")
    for key in ("type", "title", "detail"):
        if not isinstance(body.get(key), str) or not body[key].strip():
            errors.append(f"problem has no {key}")
    for key, want in members.items():
        if body.get(key) != want:
            errors.append(f"problem {key}: got {body.get(key)!r}, want {want!r}")
    return errors


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
        return bool(value and value.strip())

    def __repr__(self) -> str:
        return "PRESENT"


ABSENT: Check = _Absent()
PRESENT: Check = _Present()


class _UploadUrl(Check):
    """An absolute upload URL under the mount: ``{base}/files/<22-character id>``."""

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        pattern = re.escape(f"{ctx['base']}/files/") + ID
        return value is not None and re.fullmatch(pattern, value) is not None

    def __repr__(self) -> str:
        return "UPLOAD_URL"


UPLOAD_URL: Check = _UploadUrl()


@dataclass(frozen=True)
class Limit(Check):
    """``Upload-Limit``: ``max-size=<the server's>``, then, if *age* names the lifetime key
    (``expires`` / ``max-age``), that key with 1 to ``upload_ttl`` seconds."""

    age: str | None = None

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        if value is None:
            return False
        if self.age is None:
            return value == f"max-size={ctx['max']}"
        match = re.fullmatch(rf"max-size=(\d+), {self.age}=(\d+)", value)
        return match is not None and match[1] == ctx["max"] and 0 < int(match[2]) <= int(ctx["ttl"])


class _Image(Check):
    """``Pixdrop-Image: id="<id>", url="{base}/v1/images/<id>"``."""

    def ok(self, value: str | None, ctx: Mapping[str, str]) -> bool:
        try:
            members = sf_strings(value or "")
        except ValueError:
            return False
        image_id = members.get("id", "")
        url = f"{ctx['base']}/v1/images/{image_id}"
        return re.fullmatch(ID, image_id) is not None and members.get("url") == url

    def __repr__(self) -> str:
        return "PIXDROP_IMAGE"


PIXDROP_IMAGE: Check = _Image()


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


# --- 104 on a raw socket -------------------------------------------------------------------


def read_interim(request: RawRequest, timeout: float = 10.0) -> h11.InformationalResponse:
    """The next interim (1xx) response on *request*'s connection; fail on a final one."""
    request.sock.settimeout(timeout)
    while True:
        event = request.conn.next_event()
        if event is h11.NEED_DATA:
            request.conn.receive_data(request.sock.recv(65536))
        elif isinstance(event, h11.InformationalResponse):
            return event
        else:
            raise AssertionError(f"expected a 1xx, got {event!r}")


def fields(event: h11.InformationalResponse | h11.Response) -> dict[str, str]:
    return {name.decode().lower(): value.decode() for name, value in event.headers}
