"""Errors as RFC 9457 problems: bad digests, oversized bodies, non-images, path tricks.

Every error answers ``application/problem+json`` with ``type``, ``title``, ``status`` and
``detail``; ``helpers.assert_problem`` checks all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.http.helpers import (
    RawRequest,
    assert_problem,
    digest_field,
    files_containing,
    poll,
    tiny_image,
)

LIMIT = 1000  # max_request_size of the servers below that test the limit


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


# --- digests ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DigestCase:
    name: str
    headers: dict[str, str]
    slug: str


def bad_digest_cases(data: bytes) -> list[DigestCase]:
    other = b"other bytes"
    good256, good512 = digest_field(data, "sha-256"), digest_field(data, "sha-512")
    bad256, bad512 = digest_field(other, "sha-256"), digest_field(other, "sha-512")
    mismatch, malformed = "digest-mismatch", "invalid-digest"
    return [
        DigestCase("Content-Digest sha-256 of other bytes", {"Content-Digest": bad256}, mismatch),
        DigestCase("Content-Digest sha-512 of other bytes", {"Content-Digest": bad512}, mismatch),
        DigestCase("Repr-Digest sha-256 of other bytes", {"Repr-Digest": bad256}, mismatch),
        DigestCase(
            "one good one bad algorithm", {"Content-Digest": f"{good256}, {bad512}"}, mismatch
        ),
        DigestCase(
            "good Content-Digest, bad Repr-Digest",
            {"Content-Digest": good512, "Repr-Digest": bad256},
            mismatch,
        ),
        DigestCase("token instead of byte sequence", {"Content-Digest": "sha-256=abc"}, malformed),
        DigestCase("not base64", {"Content-Digest": "sha-256=:not*base64!:"}, malformed),
        DigestCase(
            "no algorithm", {"Content-Digest": ":" + good256.split(":")[1] + ":"}, malformed
        ),
        DigestCase("bare word", {"Repr-Digest": "garbage"}, malformed),
        DigestCase(
            "digest of the wrong length",
            {"Content-Digest": "sha-256=:" + good512.split(":")[1] + ":"},
            malformed,
        ),
    ]


@pytest.mark.local_disk  # looks for leftovers in the data directory
def test_bad_digest_is_refused_and_nothing_is_stored(server, client, subtests) -> None:
    data = tiny_image("PNG", 5, 5, seed=42)
    for case in bad_digest_cases(data):
        with subtests.test(case.name):
            response = client.post(
                "/v1/images", content=data, headers={"Content-Type": "image/png", **case.headers}
            )
            assert_problem(response, 400, case.slug)
            leftovers = poll(
                lambda: files_containing(server.settings.data_dir, data), lambda f: not f, 2.0
            )
            assert leftovers == []


# --- size limits -----------------------------------------------------------------------------


@pytest.fixture
def small_server(server_factory):
    return server_factory(max_request_size=LIMIT)


def test_body_under_the_limit_is_accepted(small_server) -> None:
    data = tiny_image("PNG", 3, 2)
    assert len(data) < LIMIT
    response = httpx.post(small_server.url + "/v1/images", content=data)
    assert response.status_code == 201, response.text


def test_limit_is_inclusive(server_factory) -> None:
    data = tiny_image("PNG", 4, 3)
    exact = server_factory(max_request_size=len(data))
    assert httpx.post(exact.url + "/v1/images", content=data).status_code == 201
    below = server_factory(max_request_size=len(data) - 1)
    assert_problem(httpx.post(below.url + "/v1/images", content=data), 413, "payload-too-large")


def test_body_over_the_limit_is_refused(small_server) -> None:
    response = httpx.post(small_server.url + "/v1/images", content=b"\x89PNG" + b"\0" * LIMIT)
    assert_problem(response, 413, "payload-too-large")


def test_declared_length_over_the_limit_is_refused_before_the_body(small_server) -> None:
    """The 413 comes back while most of the declared body was never sent."""
    request = RawRequest(
        small_server.url, "POST", "/v1/images", 10**9, {"Content-Type": "image/png"}
    )
    try:
        request.send(tiny_image("PNG", 3, 2))
        reply = request.response(timeout=5)
    finally:
        request.close()
    assert reply.status == 413
    assert reply.headers["content-type"].split(";")[0] == "application/problem+json"
    body = reply.json()
    assert body["status"] == 413
    assert body["type"].endswith("/payload-too-large")


def test_streamed_body_growing_past_the_limit_is_refused(small_server) -> None:
    def body() -> Iterator[bytes]:
        yield tiny_image("PNG", 3, 2)
        for _ in range(20):
            yield b"\0" * 200

    response = httpx.post(small_server.url + "/v1/images", content=body())
    assert_problem(response, 413, "payload-too-large")


# --- not an image ----------------------------------------------------------------------------

NOT_IMAGES = {
    "html": (b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", "image/png"),
    "text": (b"just some words, certainly not pixels\n" * 20, "text/plain"),
    "zero bytes": (b"", "image/png"),
    "svg": (
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "image/svg+xml",
    ),
    "png signature only": (b"\x89PNG\r\n\x1a\n", "image/png"),
    "random bytes": (bytes(range(256)) * 8, "application/octet-stream"),
}


def test_not_an_image_is_unprocessable(client, subtests) -> None:
    for name, (data, content_type) in NOT_IMAGES.items():
        with subtests.test(name):
            response = client.post(
                "/v1/images", content=data, headers={"Content-Type": content_type}
            )
            assert_problem(response, 422, "unprocessable-image")


def test_multipart_not_an_image_is_unprocessable(client) -> None:
    response = client.post("/v1/images", files={"file": ("a.png", b"<html></html>", "image/png")})
    assert_problem(response, 422, "unprocessable-image")


def test_multipart_without_file_field(client, photo_png) -> None:
    response = client.post("/v1/images", files={"image": ("a.png", photo_png, "image/png")})
    assert_problem(response, 400)


# --- unknown routes and methods --------------------------------------------------------------


def test_unknown_route_is_a_problem(client) -> None:
    assert_problem(client.get("/v1/nothing-here"), 404)


def test_wrong_method_is_a_problem(client) -> None:
    response = client.patch("/v1/images")
    assert_problem(response, 405)


# --- path tricks -----------------------------------------------------------------------------

TRICKY_TARGETS = [
    "/v1/images/..%2F..%2Fetc%2Fpasswd",
    "/v1/images/..%2F..%2Fetc%2Fpasswd/original",
    "/v1/images/..%2F..%2F..%2F..%2F..%2F..%2Fetc%2Fpasswd/original",
    "/v1/images/../../etc/passwd",
    "/v1/images/%2e%2e/original",
    "/v1/images/%2Fetc%2Fpasswd/original",
    "/v1/images/./original",
    "/v1/images/.",
    "/v1/images/%00",
    "/v1/images/%00/original",
    "/v1/images/" + "A" * 21 + "%00/original",
    "/v1/images/" + "A" * 21,
    "/v1/images/" + "A" * 21 + "/original",
    "/v1/images/" + "A" * 23,
    "/v1/images/" + "A" * 23 + "/original",
    "/v1/images/" + "%C3%A9" * 22,
    "/v1/images/" + "%C3%A9" * 22 + "/original",
    "/v1/images/" + "A" * 22,
    "/v1/images/" + "A" * 22 + "/original",
    "/v1/uploads/..%2F..%2Fetc%2Fpasswd",
    "/v1/uploads/%00",
    "/v1/uploads/" + "A" * 21,
]


def test_path_tricks_are_plain_not_found(server, subtests) -> None:
    for target in TRICKY_TARGETS:
        with subtests.test(target):
            request = RawRequest(server.url, "GET", target, 0)
            try:
                request.finish()
                reply = request.response()
            finally:
                request.close()
            assert reply.status == 404, (reply.status, reply.body[:200])
            assert reply.headers["content-type"].split(";")[0] == "application/problem+json"
            assert reply.json()["status"] == 404
            assert b"root:" not in reply.body


def test_unknown_image_is_image_not_found(client) -> None:
    missing = "A" * 22
    assert_problem(client.get(f"/v1/images/{missing}"), 404, "image-not-found")
    assert_problem(client.get(f"/v1/images/{missing}/original"), 404, "image-not-found")
    response = client.head(f"/v1/images/{missing}/original")
    assert response.status_code == 404
    assert response.content == b""
