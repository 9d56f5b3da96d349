"""The webhooks admin API (``/v1/webhooks``) over real HTTP, on SQLite and PostgreSQL: a
pixdrop server, receivers in the test, deliveries checked with the ``standardwebhooks``
library as a receiver would."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from pixdrop.webhooks.signing import new_secret
from tests.auth.conftest import SIGNING_KEY, bearer, direct_key
from tests.conftest import LiveServer, ServerFactory
from tests.http.helpers import assert_problem, poll, post_image, tiny_image
from tests.webhooks.receiver import Receiver

FAST = {"webhook_retry_base": 0.05, "webhook_refresh": 0.2}

Add = Callable[..., dict[str, Any]]


@pytest.fixture
def admin(server_factory: ServerFactory, database_url: str) -> Iterator[httpx.Client]:
    """An admin key's client of a ``--auth keys`` server that gives up deliveries quickly."""
    server = server_factory(auth="keys", signing_key=SIGNING_KEY, webhook_retry_for=1.0, **FAST)
    secret = direct_key(database_url, scopes=("admin",), name="webhooks-admin")
    with httpx.Client(base_url=server.url, headers=bearer(secret), timeout=30) as client:
        yield client


@pytest.fixture
def add(admin: httpx.Client) -> Iterator[Add]:
    """``POST /v1/webhooks``; what was added is removed at the end of the test (the
    PostgreSQL database is shared by the session's tests)."""
    added: list[str] = []

    def make(url: str, events: list[str] | None = None, **more: Any) -> dict[str, Any]:
        response = admin.post("/v1/webhooks", json={"url": url, "events": events or ["*"], **more})
        assert response.status_code == 201, response.text
        found: dict[str, Any] = response.json()
        assert response.headers["Location"] == f"/v1/webhooks/{found['id']}"
        added.append(found["id"])
        return found

    yield make
    for webhook_id in added:
        admin.delete(f"/v1/webhooks/{webhook_id}")


def deliveries_to(admin: httpx.Client, webhook: dict[str, Any], **params: Any) -> list[Any]:
    """Every delivery to *webhook*, newest first, following ``next_cursor`` page by page."""
    found: list[Any] = []
    cursor: int | None = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = admin.get("/v1/webhooks/deliveries", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        found += [d for d in page["deliveries"] if d["endpoint_id"] == webhook["id"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return found


def test_an_endpoint_added_by_the_api_gets_signed_events(
    admin: httpx.Client, add: Add, receiver: Receiver
) -> None:
    webhook = add(receiver.url, ["image.created"])
    assert webhook["events"] == ["image.created"]
    assert webhook["secret"].startswith("whsec_")
    image = post_image(admin, tiny_image(seed=31))

    receiver.wait_for(lambda got: len(got) >= 1)
    events = receiver.verified(webhook["secret"])  # raises unless the signature is right
    assert [(e["type"], e["data"]["id"]) for e in events] == [("image.created", image["id"])]


def test_a_given_secret_signs_and_the_list_shows_no_secret(
    admin: httpx.Client, add: Add, receiver: Receiver
) -> None:
    secret = new_secret()
    webhook = add(receiver.url, ["image.created", "image.deleted"], secret=secret)
    assert webhook["secret"] == secret

    listed = admin.get("/v1/webhooks")
    assert listed.status_code == 200, listed.text
    assert listed.headers["Cache-Control"] == "no-store"
    mine = [w for w in listed.json()["webhooks"] if w["id"] == webhook["id"]]
    assert mine == [
        {
            "id": webhook["id"],
            "url": receiver.url,
            "events": ["image.created", "image.deleted"],
            "created_at": webhook["created_at"],
        }
    ]
    assert secret not in listed.text
    post_image(admin, tiny_image(seed=32))
    receiver.wait_for(lambda got: len(got) >= 1)
    assert receiver.verified(secret)[0]["type"] == "image.created"


def test_a_removed_endpoint_is_sent_nothing_more(
    admin: httpx.Client, add: Add, receiver: Receiver
) -> None:
    other = Receiver()
    try:
        removed = add(receiver.url, ["image.created"])
        kept = add(other.url, ["image.created"])
        gone = admin.delete(f"/v1/webhooks/{removed['id']}")
        assert gone.status_code == 204, gone.text
        assert_problem(admin.delete(f"/v1/webhooks/{removed['id']}"), 404, "not-found")
        listed = admin.get("/v1/webhooks").json()["webhooks"]
        assert removed["id"] not in {w["id"] for w in listed}

        image = post_image(admin, tiny_image(seed=33))
        # The kept endpoint is sent the event; the removed one has no delivery of it at all.
        other.wait_for(lambda got: len(got) >= 1)
        assert other.verified(kept["secret"])[0]["data"]["id"] == image["id"]
        assert deliveries_to(admin, removed) == []
        assert receiver.events() == []
    finally:
        other.stop()


def test_failed_deliveries_are_listed_newest_first_and_resent(
    admin: httpx.Client, add: Add, receiver: Receiver
) -> None:
    receiver.answer = lambda _: (503, None, 0.0)
    webhook = add(receiver.url, ["image.created"])
    images = [post_image(admin, tiny_image(seed=40 + n))["id"] for n in range(3)]

    failed = poll(
        lambda: deliveries_to(admin, webhook, state="failed", limit=1),
        lambda found: len(found) == 3,
        timeout=60,
    )
    # Paged one by one, newest first: the images' events in the reverse order they were made.
    assert [d["id"] for d in failed] == sorted((d["id"] for d in failed), reverse=True)
    assert [d["state"] for d in failed] == ["failed"] * 3
    assert {d["last_status"] for d in failed} == {503}
    assert {d["resource"] for d in failed} == {f"image/{i}" for i in images}
    assert deliveries_to(admin, webhook, state="delivered") == []

    tries = len(receiver.events())
    receiver.answer = lambda _: (200, None, 0.0)
    resent = admin.post(f"/v1/webhooks/deliveries/{failed[0]['id']}/resend")
    assert resent.status_code == 204, resent.text
    got = receiver.wait_for(lambda got: len(got) > tries)
    assert got[-1].headers["webhook-id"] == failed[0]["event_id"]
    assert receiver.verified(webhook["secret"])[-1]["id"] == failed[0]["event_id"]
    settled = poll(
        lambda: deliveries_to(admin, webhook, state="delivered"), lambda found: len(found) == 1
    )
    assert [(d["id"], d["attempts"], d["next_attempt_at"]) for d in settled] == [
        (failed[0]["id"], 1, None)
    ]
    assert len(deliveries_to(admin, webhook, state="failed")) == 2


def test_unknown_ids_are_404(admin: httpx.Client) -> None:
    assert_problem(admin.post("/v1/webhooks/deliveries/999999999/resend"), 404, "not-found")
    assert_problem(admin.delete("/v1/webhooks/nosuchendpoint"), 404, "not-found")
    assert_problem(admin.delete(f"/v1/webhooks/{'A' * 22}"), 404, "not-found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.com/", "events": ["*"]}, "url"),
        ({"url": "http:///x", "events": ["*"]}, "url"),
        ({"url": "http://example.com/", "events": ["image.eaten"]}, "events"),
        ({"url": "http://example.com/", "events": []}, "events"),
        ({"url": "http://example.com/", "events": ["*"], "secret": "whsec_short"}, "secret"),
        ({"url": "http://example.com/", "events": ["*"], "colour": "red"}, "colour"),
        ({"events": ["*"]}, "url"),
    ],
)
def test_a_bad_body_is_400_naming_the_field(
    admin: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = admin.post("/v1/webhooks", json=body)
    problem = assert_problem(response, 400, "invalid-upload-request")
    assert [e["field"] for e in problem["errors"]] == [field]


def test_the_cli_refuses_what_the_api_refuses(cli: Callable[..., str]) -> None:
    """One check for both (``outbox.new_endpoint``): a URL without a host, say."""
    assert "http:// or https://" in cli("add", "http:///x", "--events", "*", code=2)
    assert "http:// or https://" in cli("add", "ftp://example.com/", "--events", "*", code=2)
    assert "unknown event type" in cli("add", "http://x/", "--events", "image.eaten", code=2)
    assert "whsec_" in cli("add", "http://x/", "--events", "*", "--secret", "whsec_x", code=2)


def test_keys_mode_needs_an_admin_key(
    server_factory: ServerFactory, database_url: str, add: Add
) -> None:
    webhook = add("http://127.0.0.1:9/never")
    server: LiveServer = server_factory(auth="keys", signing_key=SIGNING_KEY)
    reader = direct_key(database_url, scopes=("upload", "read", "delete"), name="not-admin")
    calls = [
        ("POST", "/v1/webhooks", {"url": "http://127.0.0.1:9/", "events": ["*"]}),
        ("GET", "/v1/webhooks", None),
        ("DELETE", f"/v1/webhooks/{webhook['id']}", None),
        ("GET", "/v1/webhooks/deliveries?state=failed", None),
        ("POST", "/v1/webhooks/deliveries/1/resend", None),
    ]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method, path, body in calls:
            anonymous = client.request(method, path, json=body)
            assert_problem(anonymous, 401, "unauthorized")
            assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
            refused = client.request(method, path, json=body, headers=bearer(reader))
            problem = assert_problem(refused, 403, "forbidden")
            assert problem["required_scope"] == "admin"


def test_an_open_server_takes_it_without_a_key(
    server_factory: ServerFactory, receiver: Receiver
) -> None:
    """``--auth none``, as the keys API: open (on loopback; docs/auth.md)."""
    server = server_factory(auth="none", **FAST)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        made = client.post("/v1/webhooks", json={"url": receiver.url, "events": ["*"]})
        assert made.status_code == 201, made.text
        try:
            image = post_image(client, tiny_image(seed=50))
            got = receiver.wait_for(lambda got: len(got) >= 1)
            assert got[0].json()["data"]["id"] == image["id"]
        finally:
            assert client.delete(f"/v1/webhooks/{made.json()['id']}").status_code == 204
