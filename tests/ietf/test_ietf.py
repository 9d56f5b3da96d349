"""IETF resumable uploads (interop 3, 5, 6, 7, 8) against real servers, on both backends.

``ROWS`` is the conformance table: one row per assertion, each a request (interop version,
method, path, headers, body) and what must come back (status, header checks, problem
members), run on a fresh server. ``given`` makes the upload the row needs first (always with
interop 8 requests; uploads do not belong to a version): ``upload`` (half the image, length
known), ``deferred`` (half, length unknown), ``full`` (every byte, not yet complete),
``done`` (complete, image stored). ``then`` is the upload's offset afterwards (``GONE``: a
HEAD finds nothing; a creation row's upload is the one it made). Templates take ``{base}``,
``{files}``, ``{upload}`` (the upload's path), ``{max}`` (max_image_size) and ``{ttl}``
(upload_ttl).

Every row also checks that the reply echoes the interop version (when one pixdrop speaks was
sent), never says ``Tus-Resumable``, and, for every status >= 400 but HEAD's, is an RFC 9457
problem. After the table: whole uploads of a real image, the 104 read off the wire, and
transfers cut short over raw sockets.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import DATA, LiveServer
from tests.http.helpers import RawRequest, send_cut, tiny_image
from tests.ietf.wire import (
    IANA,
    INTEROP,
    PARTIAL,
    PIXDROP_IMAGE,
    UPLOAD_URL,
    Limit,
    append_type,
    completeness,
    fetch_image,
    fields,
    interop,
    offset_of,
    problem_errors,
    read_interim,
    sha256_field,
    wait_for_offset,
)
from tests.tus.wire import (
    ABSENT,
    PRESENT,
    Check,
    Reply,
    check_headers,
    location_path,
)

IMAGE = tiny_image("PNG", 64, 48, seed=11)
LEN = len(IMAGE)
HALF = LEN // 2
A, B = IMAGE[:HALF], IMAGE[HALF:]
NOT_IMAGE = random.Random(3).randbytes(600)
UNKNOWN = "/files/" + "A" * 22
GONE = -1
SHA1_ONLY = "sha=:qZk+NkcGgWq6PiVxeFDCbJzQ2J0=:"


@dataclass(frozen=True)
class Row:
    id: str
    version: int | str
    method: str
    path: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    given: str | None = None
    expect: Mapping[str, Check | str] = field(default_factory=dict)
    problem: Mapping[str, Any] = field(default_factory=dict)
    then: int | None = None


def post(row_id: str, version: int | str, status: int, **kw: Any) -> Row:
    return Row(row_id, version, "POST", "{files}", status, **kw)


def on_upload(row_id: str, version: int, method: str, status: int, **kw: Any) -> Row:
    return Row(row_id, version, method, "{upload}", status, given=kw.pop("given", "upload"), **kw)


def patch(version: int, offset: int, complete: bool | None, **extra: str) -> dict[str, str]:
    """Headers of an append: its media type (6+), ``Upload-Offset`` and completeness."""
    done = {} if complete is None else completeness(version, complete)
    return {**append_type(version), "Upload-Offset": str(offset), **done, **extra}


def with_image(version: int, *, token: bool = True) -> dict[str, Check | str]:
    """Headers of the answer that stored the image (completeness ?1)."""
    return {
        **completeness(version, True),
        "Upload-Offset": str(LEN),
        "Pixdrop-Image": PIXDROP_IMAGE,
        "Pixdrop-Delete-Token": PRESENT if token else ABSENT,
        "Repr-Digest": sha256_field(IMAGE),
    }


C = completeness
PROBLEM_LENGTH = {"type": IANA + "inconsistent-upload-length"}

ROWS = [
    # --- creation (POST to the mount) ---
    post("create-3-whole", 3, 201, body=IMAGE, expect={"Location": UPLOAD_URL, **with_image(3)}),
    post(
        "create-3-incomplete",
        3,
        201,
        headers=C(3, False),
        body=A,
        expect={
            "Location": UPLOAD_URL,
            "Upload-Offset": str(HALF),
            "Upload-Incomplete": "?1",
            "Pixdrop-Image": ABSENT,
        },
        then=HALF,
    ),
    post("create-5-whole", 5, 201, headers=C(5, True), body=IMAGE, expect=with_image(5)),
    post(
        "create-5-careful-empty",
        5,
        201,
        headers=C(5, False),
        expect={"Location": UPLOAD_URL, "Upload-Offset": "0", "Upload-Complete": "?0"},
        then=0,
    ),
    post("create-5-no-completeness", 5, 400, body=IMAGE, problem={"header": "Upload-Complete"}),
    post(
        "create-6-incomplete-limit",
        6,
        201,
        headers={**C(6, False), "Upload-Length": str(LEN)},
        body=A,
        expect={"Upload-Offset": str(HALF), "Upload-Limit": Limit("expires")},
        then=HALF,
    ),
    post("create-6-offset", 6, 400, headers={**C(6, True), "Upload-Offset": "5"}, body=IMAGE),
    post(
        "create-6-inconsistent-length",
        6,
        400,
        headers={**C(6, True), "Upload-Length": str(LEN + 1)},
        body=IMAGE,
        problem=PROBLEM_LENGTH,
    ),
    post(
        "create-6-tus-js-client",
        6,
        201,
        headers={**C(6, True), "Content-Type": PARTIAL, "Upload-Length": str(LEN)},
        body=IMAGE,
        expect=with_image(6),
    ),
    post(
        "create-7-whole",
        7,
        201,
        headers=C(7, True),
        body=IMAGE,
        expect={**with_image(7), "Upload-Limit": Limit()},
    ),
    post(
        "create-7-incomplete-limit",
        7,
        201,
        headers=C(7, False),
        body=A,
        expect={"Upload-Complete": "?0", "Upload-Limit": Limit("max-age")},
    ),
    post(
        "create-7-too-large",
        7,
        413,
        headers={**C(7, False), "Upload-Length": "99999999999999"},
        expect={"Upload-Limit": Limit()},
    ),
    post(
        "create-8-not-an-image",
        8,
        422,
        headers=C(8, True),
        body=NOT_IMAGE,
        expect={"Upload-Complete": "?1"},
    ),
    post(
        "create-8-repr-digest",
        8,
        201,
        headers={**C(8, True), "Repr-Digest": sha256_field(IMAGE)},
        body=IMAGE,
        expect=with_image(8),
    ),
    post(
        "create-8-repr-digest-mismatch",
        8,
        422,
        headers={**C(8, True), "Repr-Digest": sha256_field(NOT_IMAGE)},
        body=IMAGE,
        expect={"Upload-Complete": "?1"},
        problem={"reason": "sha256-mismatch"},
    ),
    post(
        "create-8-repr-digest-sha1-ignored",
        8,
        201,
        headers={**C(8, True), "Repr-Digest": SHA1_ONLY},
        body=IMAGE,
        expect=with_image(8),
    ),
    post(
        "create-8-repr-digest-malformed",
        8,
        400,
        headers={**C(8, True), "Repr-Digest": "sha-256=abc"},
        body=IMAGE,
        problem={"type": "/problems/invalid-digest"},
    ),
    post(
        "create-8-content-digest-mismatch",
        8,
        400,
        headers={**C(8, True), "Content-Digest": sha256_field(NOT_IMAGE)},
        body=IMAGE,
        problem={"type": "/problems/digest-mismatch"},
    ),
    post("version-9", "9", 400, headers=C(8, True), problem={"supported": [3, 4, 5, 6, 7, 8]}),
    post("version-abc", "abc", 400, headers=C(8, True), problem={"header": INTEROP}),
    # --- offset retrieval (HEAD) ---
    on_upload(
        "head-3",
        3,
        "HEAD",
        204,
        expect={
            "Upload-Offset": str(HALF),
            "Upload-Incomplete": "?1",
            "Upload-Complete": ABSENT,
            "Upload-Length": str(LEN),
            "Cache-Control": "no-store",
        },
    ),
    on_upload("head-3-offset-refused", 3, "HEAD", 400, headers={"Upload-Offset": "0"}),
    on_upload(
        "head-5",
        5,
        "HEAD",
        204,
        expect={"Upload-Offset": str(HALF), "Upload-Complete": "?0", "Upload-Limit": ABSENT},
    ),
    on_upload(
        "head-6",
        6,
        "HEAD",
        204,
        expect={"Upload-Length": str(LEN), "Upload-Limit": Limit("expires")},
    ),
    on_upload("head-6-length-refused", 6, "HEAD", 400, headers={"Upload-Length": str(LEN)}),
    on_upload("head-7-fields-allowed", 7, "HEAD", 204, headers={"Upload-Offset": "0"}),
    on_upload(
        "head-8-deferred",
        8,
        "HEAD",
        204,
        given="deferred",
        expect={
            "Upload-Offset": str(HALF),
            "Upload-Length": ABSENT,
            "Upload-Limit": Limit("max-age"),
            "Cache-Control": "no-store",
        },
    ),
    on_upload(
        "head-8-full-is-not-complete",
        8,
        "HEAD",
        204,
        given="full",
        expect={"Upload-Offset": str(LEN), "Upload-Complete": "?0"},
    ),
    on_upload(
        "head-8-done",
        8,
        "HEAD",
        204,
        given="done",
        expect={**with_image(8, token=False), "Upload-Length": str(LEN), "Upload-Limit": Limit()},
    ),
    Row("head-3-unknown", 3, "HEAD", UNKNOWN, 404),
    Row("head-8-unknown", 8, "HEAD", UNKNOWN, 404),
    # --- append (PATCH) ---
    on_upload(
        "patch-3-incomplete",
        3,
        "PATCH",
        201,
        headers=patch(3, HALF, False),
        body=B[:10],
        expect={"Upload-Offset": str(HALF + 10), "Upload-Incomplete": "?1"},
        then=HALF + 10,
    ),
    on_upload(
        "patch-3-end-without-field",
        3,
        "PATCH",
        201,
        headers=patch(3, HALF, None),
        body=B,
        expect=with_image(3),
    ),
    on_upload(
        "patch-3-offset-mismatch",
        3,
        "PATCH",
        409,
        headers=patch(3, 0, False),
        body=B,
        expect={"Upload-Offset": str(HALF), "Upload-Incomplete": "?1"},
        then=HALF,
    ),
    on_upload(
        "patch-5-no-media-type",
        5,
        "PATCH",
        201,
        headers=patch(5, HALF, False),
        body=B[:10],
        expect={"Upload-Complete": "?0", "Upload-Offset": str(HALF + 10)},
    ),
    on_upload(
        "patch-5-end",
        5,
        "PATCH",
        201,
        headers=patch(5, HALF, True),
        body=B,
        expect=with_image(5),
    ),
    on_upload(
        "patch-6-wrong-media-type",
        6,
        "PATCH",
        415,
        headers={**patch(6, HALF, False), "Content-Type": "application/offset+octet-stream"},
        body=B,
        expect={"Accept-Patch": PARTIAL},
        then=HALF,
    ),
    on_upload(
        "patch-6-incomplete",
        6,
        "PATCH",
        201,
        headers=patch(6, HALF, False),
        body=B[:10],
        expect={"Upload-Complete": "?0", "Upload-Offset": str(HALF + 10)},
    ),
    on_upload(
        # tus-js-client (interop 5 and 6) says ?0 on a last chunk shorter than its chunk size:
        # up to 6, reaching the known length completes the upload anyway.
        "patch-6-reaching-the-length-with-?0-completes",
        6,
        "PATCH",
        201,
        headers=patch(6, HALF, False),
        body=B,
        expect=with_image(6),
    ),
    on_upload(
        "patch-7-incomplete",
        7,
        "PATCH",
        204,
        headers=patch(7, HALF, False),
        body=B[:10],
        expect={"Upload-Complete": "?0"},
        then=HALF + 10,
    ),
    on_upload(
        "patch-7-no-completeness",
        7,
        "PATCH",
        400,
        headers=patch(7, HALF, None),
        body=B,
        problem={"header": "Upload-Complete"},
        then=HALF,
    ),
    on_upload(
        "patch-8-offset-mismatch",
        8,
        "PATCH",
        409,
        headers=patch(8, 0, False),
        body=B,
        expect={"Upload-Offset": str(HALF), "Upload-Complete": "?0"},
        problem={
            "type": IANA + "mismatching-upload-offset",
            "expected-offset": HALF,
            "provided-offset": 0,
        },
        then=HALF,
    ),
    on_upload(
        "patch-8-end",
        8,
        "PATCH",
        201,
        headers=patch(8, HALF, True),
        body=B,
        expect=with_image(8),
        then=LEN,
    ),
    on_upload(
        "patch-8-end-deferred",
        8,
        "PATCH",
        201,
        given="deferred",
        headers=patch(8, HALF, True),
        body=B,
        expect=with_image(8),
    ),
    on_upload(
        "patch-8-end-empty-after-full",
        8,
        "PATCH",
        201,
        given="full",
        headers=patch(8, LEN, True),
        expect=with_image(8),
    ),
    on_upload(
        "patch-8-end-short-of-length",
        8,
        "PATCH",
        400,
        headers=patch(8, HALF, True),
        body=B[:-1],
        problem=PROBLEM_LENGTH,
        then=HALF,
    ),
    on_upload(
        "patch-8-past-length",
        8,
        "PATCH",
        400,
        headers=patch(8, HALF, False),
        body=B + b"xx",
        problem=PROBLEM_LENGTH,
        then=HALF,
    ),
    on_upload(
        "patch-8-content-digest-mismatch",
        8,
        "PATCH",
        400,
        headers=patch(8, HALF, False, **{"Content-Digest": sha256_field(A)}),
        body=B,
        problem={"type": "/problems/digest-mismatch"},
        then=HALF,
    ),
    on_upload(
        "patch-8-content-digest",
        8,
        "PATCH",
        201,
        headers=patch(8, HALF, True, **{"Content-Digest": sha256_field(B)}),
        body=B,
        expect=with_image(8),
    ),
    on_upload(
        "patch-8-done-with-bytes",
        8,
        "PATCH",
        400,
        given="done",
        headers=patch(8, LEN, True),
        body=b"x",
        expect={"Upload-Complete": "?1", "Upload-Offset": str(LEN)},
        problem=PROBLEM_LENGTH,
    ),
    on_upload(
        "patch-8-done-empty",
        8,
        "PATCH",
        400,
        given="done",
        headers=patch(8, LEN, True),
        expect={"Upload-Complete": "?1"},
        problem={"type": IANA + "completed-upload"},
    ),
    on_upload(
        "patch-7-done-with-bytes",
        7,
        "PATCH",
        400,
        given="done",
        headers=patch(7, LEN, True),
        body=b"x",
        problem={"type": IANA + "completed-upload"},
    ),
    Row("patch-8-unknown", 8, "PATCH", UNKNOWN, 404, headers=patch(8, 0, True), body=b"x"),
    # --- cancellation (DELETE) ---
    on_upload("delete-3", 3, "DELETE", 204, then=GONE),
    on_upload("delete-5-completeness-refused", 5, "DELETE", 400, headers=C(5, True), then=HALF),
    on_upload("delete-8", 8, "DELETE", 204, then=GONE),
    Row("delete-8-unknown", 8, "DELETE", UNKNOWN, 404),
    # --- OPTIONS ---
    Row(
        "options-5",
        5,
        "OPTIONS",
        "{files}",
        204,
        expect={"Accept-Patch": PARTIAL, "Upload-Limit": ABSENT, "Tus-Version": ABSENT},
    ),
    Row("options-6", 6, "OPTIONS", "{files}", 204, expect={"Upload-Limit": Limit()}),
    on_upload(
        "options-8-upload",
        8,
        "OPTIONS",
        204,
        expect={"Accept-Patch": PARTIAL, "Upload-Limit": Limit()},
    ),
]


def make(client: httpx.Client, given: str) -> str:
    """An upload in the state *given* names, made with interop 8 requests; its path."""
    headers, body = {**interop(8), "Upload-Complete": "?0"}, A
    if given in ("upload", "full"):
        headers["Upload-Length"] = str(LEN)
    if given in ("full", "done"):
        body = IMAGE
    if given == "done":
        headers["Upload-Complete"] = "?1"
    return location_path(client.post("/files", content=body, headers=headers))


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_conformance(server: LiveServer, row: Row) -> None:
    settings = server.settings
    ctx = {
        "base": server.url,
        "files": "/files",
        "max": str(int(settings.max_image_size)),
        "ttl": str(settings.upload_ttl),
    }
    with httpx.Client(base_url=server.url, timeout=30) as client:
        if row.given is not None:
            ctx["upload"] = make(client, row.given)
        headers = {INTEROP: str(row.version), **row.headers}
        response = client.request(
            row.method, row.path.format_map(ctx), headers=headers, content=row.body
        )
        reply = Reply.of(response)
        if "location" in reply.headers:  # a creation row's ``then`` looks at its own upload
            ctx.setdefault("upload", urlsplit(reply.headers["location"]).path)
        expect = dict(row.expect)
        expect.setdefault("Tus-Resumable", ABSENT)
        if isinstance(row.version, int):
            expect.setdefault(INTEROP, str(row.version))
        errors = check_headers(reply, expect, ctx)
        if reply.status != row.status:
            errors.insert(0, f"status {reply.status}, want {row.status}")
        if reply.status >= 400 and row.method != "HEAD":
            errors += problem_errors(reply, row.problem)
        if row.then is not None:
            after = client.head(ctx["upload"], headers=interop(8))
            if row.then == GONE:
                if after.status_code != 404:
                    errors.append(f"after: HEAD {after.status_code}, want 404")
            elif after.headers.get("upload-offset") != str(row.then):
                errors.append(
                    f"after: offset {after.headers.get('upload-offset')}, want {row.then}"
                )
    assert not errors, f"{row.id}: {errors}\n{reply}"


# --- whole uploads ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 5, 6, 7, 8])
def test_real_image_in_three_appends(server: LiveServer, version: int) -> None:
    """Careful creation (no body), three appends, the last completing: the image is stored
    under the name sent, and its URL serves exactly the bytes uploaded."""
    photo = (DATA / "rocket.jpg").read_bytes()
    parts = [photo[: len(photo) // 3], photo[len(photo) // 3 : -1000], photo[-1000:]]
    creation = {
        **interop(version),
        **completeness(version, False),
        "Content-Type": "image/jpeg",
        "Content-Disposition": 'inline; filename="rocket.jpg"',
        "Repr-Digest": sha256_field(photo),
    }
    with httpx.Client(base_url=server.url, timeout=30) as client:
        path = location_path(client.post("/files", headers=creation))
        offset = 0
        for number, part in enumerate(parts, 1):
            last = number == len(parts)
            headers = {**interop(version), **patch(version, offset, last)}
            response = client.patch(path, content=part, headers=headers)
            assert response.status_code in (201, 204), response.text
            offset += len(part)
            assert response.headers[INTEROP] == str(version)
            if version <= 6 or last:
                assert response.headers["upload-offset"] == str(offset)
            assert ("pixdrop-image" in response.headers) is last
        assert response.status_code == 201
        assert response.headers["repr-digest"] == sha256_field(photo)
        assert response.headers["pixdrop-delete-token"]
        image, original = fetch_image(client, response.headers["pixdrop-image"])
        assert original == photo
        assert (image["filename"], image["content_type"]) == ("rocket.jpg", "image/jpeg")
        head = client.head(path, headers=interop(version))
        assert head.status_code == 204
        assert head.headers["pixdrop-image"] == response.headers["pixdrop-image"]
        for name, value in completeness(version, True).items():
            assert head.headers[name] == value


def test_tus_js_client_style_upload_metadata_names_the_image(server: LiveServer) -> None:
    """tus-js-client's ``ietf-draft-05`` mode: Upload-Length, tus Upload-Metadata, and
    ``application/partial-upload`` on the POST too."""
    headers = {
        **interop(6),
        "Upload-Complete": "?1",
        "Upload-Length": str(LEN),
        "Content-Type": PARTIAL,
        "Upload-Metadata": "filename c3Vuc2V0LnBuZw==,filetype aW1hZ2UvcG5n",
    }
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/files", content=IMAGE, headers=headers)
        assert response.status_code == 201, response.text
        image, original = fetch_image(client, response.headers["pixdrop-image"])
    assert original == IMAGE
    assert image["filename"] == "sunset.png"


def test_chunked_body_ending_short_of_the_length_is_inconsistent(server: LiveServer) -> None:
    """Without Content-Length only the body's end tells: ``?1`` before the known length is
    the inconsistent-length problem; the bytes that came are kept."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        path = make(client, "upload")
        headers = {**interop(8), **patch(8, HALF, True)}
        response = client.patch(path, content=iter([B[:10], B[10:20]]), headers=headers)
        assert "content-length" not in response.request.headers
        reply = Reply.of(response)
        assert reply.status == 400, reply
        assert not problem_errors(reply, PROBLEM_LENGTH), reply
        assert reply.headers["upload-offset"] == str(HALF + 20)
        assert offset_of(client, path) == HALF + 20


# --- 104 and cut transfers on raw sockets ---------------------------------------------------


@pytest.mark.parametrize("version", [3, 5, 8])
def test_104_announces_the_upload_before_the_body(h1_server: LiveServer, version: int) -> None:
    """The 104 arrives before any body byte is sent, with the interop version, ``Location``
    and (6+) ``Upload-Limit``; the final response has the same ``Location``."""
    headers = {**interop(version), **completeness(version, True)}
    request = RawRequest(h1_server.url, "POST", "/files", LEN, headers)
    try:
        interim = read_interim(request)
        announced = fields(interim)
        assert interim.status_code == 104
        assert interim.reason == b"Upload Resumption Supported"
        assert announced[INTEROP.lower()] == str(version)
        assert announced["location"].startswith(f"{h1_server.url}/files/")
        max_size = int(h1_server.settings.max_image_size)
        age = {3: None, 5: None, 8: "max-age"}[version]
        if age is None:
            assert "upload-limit" not in announced
        else:
            assert announced["upload-limit"].startswith(f"max-size={max_size}, {age}=")
        request.send(IMAGE)
        request.finish()
        final = request.response()
    finally:
        request.close()
    assert final.status == 201, final.body
    assert final.headers["location"] == announced["location"]
    assert final.headers["pixdrop-image"]


def test_104_comes_before_100_continue(h1_server: LiveServer) -> None:
    headers = {**interop(6), **completeness(6, True), "Expect": "100-continue"}
    request = RawRequest(h1_server.url, "POST", "/files", LEN, headers)
    try:
        first, second = read_interim(request), read_interim(request)
        assert (first.status_code, second.status_code) == (104, 100)
        request.send(IMAGE)
        request.finish()
        final = request.response()
    finally:
        request.close()
    assert final.status == 201, final.body
    assert final.headers["location"] == fields(first)["location"]


def test_a_client_that_skips_1xx_gets_the_final_response(h1_server: LiveServer) -> None:
    """httpx (like most clients) reads past the 104 to the 201."""
    headers = {**interop(8), **completeness(8, True)}
    response = httpx.post(h1_server.url + "/files", content=IMAGE, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    assert response.headers["upload-complete"] == "?1"


def test_creation_cut_short_resumes_at_the_104_location(h1_server: LiveServer) -> None:
    """Optimistic creation (``?1``, whole length declared) cut after half the body: the 104
    told the client where the upload is; HEAD there gives the bytes kept; one PATCH ends it."""
    photo = (DATA / "rocket.jpg").read_bytes()
    cut = len(photo) // 2
    request = RawRequest(h1_server.url, "POST", "/files", len(photo), interop(8) | C(8, True))
    try:
        location = fields(read_interim(request))["location"]
        request.send(photo[:cut])
        time.sleep(0.3)  # let the server take the bytes in before the connection drops
    finally:
        request.close()
    with httpx.Client(timeout=30) as client:
        assert wait_for_offset(client, location, cut) == cut
        head = client.head(location, headers=interop(8))
        assert (head.headers["upload-complete"], head.headers["upload-length"]) == (
            "?0",
            str(len(photo)),
        )
        rest = {**interop(8), **patch(8, cut, True)}
        response = client.patch(location, content=photo[cut:], headers=rest)
        assert response.status_code == 201, response.text
        assert fetch_image(client, response.headers["pixdrop-image"])[1] == photo


def test_append_cut_short_keeps_its_bytes_and_resumes(server: LiveServer) -> None:
    """A PATCH whose connection drops mid-body keeps the bytes that arrived (HEAD says so);
    appending the rest from there completes the image."""
    photo = (DATA / "rocket.jpg").read_bytes()
    first, cut = 1000, 9000
    with httpx.Client(base_url=server.url, timeout=30) as client:
        creation = {**interop(7), **C(7, False), "Upload-Length": str(len(photo))}
        path = location_path(client.post("/files", content=photo[:first], headers=creation))
        headers = {**interop(7), **patch(7, first, False)}
        send_cut(server.url, "PATCH", path, photo[first:], cut - first, headers, linger=0.3)
        assert wait_for_offset(client, path, cut) == cut
        assert offset_of(client, path, version=7) == cut
        rest = {**interop(7), **patch(7, cut, True)}
        response = client.patch(path, content=photo[cut:], headers=rest)
        assert response.status_code == 201, response.text
        assert response.headers["upload-complete"] == "?1"
        assert fetch_image(client, response.headers["pixdrop-image"])[1] == photo
