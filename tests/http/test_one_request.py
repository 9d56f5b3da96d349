"""POST /v1/images: one-request uploads, raw or multipart, with optional RFC 9530 digests.

The error paths of this endpoint (digest mismatch, 413, 422, ...) are in ``test_errors.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from tests.http.helpers import (
    assert_id,
    assert_image,
    assert_location,
    digest_field,
    media_type,
    sha256_hex,
    split_chunks,
    tiny_image,
)


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@dataclass(frozen=True)
class RawCase:
    """A raw-body upload: which photo, the Content-Type claimed, and what must be sniffed."""

    name: str
    photo: str
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "image/png"
    fmt: str = "png"


RAW_CASES = [
    RawCase("png as image/png", "png", {"Content-Type": "image/png"}),
    RawCase("png without a content type", "png"),
    RawCase("png as octet-stream", "png", {"Content-Type": "application/octet-stream"}),
    RawCase("png claimed to be jpeg", "png", {"Content-Type": "image/jpeg"}),
    RawCase("png claimed to be text", "png", {"Content-Type": "text/plain"}),
    RawCase("jpeg as image/jpeg", "jpeg", {"Content-Type": "image/jpeg"}, "image/jpeg", "jpeg"),
    RawCase("jpeg claimed to be png", "jpeg", {"Content-Type": "image/png"}, "image/jpeg", "jpeg"),
]


def test_raw_body_upload_is_sniffed_and_described(
    server, client, subtests, photo_png, photo_jpeg
) -> None:
    photos = {"png": photo_png, "jpeg": photo_jpeg}
    for case in RAW_CASES:
        with subtests.test(case.name):
            data = photos[case.photo]
            response = client.post("/v1/images", content=data, headers=case.headers)
            assert response.status_code == 201, response.text
            assert media_type(response) == "application/json"
            body = response.json()
            assert_image(
                body,
                server.url,
                data,
                content_type=case.content_type,
                fmt=case.fmt,
                delete_token=True,
            )
            assert_location(response, server.url, f"/v1/images/{body['id']}")


def test_multipart_upload_keeps_the_filename(server, client, photo_jpeg) -> None:
    response = client.post(
        "/v1/images",
        files={"file": ("rocket launch.jpg", photo_jpeg, "image/jpeg")},
        data={"note": "ignored"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert_image(
        body,
        server.url,
        photo_jpeg,
        content_type="image/jpeg",
        fmt="jpeg",
        filename="rocket launch.jpg",
        delete_token=True,
    )
    assert_location(response, server.url, f"/v1/images/{body['id']}")


def test_multipart_part_type_is_not_trusted(server, client, photo_png) -> None:
    response = client.post("/v1/images", files={"file": ("cat.jpg", photo_png, "image/jpeg")})
    assert response.status_code == 201, response.text
    assert_image(
        response.json(),
        server.url,
        photo_png,
        content_type="image/png",
        fmt="png",
        filename="cat.jpg",
        delete_token=True,
    )


def test_tiny_image(server, client) -> None:
    data = tiny_image("PNG", 3, 2)
    response = client.post("/v1/images", content=data, headers={"Content-Type": "image/png"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["width"], body["height"]) == (3, 2)
    assert body["size"] == len(data)


def test_chunked_transfer_encoding_body(server, client, photo_png) -> None:
    """A body of unknown length (Transfer-Encoding: chunked) under the limit is accepted."""
    pieces = split_chunks(photo_png, 10_000)
    response = client.post("/v1/images", content=iter(pieces))
    assert response.status_code == 201, response.text
    assert response.json()["sha256"] == sha256_hex(photo_png)
    assert response.json()["size"] == len(photo_png)


def test_every_upload_gets_a_fresh_id_and_token(client, photo_png) -> None:
    first = client.post("/v1/images", content=photo_png).json()
    second = client.post("/v1/images", content=photo_png).json()
    assert_id(first["id"])
    assert_id(second["id"])
    assert first["id"] != second["id"]
    assert first["delete_token"] != second["delete_token"]
    assert first["sha256"] == second["sha256"] == sha256_hex(photo_png)


@dataclass(frozen=True)
class DigestCase:
    name: str
    headers: dict[str, str]


def digest_cases(data: bytes) -> list[DigestCase]:
    sha256, sha512 = digest_field(data, "sha-256"), digest_field(data, "sha-512")
    return [
        DigestCase("Content-Digest sha-256", {"Content-Digest": sha256}),
        DigestCase("Content-Digest sha-512", {"Content-Digest": sha512}),
        DigestCase("Repr-Digest sha-256", {"Repr-Digest": sha256}),
        DigestCase("both algorithms in one field", {"Content-Digest": f"{sha256}, {sha512}"}),
        DigestCase("both fields", {"Content-Digest": sha512, "Repr-Digest": sha256}),
    ]


def test_matching_digest_is_accepted(client, subtests) -> None:
    data = tiny_image("PNG", 4, 4, seed=7)
    for case in digest_cases(data):
        with subtests.test(case.name):
            response = client.post(
                "/v1/images", content=data, headers={"Content-Type": "image/png", **case.headers}
            )
            assert response.status_code == 201, response.text
            assert response.json()["sha256"] == sha256_hex(data)
