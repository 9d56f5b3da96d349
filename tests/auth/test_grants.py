"""Direct-upload grants over real HTTP, on SQLite and PostgreSQL (``--auth none``: the grant is
applied where the upload is opened, through ``http.direct.opener_of``).

A grant uploads one image by any way in (one request, native chunks, tus, the bare upload
URL), within its size, formats and expiry; a used grant is refused, and of two uploads racing
with one grant exactly one makes an image.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import expire_grant
from tests.conftest import LiveServer, ServerFactory
from tests.e2e import ServerProcess
from tests.e2e.test_two_nodes import pg_schema_url
from tests.http.helpers import assert_problem, split_chunks, tiny_image

TUS = {"Tus-Resumable": "1.0.0"}
__all__ = ["pg_schema_url"]  # the fixture, imported so that this module's tests can use it


def issue(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/direct-uploads", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(grant: dict[str, Any]) -> dict[str, str]:
    return {"Authorization": f"Bearer {grant['token']}"}


def status(client: httpx.Client, grant: dict[str, Any]) -> dict[str, Any]:
    response = client.get(f"/v1/direct-uploads/{grant['id']}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def client(server: LiveServer) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c  # type: ignore[misc]


def test_issue_answers_a_token_an_upload_url_and_the_constraints(client: httpx.Client) -> None:
    grant = issue(
        client, max_size=5000, formats=["png"], expires_in=600, metadata={"user": 7}, private=True
    )
    assert grant["token"].startswith("pxg_")
    assert len(grant["token"]) == 4 + 22 + 43  # id, then 256 bits of secret
    assert grant["token"][4:26] == grant["id"]
    assert grant["upload_url"].endswith(f"/v1/direct-uploads/{grant['token']}/image")
    assert (grant["max_size"], grant["formats"], grant["private"]) == (5000, ["png"], True)
    expires = datetime.fromisoformat(grant["expires_at"])
    created = datetime.fromisoformat(grant["created_at"])
    assert expires - created == timedelta(seconds=600)
    seen = status(client, grant)
    assert "token" not in seen
    assert (seen["used"], seen["expired"], seen["image"]) == (False, False, None)
    assert seen["metadata"] == {"user": 7}


@pytest.mark.parametrize(
    ("fields", "limit"),
    [
        ({"expires_in": 86_401}, None),
        ({"formats": ["bmp"]}, "formats"),
        ({"max_size": 0}, None),
        ({"unknown": 1}, None),
    ],
)
def test_issue_refuses_constraints_out_of_bounds(
    client: httpx.Client, fields: dict[str, Any], limit: str | None
) -> None:
    body = assert_problem(client.post("/v1/direct-uploads", json=fields), 400)
    if limit is not None:
        assert body["limit"] == limit


def test_one_request_upload_with_the_grant_then_it_is_used(
    client: httpx.Client, photo_png: bytes
) -> None:
    grant = issue(client)
    made = client.post("/v1/images", content=photo_png, headers=bearer(grant))
    assert made.status_code == 201, made.text
    seen = status(client, grant)
    assert seen["used"] is True
    assert seen["image_id"] == made.json()["id"]
    assert seen["image"]["id"] == made.json()["id"]
    again = client.post("/v1/images", content=tiny_image(), headers=bearer(grant))
    assert_problem(again, 409, "grant-used", grant=grant["id"], image_id=made.json()["id"])


def test_a_bare_form_posts_to_the_upload_url_without_any_header(
    server: LiveServer, photo_png: bytes
) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        grant = issue(client)
    # A new client, as a browser submitting an HTML form: no Authorization, multipart body.
    with httpx.Client(timeout=60) as browser:
        files = {"file": ("cat.png", photo_png, "image/png")}
        made = browser.post(grant["upload_url"], files=files)
        assert made.status_code == 201, made.text
        assert made.json()["filename"] == "cat.png"
        again = browser.post(grant["upload_url"], files=files)
        assert_problem(again, 409, "grant-used")
        token = grant["token"]
        wrong = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
        wrong_url = grant["upload_url"].replace(token, wrong)
        assert_problem(browser.post(wrong_url, files=files), 404, "grant-not-found")
        # The upload URL is a path of its own: POST only; the grant's id goes to status_url.
        listed = browser.get(grant["upload_url"])
        assert listed.status_code == 405
        assert listed.headers["Allow"] == "POST"


def test_native_chunks_with_the_grant(client: httpx.Client) -> None:
    data = tiny_image(width=300, height=200, seed=3)
    grant = issue(client, max_size=len(data))
    created = client.post(
        "/v1/uploads", json={"size": len(data), "chunk_size": 65_536}, headers=bearer(grant)
    )
    assert created.status_code == 201, created.text
    upload_id = created.json()["id"]
    for index, chunk in enumerate(split_chunks(data, 65_536)):
        sent = client.put(f"/v1/uploads/{upload_id}/chunks/{index}", content=chunk)
        assert sent.status_code == 201, sent.text
    done = client.post(f"/v1/uploads/{upload_id}/complete")
    assert done.status_code == 201, done.text
    assert status(client, grant)["image_id"] == done.json()["id"]


def test_tus_with_the_grant(client: httpx.Client, photo_png: bytes) -> None:
    grant = issue(client)
    created = client.post(
        "/files/", headers={**TUS, **bearer(grant), "Upload-Length": str(len(photo_png))}
    )
    assert created.status_code == 201, created.text
    patched = client.patch(
        created.headers["location"],
        content=photo_png,
        headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
    )
    assert patched.status_code == 204, patched.text
    assert status(client, grant)["used"] is True
    second = client.post("/files/", headers={**TUS, **bearer(grant), "Upload-Length": "10"})
    assert_problem(second, 409, "grant-used")


def test_tus_concatenation_is_refused_with_a_grant(client: httpx.Client) -> None:
    grant = issue(client)
    partial = client.post(
        "/files/",
        headers={**TUS, **bearer(grant), "Upload-Length": "10", "Upload-Concat": "partial"},
    )
    assert_problem(partial, 403, "forbidden")


def test_too_large_for_the_grant_on_every_way_in(client: httpx.Client, photo_png: bytes) -> None:
    grant = issue(client, max_size=1000)
    one = client.post("/v1/images", content=photo_png, headers=bearer(grant))
    assert_problem(one, 413, "grant-too-large", limit="grant.max_size", allowed=1000)
    chunked = client.post("/v1/uploads", json={"size": 5000}, headers=bearer(grant))
    assert_problem(chunked, 413, "grant-too-large", value=5000)
    tus = client.post("/files/", headers={**TUS, **bearer(grant), "Upload-Length": "5000"})
    assert_problem(tus, 413, "grant-too-large")
    # Refusals leave the grant unused.
    small = tiny_image()
    assert client.post("/v1/images", content=small, headers=bearer(grant)).status_code == 201


def test_a_format_the_grant_does_not_allow_is_refused_and_the_upload_freed(
    client: httpx.Client, photo_jpeg: bytes
) -> None:
    grant = issue(client, formats=["png"])
    refused = client.post("/v1/images", content=photo_jpeg, headers=bearer(grant))
    assert_problem(refused, 422, "grant-format-refused", format="jpeg", allowed=["png"])
    created = client.post(
        "/v1/uploads", json={"size": len(photo_jpeg)}, headers=bearer(grant)
    ).json()
    sent = client.put(f"/v1/uploads/{created['id']}/chunks/0", content=photo_jpeg)
    assert sent.status_code == 201, sent.text
    done = client.post(f"/v1/uploads/{created['id']}/complete")
    assert_problem(done, 422, "grant-format-refused")
    assert client.get(f"/v1/uploads/{created['id']}").status_code == 404
    assert status(client, grant)["used"] is False
    ok = client.post("/v1/images", content=tiny_image("PNG"), headers=bearer(grant))
    assert ok.status_code == 201, ok.text


def race_completions(targets: list[tuple[str, str]]) -> list[httpx.Response]:
    """``POST /v1/uploads/{id}/complete`` of each ``(server URL, upload id)``, all at once;
    the answers in the order of *targets*."""
    barrier = threading.Barrier(len(targets))
    answers: dict[int, httpx.Response] = {}

    def complete(index: int, base: str, upload_id: str) -> None:
        with httpx.Client(base_url=base, timeout=60) as own:
            barrier.wait()
            answers[index] = own.post(f"/v1/uploads/{upload_id}/complete")

    threads = [
        threading.Thread(target=complete, args=(i, *target)) for i, target in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [answers[i] for i in range(len(targets))]


def test_an_expired_grant_is_refused_naming_why(
    client: httpx.Client, database_url: str, photo_png: bytes
) -> None:
    grant = issue(client, expires_in=60)
    expire_grant(database_url, grant["id"])
    one = client.post("/v1/images", content=photo_png, headers=bearer(grant))
    assert_problem(one, 403, "grant-expired", grant=grant["id"])
    form = httpx.post(grant["upload_url"], files={"file": ("a.png", photo_png)}, timeout=60)
    assert_problem(form, 403, "grant-expired")
    chunked = client.post("/v1/uploads", json={"size": 100}, headers=bearer(grant))
    assert_problem(chunked, 403, "grant-expired")
    assert status(client, grant)["expired"] is True


def test_two_racing_uploads_with_one_grant_make_one_image(client: httpx.Client) -> None:
    grant = issue(client)
    ids = []
    for seed in (1, 2):
        data = tiny_image(width=200, height=100, seed=seed)
        created = client.post("/v1/uploads", json={"size": len(data)}, headers=bearer(grant))
        assert created.status_code == 201, created.text
        upload_id = created.json()["id"]
        sent = client.put(f"/v1/uploads/{upload_id}/chunks/0", content=data)
        assert sent.status_code == 201, sent.text
        ids.append(upload_id)
    base = str(client.base_url)
    answers = dict(zip(ids, race_completions([(base, i) for i in ids]), strict=True))
    codes = sorted(r.status_code for r in answers.values())
    assert codes == [201, 409], {k: r.text for k, r in answers.items()}
    winner = next(k for k, r in answers.items() if r.status_code == 201)
    loser = next(k for k, r in answers.items() if r.status_code == 409)
    assert_problem(answers[loser], 409, "grant-used")
    assert client.get(f"/v1/uploads/{loser}").status_code == 404  # freed
    assert status(client, grant)["image_id"] == answers[winner].json()["id"]


def test_an_unknown_grant_token_is_unauthorized(client: httpx.Client, photo_png: bytes) -> None:
    grant = issue(client)
    forged = grant["token"][:-4] + ("AAAA" if not grant["token"].endswith("AAAA") else "BBBB")
    answer = client.post(
        "/v1/images", content=photo_png, headers={"Authorization": f"Bearer {forged}"}
    )
    assert_problem(answer, 401, "unauthorized")
    assert answer.headers["www-authenticate"].startswith("Bearer")


def test_a_grant_cannot_issue_grants(client: httpx.Client) -> None:
    grant = issue(client)
    assert_problem(client.post("/v1/direct-uploads", json={}, headers=bearer(grant)), 403)


def test_status_of_an_unknown_grant(client: httpx.Client) -> None:
    assert_problem(client.get("/v1/direct-uploads/AAAAAAAAAAAAAAAAAAAAAA"), 404, "grant-not-found")
    assert_problem(client.get("/v1/direct-uploads/nope"), 404, "grant-not-found")


def test_the_access_log_never_shows_a_grant_token(
    server_factory: ServerFactory, photo_png: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    live = server_factory(access_log=True)
    with httpx.Client(base_url=live.url, timeout=60) as client:
        grant = issue(client)
        with caplog.at_level(logging.INFO, logger="pixdrop.access"):
            made = client.post(grant["upload_url"], files={"file": ("a.png", photo_png)})
            assert made.status_code == 201, made.text
    lines = [r.getMessage() for r in caplog.records if r.name == "pixdrop.access"]
    assert any("/v1/direct-uploads/pxg_" in line for line in lines), lines
    assert not any(grant["token"][4:] in line for line in lines), lines


def test_open_uploads_are_capped_per_client_address(server_factory: ServerFactory) -> None:
    live = server_factory(max_open_uploads_per_client=2, trust_forwarded=True)
    with httpx.Client(base_url=live.url, timeout=60) as client:
        here = {"X-Forwarded-For": "203.0.113.7"}
        first = client.post("/v1/uploads", json={"size": 100}, headers=here)
        assert first.status_code == 201, first.text
        second = client.post("/files/", headers={**TUS, **here, "Upload-Length": "100"})
        assert second.status_code == 201, second.text
        third = client.post("/v1/uploads", json={"size": 100}, headers=here)
        assert_problem(
            third, 429, "too-many-open-uploads", limit="max_open_uploads_per_client", value=2
        )
        # A grant's uploads count against the address too.
        grant = issue(client)
        with_grant = client.post(
            "/v1/uploads", json={"size": 100}, headers={**here, **bearer(grant)}
        )
        assert_problem(with_grant, 429, "too-many-open-uploads")
        # Another address has its own count; a freed upload gives its place back.
        other = client.post(
            "/v1/uploads", json={"size": 100}, headers={"X-Forwarded-For": "203.0.113.8"}
        )
        assert other.status_code == 201, other.text
        assert client.delete(f"/v1/uploads/{first.json()['id']}").status_code == 204
        again = client.post("/v1/uploads", json={"size": 100}, headers=here)
        assert again.status_code == 201, again.text


def test_ietf_draft_upload_with_the_grant(client: httpx.Client, photo_png: bytes) -> None:
    grant = issue(client, formats=["png"])
    ietf = {"Upload-Draft-Interop-Version": "6", "Upload-Complete": "?1"}
    made = client.post("/files/", content=photo_png, headers={**ietf, **bearer(grant)})
    assert made.status_code == 201, made.text
    assert status(client, grant)["used"] is True
    again = client.post("/files/", content=photo_png, headers={**ietf, **bearer(grant)})
    assert again.status_code == 409, again.text
    assert again.json()["type"].endswith("grant-used")


@pytest.fixture
def two_nodes(tmp_path: Path, pg_schema_url: str) -> Iterator[list[ServerProcess]]:
    """Two ``pixdrop serve`` processes on one PostgreSQL schema and one data directory."""
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            node = ServerProcess(tmp_path, tmp_path / "data", pg_schema_url, ["--no-access-log"])
            started.append(node)
            node.wait_healthy()
        yield started
    finally:
        for node in started:
            node.stop()


@pytest.mark.postgres
def test_uploads_racing_with_one_grant_on_two_nodes_make_one_image(
    two_nodes: list[ServerProcess],
) -> None:
    node_a, node_b = two_nodes
    for round_ in range(3):
        with httpx.Client(base_url=node_a.url, timeout=60) as client:
            grant = issue(client)
            ids = []
            for seed in (1, 2):
                data = tiny_image(width=120, height=80, seed=10 * round_ + seed)
                created = client.post(
                    "/v1/uploads", json={"size": len(data)}, headers=bearer(grant)
                )
                assert created.status_code == 201, created.text
                ids.append(created.json()["id"])
                put = client.put(f"/v1/uploads/{ids[-1]}/chunks/0", content=data)
                assert put.status_code == 201, put.text
        answers = race_completions([(node_a.url, ids[0]), (node_b.url, ids[1])])
        assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
        made = next(r for r in answers if r.status_code == 201).json()["id"]
        with httpx.Client(base_url=node_b.url, timeout=60) as client:
            assert status(client, grant)["image_id"] == made
