"""Serving images: metadata, originals (caching, conditional and range requests), deletion.

Also the small fixed endpoints: ``/healthz``, ``/openapi.json`` and ``/docs``.
"""

from __future__ import annotations

import re
import secrets
import struct
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.http.helpers import (
    assert_problem,
    image_size,
    media_type,
    post_image,
    sha256_hex,
    tiny_image,
)
from tests.imaging.corpus import gps_jpeg

CACHE_CONTROL = {"public", "max-age=31536000", "immutable"}


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def stored(client, photo_png) -> dict[str, Any]:
    """The create response for ``photo_png``, uploaded as a raw body claiming to be JPEG."""
    return post_image(client, photo_png, content_type="image/jpeg")


def original(image: dict[str, Any]) -> str:
    return f"/v1/images/{image['id']}/original"


def directives(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def get_etag(client: httpx.Client, image: dict[str, Any]) -> str:
    etag = client.head(original(image)).headers["etag"]
    return str(etag)


def test_image_metadata(client, stored) -> None:
    response = client.get(f"/v1/images/{stored['id']}")
    assert response.status_code == 200, response.text
    assert media_type(response) == "application/json"
    expected = {k: v for k, v in stored.items() if k != "delete_token"}
    assert response.json() == expected


def test_original_bytes_and_headers(client, stored, photo_png) -> None:
    response = client.get(original(stored))
    assert response.status_code == 200
    assert response.content == photo_png
    assert sha256_hex(response.content) == stored["sha256"]
    headers = response.headers
    assert media_type(response) == "image/png"
    assert headers["content-length"] == str(len(photo_png))
    etag = headers["etag"]
    assert re.fullmatch(r'"[\x21\x23-\x7e\x80-\xff]+"', etag), etag  # strong: no W/
    assert not etag.startswith("W/"), etag
    assert directives(headers["cache-control"]) == CACHE_CONTROL
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["accept-ranges"] == "bytes"


def test_head_original(client, stored, photo_png) -> None:
    got = client.get(original(stored))
    response = client.head(original(stored))
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(photo_png))
    assert media_type(response) == "image/png"
    for name in ("etag", "cache-control", "x-content-type-options", "accept-ranges"):
        assert response.headers[name] == got.headers[name], name


def test_etag_is_stable(client, stored) -> None:
    etags = {client.get(original(stored)).headers["etag"] for _ in range(3)}
    assert len(etags) == 1


@dataclass(frozen=True)
class Case:
    """A conditional or range GET of the original, and what must come back.

    ``{etag}`` in a header value is replaced by the image's ETag; ``body`` is a slice of the
    photo (``None``: no body at all); ``content_range`` uses ``{size}``.
    """

    name: str
    headers: dict[str, str]
    status: int
    body: slice | None = field(default_factory=lambda: slice(None))
    content_range: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def conditional_cases() -> list[Case]:
    return [
        Case("If-None-Match: the ETag", {"If-None-Match": "{etag}"}, 304, None),
        Case("If-None-Match: a list", {"If-None-Match": '"nope", {etag}, "other"'}, 304, None),
        Case("If-None-Match: *", {"If-None-Match": "*"}, 304, None),
        # RFC 9110 §13.1.2: If-None-Match uses the weak comparison
        Case("If-None-Match: the weak form", {"If-None-Match": "W/{etag}"}, 304, None),
        Case("If-None-Match: another ETag", {"If-None-Match": '"nope"'}, 200),
    ]


def test_conditional_get(client, stored, photo_png, subtests) -> None:
    etag = get_etag(client, stored)
    for case in conditional_cases():
        with subtests.test(case.name):
            headers = {k: v.replace("{etag}", etag) for k, v in case.headers.items()}
            response = client.get(original(stored), headers=headers)
            assert response.status_code == case.status
            assert response.headers["etag"] == etag
            if case.body is None:
                assert response.content == b""
            else:
                assert response.content == photo_png[case.body]


def range_cases(size: int) -> list[Case]:
    last = size - 1
    return [
        Case("first 100 bytes", {"Range": "bytes=0-99"}, 206, slice(0, 100), f"bytes 0-99/{size}"),
        Case(
            "suffix",
            {"Range": "bytes=-100"},
            206,
            slice(size - 100, None),
            f"bytes {size - 100}-{last}/{size}",
        ),
        Case(
            "open ended", {"Range": "bytes=100-"}, 206, slice(100, None), f"bytes 100-{last}/{size}"
        ),
        Case(
            "middle",
            {"Range": "bytes=1000-1999"},
            206,
            slice(1000, 2000),
            f"bytes 1000-1999/{size}",
        ),
        Case(
            "last byte",
            {"Range": f"bytes={last}-{last}"},
            206,
            slice(last, None),
            f"bytes {last}-{last}/{size}",
        ),
        Case(
            "end past the end is clipped",
            {"Range": f"bytes=0-{size + 5000}"},
            206,
            slice(None),
            f"bytes 0-{last}/{size}",
        ),
        Case("starts at the end", {"Range": f"bytes={size}-"}, 416, None, f"bytes */{size}"),
        Case(
            "starts past the end",
            {"Range": f"bytes={size + 10}-{size + 20}"},
            416,
            None,
            f"bytes */{size}",
        ),
        Case(
            "If-Range with the ETag",
            {"Range": "bytes=0-99", "If-Range": "{etag}"},
            206,
            slice(0, 100),
            f"bytes 0-99/{size}",
        ),
        Case("If-Range with another ETag", {"Range": "bytes=0-99", "If-Range": '"stale"'}, 200),
        # RFC 9110 §14.2: a range unit the server does not understand MUST be ignored
        Case("unknown range unit", {"Range": "items=0-9"}, 200),
    ]


def test_range_requests(client, stored, photo_png, subtests) -> None:
    etag = get_etag(client, stored)
    for case in range_cases(len(photo_png)):
        with subtests.test(case.name):
            headers = {k: v.replace("{etag}", etag) for k, v in case.headers.items()}
            response = client.get(original(stored), headers=headers)
            if case.status == 416:
                assert_problem(response, 416, "range-not-satisfiable")
            else:
                assert response.status_code == case.status, response.headers
                assert media_type(response) == "image/png"
                assert response.headers["etag"] == etag
                expected = photo_png[case.body] if case.body is not None else b""
                assert response.content == expected
                assert response.headers["content-length"] == str(len(expected))
            assert response.headers.get("content-range") == case.content_range


def test_delete_needs_the_token(client, stored, photo_png) -> None:
    path = f"/v1/images/{stored['id']}"
    token = stored["delete_token"]

    response = client.delete(path)
    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].split()[0].lower() == "bearer"

    wrong = "x" * len(token) if token != "x" * len(token) else "y" * len(token)
    assert_problem(
        client.delete(path, headers={"Authorization": f"Bearer {wrong}"}), 403, "forbidden"
    )

    other = post_image(client, photo_png)
    response = client.delete(path, headers={"Authorization": f"Bearer {other['delete_token']}"})
    assert_problem(response, 403, "forbidden")

    still = client.get(original(stored))
    assert still.status_code == 200
    assert still.content == photo_png

    response = client.delete(path, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 204
    assert response.content == b""

    assert_problem(client.get(path), 404, "image-not-found")
    assert_problem(client.get(original(stored)), 404, "image-not-found")
    assert client.head(original(stored)).status_code == 404
    again = client.delete(path, headers={"Authorization": f"Bearer {token}"})
    assert_problem(again, 404, "image-not-found")


def test_same_bytes_twice_are_two_images(client, photo_jpeg) -> None:
    first = post_image(client, photo_jpeg)
    second = post_image(client, photo_jpeg)
    assert first["id"] != second["id"]
    assert first["sha256"] == second["sha256"] == sha256_hex(photo_jpeg)

    response = client.delete(
        f"/v1/images/{first['id']}", headers={"Authorization": f"Bearer {first['delete_token']}"}
    )
    assert response.status_code == 204

    assert_problem(client.get(original(first)), 404, "image-not-found")
    kept = client.get(original(second))
    assert kept.status_code == 200
    assert kept.content == photo_jpeg
    assert media_type(kept) == "image/jpeg"


def test_healthz(client) -> None:
    assert client.get("/healthz").status_code == 200


def test_openapi_lists_the_endpoints(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/v1/images" in paths
    assert "/v1/uploads" in paths


def test_docs_page(client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert media_type(response) == "text/html"
    # Everything the page loads comes from pixdrop itself: /docs works offline.
    assets = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert assets
    for asset in assets:
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset


@pytest.mark.local_disk
def test_limits_are_published(server_factory) -> None:
    live = server_factory(max_request_size="1MiB", min_chunk_size=4096, max_chunks=50)
    with httpx.Client(base_url=live.url) as c:
        response = c.get("/v1/limits")
    assert response.status_code == 200
    body = response.json()
    assert body["max_request_size"] == 1024 * 1024
    assert body["min_chunk_size"] == 4096
    assert body["max_chunks"] == 50
    assert body["default_chunk_size"] == 8 * 1024 * 1024
    assert body["formats"] == ["jpeg", "png", "gif", "webp", "avif", "tiff"]
    assert "image/png" in body["content_types"]


# --- images: safe headers, GPS, variants, the blob check ----------------------------------------


def test_every_image_response_is_locked_down(client, photo_png) -> None:
    image = post_image_named(client, photo_png, 'holiday "<b>".html')
    for path in (original(image), f"/v1/images/{image['id']}/thumb"):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["content-security-policy"] == "default-src 'none'"
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("inline; "), disposition
        # The quoted name is plain ASCII without quotes or markup, and whatever the upload
        # was called, it ends with the served type's extension.
        name = re.fullmatch(r'inline; filename="([^"]*)"(; filename\*=.*)?', disposition)
        assert name is not None, disposition
        assert re.fullmatch(r"[A-Za-z0-9._ -]+\.(png|webp|avif|jpg)", name[1]), disposition
        assert "<" not in disposition


def post_image_named(client: httpx.Client, data: bytes, name: str) -> dict[str, Any]:
    response = client.post("/v1/images", content=data, params={"filename": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_gps_is_served_only_to_the_uploader(client) -> None:
    data = gps_jpeg()
    image = post_image(client, data)
    public = client.get(original(image))
    assert public.status_code == 200
    assert public.content != data
    assert len(public.content) == len(data)  # removed in place, losslessly
    assert struct.pack("<II", 51, 1) not in public.content
    assert "authorization" in public.headers["vary"].lower()
    again = client.get(original(image))
    assert again.headers["etag"] == public.headers["etag"] != f'"{image["sha256"]}"'
    assert client.get(original(image), headers={"Range": "bytes=0-9"}).status_code == 206

    token = {"Authorization": f"Bearer {image['delete_token']}"}
    mine = client.get(original(image), headers=token)
    assert mine.content == data
    assert sha256_hex(mine.content) == image["sha256"]
    assert mine.headers["etag"] == f'"{image["sha256"]}"'
    assert "private" in directives(mine.headers["cache-control"])


def test_gps_stripping_can_be_turned_off(server_factory) -> None:
    live = server_factory(strip_gps=False)
    data = gps_jpeg()
    with httpx.Client(base_url=live.url) as c:
        image = post_image(c, data)
        assert c.get(original(image)).content == data


def test_variant_presets_and_parameters(client, photo_jpeg) -> None:
    image = post_image(client, photo_jpeg)
    base = f"/v1/images/{image['id']}"
    thumb = client.get(f"{base}/thumb", headers={"Accept": "image/webp,*/*"})
    assert thumb.status_code == 200, thumb.text
    assert media_type(thumb) == "image/webp"
    assert thumb.headers["vary"] == "Accept"
    assert directives(thumb.headers["cache-control"]) == CACHE_CONTROL
    assert image_size(thumb.content) == (256, 171)
    assert (
        client.get(f"{base}/thumb", headers={"Accept": "*/*"}).headers["content-type"]
        == "image/jpeg"
    )
    cover = client.get(
        f"{base}/small", params={"w": 128, "h": 128, "fit": "cover", "format": "png"}
    )
    assert cover.status_code == 200, cover.text
    assert media_type(cover) == "image/png"
    assert "vary" not in cover.headers
    assert image_size(cover.content) == (128, 128)
    big = client.get(f"{base}/large", params={"format": "jpeg"})
    assert image_size(big.content) == (640, 427)  # never enlarged
    etag = thumb.headers["etag"]
    again = client.get(f"{base}/thumb", headers={"Accept": "image/webp", "If-None-Match": etag})
    assert again.status_code == 304


def test_variant_refusals(client, photo_jpeg) -> None:
    base = f"/v1/images/{post_image(client, photo_jpeg)['id']}"
    assert_problem(client.get(f"{base}/huge"), 404, "not-found")
    body = assert_problem(client.get(f"{base}/thumb", params={"w": 257}), 400, "bad-request")
    assert body["limit"] == "variant_sizes"
    assert 256 in body["allowed"]
    assert_problem(client.get(f"{base}/thumb", params={"fit": "stretch"}), 400)
    assert_problem(client.get(f"{base}/thumb", params={"format": "bmp"}), 400)
    assert_problem(client.get(f"{base}/thumb", params={"q": "0"}), 400)


@pytest.mark.local_disk
def test_concurrent_requests_for_a_new_variant_get_one_rendition(server, photo_jpeg) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        image = post_image(c, photo_jpeg)
    path = f"/v1/images/{image['id']}/medium"

    def fetch(_: int) -> tuple[str, bytes]:
        with httpx.Client(base_url=server.url, timeout=30) as c:
            response = c.get(path, params={"format": "webp"})
            assert response.status_code == 200, response.text
            return response.headers["etag"], response.content

    with ThreadPoolExecutor(6) as pool:
        results = set(pool.map(fetch, range(6)))
    assert len(results) == 1
    derived = server.settings.data_dir / "derived"
    assert len([p for p in derived.rglob("*") if p.is_file()]) == 1


def unique_png() -> bytes:
    """Bytes no other test stored (PostgreSQL is shared by the whole session)."""
    return tiny_image("PNG", 40, 30, seed=secrets.randbelow(1 << 30))


def test_variants_go_with_the_last_image(client, server) -> None:
    data = unique_png()
    first, second = post_image(client, data), post_image(client, data)
    assert client.get(f"/v1/images/{first['id']}/thumb").status_code == 200
    for image in (first, second):
        auth = {"Authorization": f"Bearer {image['delete_token']}"}
        assert client.delete(f"/v1/images/{image['id']}", headers=auth).status_code == 204
    derived = server.settings.data_dir / "derived"
    assert not [p for p in derived.rglob("*") if p.is_file()]


def test_blob_check(client) -> None:
    photo_png = unique_png()
    digest = sha256_hex(photo_png)
    assert client.head(f"/v1/blobs/sha256/{digest}").status_code == 404
    assert_problem(client.get(f"/v1/blobs/sha256/{digest}"), 404)
    image = post_image(client, photo_png)
    assert client.head(f"/v1/blobs/sha256/{digest.upper()}").status_code == 200
    assert client.get(f"/v1/blobs/sha256/{digest}").json() == {
        "sha256": digest,
        "size": len(photo_png),
    }
    assert client.head("/v1/blobs/sha256/../../etc/passwd").status_code == 404
    auth = {"Authorization": f"Bearer {image['delete_token']}"}
    client.delete(f"/v1/images/{image['id']}", headers=auth)
    assert client.head(f"/v1/blobs/sha256/{digest}").status_code == 404


def test_image_limits_are_published(client) -> None:
    body = client.get("/v1/limits").json()
    assert body["max_pixels"] == 100_000_000
    assert body["max_frames"] >= 1
    assert body["variant_presets"]["thumb"] == 256
    assert 256 in body["variant_sizes"]
    assert "webp" in body["variant_formats"]


def test_image_object_has_the_decoded_facts(client, photo_png) -> None:
    image = post_image(client, photo_png)
    assert image["frames"] == 1
    assert image["orientation"] == 1
    assert image["has_alpha"] is False
    assert isinstance(image["placeholder"], str)
