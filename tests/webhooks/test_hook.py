"""The pre-create hook over real HTTP: a hook server in the test decides; every way in asks it."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.http.helpers import RawRequest, assert_problem, create_upload
from tests.ietf.wire import INTEROP
from tests.tus.wire import TUS, create, location_path
from tests.webhooks.receiver import Receiver

pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


def _allow(_: Any) -> tuple[int, Any, float]:
    return 200, {"allow": True}, 0.0


def _deny(_: Any) -> tuple[int, Any, float]:
    return 200, {"allow": False, "status": 451, "message": "Not from here, please."}, 0.0


def _ways_in(client: httpx.Client, photo: bytes) -> dict[str, httpx.Response]:
    """Create an upload every way there is; the answers by way."""
    return {
        "native": client.post("/v1/uploads", json={"size": len(photo)}),
        "one-request": client.post("/v1/images", content=photo),
        "tus": create(client, len(photo)),
        "tus-with-body": create(client, len(photo), body=photo),
        "ietf": client.post(
            "/files", content=photo, headers={INTEROP: "8", "Upload-Complete": "?1"}
        ),
    }


def test_the_hook_is_told_about_the_upload_and_may_allow_it(
    server_factory, receiver: Receiver
) -> None:
    receiver.answer = _allow
    server = server_factory(hook_url=receiver.url)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        made = create_upload(client, 1234, filename="cat.png", content_type="image/png")
    (asked,) = receiver.events()
    request = asked.json()
    assert request["type"] == "pre-create"
    assert request["upload"] | {"id": None} == {
        "id": None,
        "size": 1234,
        "filename": "cat.png",
        "content_type": "image/png",
        "protocol": "native",
        "metadata": {},
    }
    assert request["upload"]["id"] == made["id"]
    assert request["credential_id"] is None  # anonymous: no access control yet
    assert request["client_address"] == "127.0.0.1"


def test_every_way_in_asks_the_hook_and_gets_its_refusal(
    server_factory, receiver: Receiver, photo_png
) -> None:
    receiver.answer = _deny
    server = server_factory(hook_url=receiver.url)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answers = _ways_in(client, photo_png)
        listed = client.get("/v1/images").json()
    for way, response in answers.items():
        problem = assert_problem(response, 451, "hook-refused")
        assert problem["detail"] == "Not from here, please.", way
    assert listed["images"] == []
    asked = [r.json()["upload"]["protocol"] for r in receiver.events()]
    assert asked == ["native", "one-request", "tus", "tus", "ietf"]


def test_the_hook_may_change_the_metadata(server_factory, receiver: Receiver) -> None:
    receiver.answer = lambda _: (
        200,
        {"allow": True, "metadata": {"filename": "renamed.png", "owner": "ops"}},
        0.0,
    )
    server = server_factory(hook_url=receiver.url)
    sent = "filename " + base64.b64encode(b"original.png").decode()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        path = location_path(create(client, 100, headers={"Upload-Metadata": sent}))
        head = client.head(path, headers=TUS)
    assert receiver.events()[0].json()["upload"]["metadata"] == {"filename": "original.png"}
    pairs = dict(item.split(" ") for item in head.headers["Upload-Metadata"].split(","))
    assert {k: base64.b64decode(v).decode() for k, v in pairs.items()} == {
        "filename": "renamed.png",
        "owner": "ops",
    }


@pytest.mark.parametrize(
    ("failure", "status"), [("closed", 503), ("open", 201)], ids=["closed", "open"]
)
def test_a_hook_that_does_not_answer_in_time_fails_as_configured(
    server_factory, receiver: Receiver, failure: str, status: int
) -> None:
    receiver.answer = lambda _: (200, {"allow": False}, 3.0)
    server = server_factory(hook_url=receiver.url, hook_timeout=0.3, hook_failure=failure)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/v1/uploads", json={"size": 100})
    assert response.status_code == status, response.text
    if status == 503:
        assert_problem(response, 503, "hook-unavailable")


@pytest.mark.parametrize(
    "answer",
    [(500, {"allow": True}, 0.0), (200, {"yes": 1}, 0.0), (200, None, 0.0)],
    ids=["500", "no-decision", "empty"],
)
def test_an_answer_that_is_not_a_decision_fails_closed(
    server_factory, receiver: Receiver, answer: tuple[int, Any, float]
) -> None:
    receiver.answer = lambda _: answer
    server = server_factory(hook_url=receiver.url)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post("/v1/uploads", json={"size": 100})
    assert_problem(response, 503, "hook-unavailable")


def test_bytes_that_came_while_the_hook_decided_are_kept(
    server_factory, receiver: Receiver, photo_png: bytes
) -> None:
    """A creation-with-upload whose first bytes arrive while the server still waits for the
    hook (longer than the idle timeout), and whose body then stops, keeps those bytes: they
    came in time, only the server was not reading yet."""
    receiver.answer = lambda _: (200, {"allow": True}, 1.0)
    server = server_factory(hook_url=receiver.url, idle_timeout=0.3)
    some = 20_000  # under uvicorn's read buffer: the socket is not paused, the timer runs
    headers = {**TUS, "Content-Type": "application/offset+octet-stream"}
    headers["Upload-Length"] = str(len(photo_png))
    silent = RawRequest(server.url, "POST", "/files/", len(photo_png), headers)
    try:
        silent.send(photo_png[:some])
        reply = silent.response()
    finally:
        silent.close()
    assert reply.status == 201, reply
    assert reply.headers["upload-offset"] == str(some)
