"""Webhooks end to end over real HTTP: a pixdrop server, a receiver in the test, the CLI.

Every delivery is checked with the ``standardwebhooks`` library, as a receiver would.
"""

from __future__ import annotations

import threading
from collections import Counter

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from pixdrop.metadata import database_url as parse_database_url
from pixdrop.metadata.tables import webhook_deliveries
from tests.http.helpers import (
    create_upload,
    get_upload,
    poll,
    post_image,
    send_chunks,
    split_chunks,
    upload_in_chunks,
)
from tests.tus.wire import create, location_path
from tests.webhooks.conftest import deliveries
from tests.webhooks.receiver import Receiver, types_for

CHUNK = 64 * 1024
FAST = {"webhook_retry_base": 0.05, "webhook_refresh": 0.2}


def test_an_upload_and_its_image_are_reported_signed_and_in_order(
    server_factory, receiver: Receiver, cli, add_endpoint, photo_png
) -> None:
    endpoint = add_endpoint(receiver.url)
    server = server_factory(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        upload, done = upload_in_chunks(client, photo_png, CHUNK)
        assert done.status_code == 201, done.text
        image = done.json()
        shown = get_upload(client, upload["id"])
        deleted = client.delete(
            f"/v1/images/{image['id']}",
            headers={"Authorization": f"Bearer {image['delete_token']}"},
        )
        assert deleted.status_code == 204, deleted.text

    receiver.wait_for(lambda got: len(got) >= 4)
    events = receiver.verified(endpoint["secret"])  # raises unless every signature is right
    by_type = {e["type"]: e for e in events}
    assert types_for(receiver.events(), upload["id"]) == ["upload.created", "upload.completed"]
    assert types_for(receiver.events(), image["id"]) == ["image.created", "image.deleted"]
    # The resource as the API shows it (links are paths without --public-url).
    completed = by_type["upload.completed"]["data"]
    assert {k: completed[k] for k in ("id", "state", "image_id", "received", "missing")} == {
        k: shown[k] for k in ("id", "state", "image_id", "received", "missing")
    }
    assert by_type["upload.created"]["data"]["state"] == "receiving"
    assert by_type["image.created"]["data"]["sha256"] == image["sha256"]
    assert "delete_token" not in by_type["image.created"]["data"]
    # Each event has its own id, the webhook-id it was sent with.
    assert len({e["id"] for e in events}) == len(events)
    for got in receiver.events():
        assert got.headers["webhook-id"] == got.json()["id"]


def test_a_500_is_retried_with_the_same_webhook_id(
    server_factory, receiver: Receiver, cli, add_endpoint, photo_png
) -> None:
    endpoint = add_endpoint(receiver.url, "image.created")
    answers = iter([500, 500])
    receiver.answer = lambda _: (next(answers, 200), None, 0.0)
    server = server_factory(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        post_image(client, photo_png)

    got = receiver.wait_for(lambda got: len(got) >= 3)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    delivered = poll(
        lambda: deliveries(cli, endpoint), lambda rows: rows[0]["state"] == "delivered"
    )
    assert [(d["state"], d["attempts"], d["last_status"]) for d in delivered] == [
        ("delivered", 3, 200)
    ]


def test_a_delivery_is_given_up_listed_and_resent(
    server_factory, receiver: Receiver, cli, add_endpoint, photo_png
) -> None:
    endpoint = add_endpoint(receiver.url, "image.created")
    receiver.answer = lambda _: (503, None, 0.0)
    server = server_factory(webhook_retry_for=0.3, **FAST)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        image = post_image(client, photo_png)

    failed = poll(lambda: deliveries(cli, endpoint, "--failed"), bool, timeout=30)
    assert [(d["type"], d["state"], d["last_status"]) for d in failed] == [
        ("image.created", "failed", 503)
    ]
    tries = len(receiver.events())
    receiver.answer = lambda _: (200, None, 0.0)
    cli("resend", str(failed[0]["id"]))
    got = receiver.wait_for(lambda got: len(got) > tries)
    assert got[-1].headers["webhook-id"] == failed[0]["event_id"]
    assert receiver.verified(endpoint["secret"])[-1]["data"]["id"] == image["id"]
    settled = poll(lambda: deliveries(cli, endpoint), lambda r: r[0]["state"] == "delivered")
    assert [(d["state"], d["attempts"]) for d in settled] == [("delivered", 1)]


def test_refused_and_expired_uploads_are_reported(
    server_factory, receiver: Receiver, cli, add_endpoint, photo_png
) -> None:
    add_endpoint(receiver.url, "upload.refused,upload.expired")
    server = server_factory(upload_ttl=2, sweep_interval=0.3, **FAST)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        refused, answer = upload_in_chunks(client, b"not an image" * 100, CHUNK)
        assert answer.status_code == 422, answer.text
        abandoned = create_upload(client, len(photo_png), chunk_size=CHUNK)
        send_chunks(client, abandoned["id"], split_chunks(photo_png, CHUNK), [1])

    # (On PostgreSQL the sweeper may also report other tests' uploads: look for these two.)
    mine = {refused["id"], abandoned["id"]}

    def about_mine(got: list) -> dict[str, dict]:
        return {e.json()["data"]["id"]: e.json() for e in got if e.json()["data"]["id"] in mine}

    events = about_mine(receiver.wait_for(lambda got: len(about_mine(got)) == 2))
    assert events[refused["id"]]["type"] == "upload.refused"
    assert events[refused["id"]]["problem"]["type"] == answer.json()["type"]
    assert events[refused["id"]]["problem"]["status"] == 422
    assert events[abandoned["id"]]["type"] == "upload.expired"
    assert events[abandoned["id"]]["data"]["received"] == [1]


def test_nothing_is_written_without_a_subscriber(
    server_factory, receiver: Receiver, cli, add_endpoint, database_url, photo_png
) -> None:
    endpoint = add_endpoint(receiver.url, "image.deleted")
    server = server_factory(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        post_image(client, photo_png)  # image.created: nobody wants it
    engine = create_engine(parse_database_url(database_url))
    try:
        with engine.connect() as conn:
            mine = webhook_deliveries.c.endpoint_id == endpoint["id"]
            query = select(func.count()).select_from(webhook_deliveries).where(mine)
            rows = conn.execute(query).scalar()
    finally:
        engine.dispose()
    assert rows == 0
    assert receiver.events() == []


def test_an_endpoint_added_to_a_running_server_gets_events(
    server_factory, receiver: Receiver, cli, add_endpoint, photo_png
) -> None:
    server = server_factory(**FAST)
    add_endpoint(receiver.url, "upload.created")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # The server reads the endpoint list every --webhook-refresh seconds: until it has,
        # uploads are not reported (documented); create uploads until one is.
        made = poll(
            lambda: (create_upload(client, 100), receiver.events())[1],
            bool,
            timeout=15,
        )
    assert made
    assert made[0].json()["type"] == "upload.created"


def test_two_servers_share_the_outbox_without_sending_twice(
    server_factory, receiver: Receiver, add_endpoint
) -> None:
    add_endpoint(receiver.url, "upload.created")
    servers = [server_factory(**FAST), server_factory(**FAST)]
    count = 20
    with httpx.Client(timeout=30) as client:
        for i in range(count):
            response = client.post(f"{servers[i % 2].url}/v1/uploads", json={"size": 100})
            assert response.status_code == 201, response.text
    got = receiver.wait_for(lambda got: len(got) >= count)
    ids = Counter(r.headers["webhook-id"] for r in got)
    assert len(ids) == count
    assert max(ids.values()) == 1


@pytest.mark.parametrize("events", ["upload.nope", ""])
def test_add_refuses_unknown_event_types(cli, receiver: Receiver, events: str) -> None:
    assert "unknown event type" in cli("add", receiver.url, "--events", events, code=2)


def test_list_and_remove(cli, add_endpoint, receiver: Receiver) -> None:
    endpoint = add_endpoint(receiver.url, "image.created,image.deleted")
    listed = cli("list")
    assert endpoint["id"] in listed
    assert "image.created,image.deleted" in listed
    assert endpoint["secret"] not in listed
    cli("remove", endpoint["id"])
    assert endpoint["id"] not in cli("list")
    cli("remove", endpoint["id"], code=1)


def test_a_receiver_that_hangs_does_not_hold_up_uploads(
    server_factory, receiver: Receiver, add_endpoint, photo_png
) -> None:
    add_endpoint(receiver.url, "image.created")
    release = threading.Event()

    def hang(_: object) -> tuple[int, None, float]:
        release.wait(60)
        return 200, None, 0.0

    receiver.answer = hang
    server = server_factory(webhook_concurrency=1, webhook_timeout=60, **FAST)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            first = post_image(client, photo_png)
            receiver.wait_for(bool)  # the one sending slot is now stuck on the receiver
            later = [post_image(client, photo_png) for _ in range(3)]
        assert not release.is_set()
        assert len(receiver.events()) == 1  # nothing else could be sent meanwhile
    finally:
        release.set()
    got = receiver.wait_for(lambda got: len(got) >= 4)
    sent = {r.json()["data"]["id"] for r in got}
    assert sent == {first["id"], *(image["id"] for image in later)}


def test_a_tus_upload_with_its_whole_body_reports_all_three_events_in_order(
    server_factory, receiver: Receiver, add_endpoint, photo_png
) -> None:
    add_endpoint(receiver.url)
    server = server_factory(**FAST)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = create(client, len(photo_png), body=photo_png)
        assert response.status_code == 201, response.text
    upload_id = location_path(response).rsplit("/", 1)[1]
    got = receiver.wait_for(lambda got: len(got) >= 3)
    assert types_for(got, upload_id) == ["upload.created", "upload.completed"]
    image_id = next(r.json()["data"]["id"] for r in got if r.json()["type"] == "image.created")
    completed = next(r.json()["data"] for r in got if r.json()["type"] == "upload.completed")
    assert completed["image_id"] == image_id


def test_an_endpoint_removed_while_servers_run_never_fails_an_upload(
    server_factory, receiver: Receiver, cli, add_endpoint, photo_png
) -> None:
    endpoint = add_endpoint(receiver.url, "image.created")
    # A long refresh: the server goes on naming the removed endpoint in its outbox rows.
    server = server_factory(webhook_retry_base=0.05, webhook_refresh=60)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        post_image(client, photo_png)
        receiver.wait_for(lambda got: len(got) >= 1)
        cli("remove", endpoint["id"])
        # Before: the outbox row's foreign key failed the image's transaction (500).
        again = client.post("/v1/images", content=photo_png, headers={"Content-Type": "image/png"})
        assert again.status_code == 201, again.text
