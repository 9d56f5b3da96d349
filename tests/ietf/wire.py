"""The IETF resumable-upload draft on the wire, for the tests: request headers per interop
version, checks on response headers, and 104s read off a raw socket.

Everything talks to a real server; nothing reaches into the app.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import h11
import httpx

from tests.http.helpers import RawRequest

# The header checks and the reply shape are tus's (tests/tus/wire.py); the draft adds its own
# request headers, problem members, Upload-Limit and the 104 below.
from tests.tus.wire import (
    PROBLEM,
    Check,
    PixdropImage,
    Reply,
    UploadUrl,
    sf_strings,
)

INTEROP = "Upload-Draft-Interop-Version"
PARTIAL = "application/partial-upload"
IANA = "https://iana.org/assignments/http-problem-types#"


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


def fetch_image(client: httpx.Client, pixdrop_image: str) -> tuple[dict[str, Any], bytes]:
    """Follow ``Pixdrop-Image``: the image's metadata, and its original bytes."""
    meta = client.get(sf_strings(pixdrop_image)["url"])
    assert meta.status_code == 200, meta.text
    body: dict[str, Any] = meta.json()
    original = client.get(body["url"])
    assert original.status_code == 200, original.text
    return body, original.content


# --- replies -------------------------------------------------------------------------------


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


UPLOAD_URL: Check = UploadUrl("{base}/files/")
PIXDROP_IMAGE: Check = PixdropImage()


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
