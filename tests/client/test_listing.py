"""``GET /v1/images`` and ``Client.list_images``: newest first, stable pages, link fields.

Each test runs on a server of its own with an empty database (SQLite file, or a new
PostgreSQL database per session, in which earlier tests' images are older than these).
"""

from __future__ import annotations

import asyncio

import httpx

from pixdrop.client import AsyncClient, Client
from tests.client.conftest import FAST_RETRY, fake_png
from tests.conftest import LiveServer


def upload_some(server: LiveServer, count: int, state_dir, seed: int = 0) -> list[str]:
    with Client(server.url, state_dir=state_dir, retry=FAST_RETRY) as client:
        return [client.upload(fake_png(2000, seed=seed + i)).id for i in range(count)]


def test_pages_are_newest_first_and_never_overlap(server, state_dir):
    sent = upload_some(server, 7, state_dir)
    with Client(server.url, state_dir=state_dir) as client:
        first = client.list_images(limit=3)
        assert [i.id for i in first.images] == sent[::-1][:3]
        assert first.next_cursor
        # Images stored between pages are newer: they do not shift the pages that follow.
        newer = upload_some(server, 2, state_dir, seed=100)
        second = client.list_images(limit=3, cursor=first.next_cursor)
        assert [i.id for i in second.images] == sent[::-1][3:6]
        newest = [i.id for i in client.iter_images(page_size=4)]
    assert newest[: len(newer) + len(sent)] == newer[::-1] + sent[::-1]
    image = second.images[0]
    assert image.original_url == image.url == f"{server.url}/v1/images/{image.id}/original"
    assert image.image_url == f"{server.url}/v1/images/{image.id}"
    assert image.delete_token is None  # a listing never shows delete tokens


def test_the_last_page_has_no_cursor_and_the_async_client_agrees(server, state_dir):
    sent = upload_some(server, 3, state_dir)

    async def every_image() -> list[str]:
        async with AsyncClient(server.url, state_dir=state_dir) as client:
            page = await client.list_images(limit=2)
            assert page.next_cursor
            return [image.id async for image in client.iter_images(page_size=2)]

    assert asyncio.run(every_image())[:3] == sent[::-1]
    with httpx.Client(base_url=server.url) as http:
        body = http.get("/v1/images", params={"limit": 500}).json()
        assert body["next_cursor"] is None or len(body["images"]) == 500
        assert [i["id"] for i in body["images"]][:3] == sent[::-1]


def test_bad_limits_and_cursors_are_400_problems(server):
    with httpx.Client(base_url=server.url) as http:
        for params in ({"limit": 0}, {"limit": 501}, {"limit": "x"}, {"cursor": "bm9wZQ"}):
            answer = http.get("/v1/images", params=params)
            assert answer.status_code == 400, (params, answer.text)
            assert answer.headers["content-type"].startswith("application/problem+json")


def test_links_mean_one_thing_in_the_json_and_in_the_pixdrop_image_header(server, photo_png):
    with httpx.Client(base_url=server.url) as http:
        image = http.post("/v1/images", content=photo_png).json()
        own = f"{server.url}/v1/images/{image['id']}"
        assert (image["image_url"], image["original_url"]) == (own, own + "/original")
        assert image["url"] == image["original_url"]  # deprecated alias, kept
        assert http.get(image["image_url"]).json()["id"] == image["id"]
        assert http.get(image["original_url"]).content == photo_png

        created = http.post("/v1/uploads", json={"size": len(photo_png)}).json()
        assert created["upload_url"] == created["url"] == f"{server.url}/v1/uploads/{created['id']}"

        tus = {"Tus-Resumable": "1.0.0"}
        made = http.post(
            "/files/", headers={**tus, "Upload-Length": str(len(photo_png))}, content=b""
        )
        assert made.status_code == 201, made.text
        done = http.patch(
            made.headers["location"],
            headers={
                **tus,
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
            content=photo_png,
        )
        assert done.status_code == 204, done.text
        fields = dict(
            part.strip().split("=", 1) for part in done.headers["pixdrop-image"].split(",")
        )
        fields = {k: v.strip('"') for k, v in fields.items()}
        own = f"{server.url}/v1/images/{fields['id']}"
        assert fields["image_url"] == own
        assert fields["original_url"] == own + "/original"
        assert fields["url"] == own  # deprecated alias of image_url, as it always was
