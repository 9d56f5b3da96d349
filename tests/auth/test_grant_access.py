"""Direct-upload grants under ``--auth keys``, over real sockets on SQLite and PostgreSQL: what a
grant makes is its issuer's (listing, quota) and private if the grant says so, by the bearer
token or by the upload URL; who may issue a grant and read its status; the upload URL needs no
credential and is counted by address; ``/metrics`` needs an admin key on the main port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.auth.conftest import SIGNING_KEY, Keys, bearer, direct_key
from tests.auth.test_ratelimit import fresh_address, remaining
from tests.conftest import ServerFactory
from tests.e2e import ServerProcess
from tests.http.helpers import assert_problem, free_port, tiny_image

TUS = {"Tus-Resumable": "1.0.0"}


def issue(client: httpx.Client, **fields: Any) -> dict[str, Any]:
    response = client.post("/v1/direct-uploads", json=fields)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def listed(client: httpx.Client) -> set[str]:
    response = client.get("/v1/images")
    assert response.status_code == 200, response.text
    return {image["id"] for image in response.json()["images"]}


def usage(keys: Keys, secret: str) -> tuple[int, int]:
    with keys.client(keys.admin) as admin:
        (key,) = [k for k in admin.get("/v1/keys").json()["keys"] if k["id"] == secret[4:26]]
    return key["used_bytes"], key["open_uploads"]


def _by_bearer(grant: dict[str, Any], data: bytes, url: str) -> httpx.Response:
    return httpx.post(url + "/v1/images", content=data, headers=bearer(grant["token"]), timeout=60)


def _by_form(grant: dict[str, Any], data: bytes, url: str) -> httpx.Response:
    files = {"file": ("cat.png", data, "image/png")}
    return httpx.post(grant["upload_url"], files=files, timeout=60)


def _by_tus(grant: dict[str, Any], data: bytes, url: str) -> httpx.Response:
    auth = {**TUS, **bearer(grant["token"])}
    created = httpx.post(url + "/files/", headers={**auth, "Upload-Length": str(len(data))})
    assert created.status_code == 201, created.text
    patched = httpx.patch(
        created.headers["location"],
        content=data,
        headers={**auth, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        timeout=60,
    )
    assert patched.status_code == 204, patched.text
    # The image a tus upload made: the grant's status names it.
    return patched


WAYS = {"bearer": _by_bearer, "form": _by_form, "tus": _by_tus}


def _image_of(issuer: httpx.Client, grant: dict[str, Any]) -> str:
    status = issuer.get(f"/v1/direct-uploads/{grant['id']}")
    assert status.status_code == 200, status.text
    image_id: str = status.json()["image_id"]
    assert image_id is not None
    return image_id


@pytest.mark.parametrize("way", list(WAYS))
def test_what_a_grant_makes_is_the_issuers_and_private_by_the_grant(
    keys: Keys, way: str, photo_png: bytes
) -> None:
    issuer_secret = keys.make("upload", "read")
    other_secret = keys.make("upload", "read")
    url = keys.server.url
    with keys.client(issuer_secret) as issuer, keys.client(other_secret) as other:
        private = issue(issuer, private=True, metadata={"user": 7})
        public = issue(issuer)
        assert WAYS[way](private, photo_png, url).status_code in (201, 204)
        assert WAYS[way](public, tiny_image(seed=5), url).status_code in (201, 204)
        private_id, public_id = _image_of(issuer, private), _image_of(issuer, public)
        # The issuer's: in its listing, not in another key's.
        assert {private_id, public_id} <= listed(issuer)
        assert not {private_id, public_id} & listed(other)
        # Private by the grant: the owner's read key, not anyone else.
        assert issuer.get(f"/v1/images/{private_id}/original").status_code == 200
        assert_problem(httpx.get(f"{url}/v1/images/{private_id}/original"), 401, "unauthorized")
        assert_problem(other.get(f"/v1/images/{private_id}/original"), 403, "forbidden")
        assert httpx.get(f"{url}/v1/images/{public_id}/original").status_code == 200
        # The metadata stays with the grant, for its issuer.
        seen = issuer.get(f"/v1/direct-uploads/{private['id']}").json()
        assert (seen["metadata"], seen["used"]) == ({"user": 7}, True)


def test_a_grants_upload_counts_against_the_issuers_quota(keys: Keys, photo_png: bytes) -> None:
    small = tiny_image()
    assert len(photo_png) > len(small)
    url = keys.server.url
    for way in ("bearer", "form"):
        issuer_secret = keys.make("upload", "read", quota=len(small) + 10)
        with keys.client(issuer_secret) as issuer:
            refused = WAYS[way](issue(issuer), photo_png, url)
            assert_problem(refused, 403, "quota-exceeded", limit="quota", allowed=len(small) + 10)
            assert usage(keys, issuer_secret) == (0, 0)
            made = WAYS[way](issue(issuer), small, url)
            assert made.status_code == 201, made.text
            assert usage(keys, issuer_secret) == (len(small), 0)


def test_who_may_issue_grants_and_read_their_status(keys: Keys) -> None:
    uploader, reader = keys.make("upload"), keys.make("read")
    other = keys.make("upload", "read")
    with keys.client() as nobody:
        assert_problem(nobody.post("/v1/direct-uploads", json={}), 401, "unauthorized")
    with keys.client(reader) as client:
        assert_problem(client.post("/v1/direct-uploads", json={}), 403, "forbidden")
    with keys.client(uploader) as client:
        grant = issue(client)
    status = f"/v1/direct-uploads/{grant['id']}"
    with keys.client(grant["token"]) as holder:
        assert_problem(holder.post("/v1/direct-uploads", json={}), 403, "forbidden")
        assert_problem(holder.get(status), 403, "forbidden")
    with keys.client() as nobody:
        answer = nobody.get(status)
        assert_problem(answer, 401, "unauthorized")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    with keys.client(other) as client:
        assert_problem(client.get(status), 404, "grant-not-found")
    for secret in (uploader, keys.admin):
        with keys.client(secret) as client:
            assert client.get(status).status_code == 200


def test_the_upload_url_needs_no_credential_and_counts_by_address(
    server_factory: ServerFactory, database_url: str, photo_png: bytes
) -> None:
    live = server_factory(
        auth="keys", signing_key=SIGNING_KEY, rate_limit="2/minute", trust_forwarded=True
    )
    # The issuer is counted by its own rate, the browsers by their addresses.
    issuer_secret = direct_key(database_url, scopes=("upload", "read"), rate="100/minute")
    with httpx.Client(base_url=live.url, headers=bearer(issuer_secret), timeout=60) as issuer:
        grants = [issue(issuer) for _ in range(3)]
    here = {"X-Forwarded-For": fresh_address()}
    files = {"file": ("a.png", photo_png, "image/png")}
    with httpx.Client(timeout=60) as browser:
        made = browser.post(grants[0]["upload_url"], files=files, headers=here)
        assert made.status_code == 201, made.text
        assert remaining(made) == 1
        assert browser.post(grants[1]["upload_url"], files=files, headers=here).status_code == 201
        over = browser.post(grants[2]["upload_url"], files=files, headers=here)
        assert_problem(over, 429, "rate-limited")
        elsewhere = {"X-Forwarded-For": fresh_address()}
        again = browser.post(grants[2]["upload_url"], files=files, headers=elsewhere)
        assert again.status_code == 201, again.text
    with httpx.Client(base_url=live.url, headers=bearer(issuer_secret), timeout=60) as issuer:
        assert made.json()["id"] in listed(issuer)


def test_metrics_need_an_admin_key_and_health_checks_nothing(keys: Keys) -> None:
    with keys.client() as nobody:
        answer = nobody.get("/metrics")
        assert_problem(answer, 401, "unauthorized")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert nobody.get("/healthz").status_code == 200
        assert nobody.get("/readyz").status_code == 200
    with keys.client(keys.make("upload", "read", "delete")) as client:
        assert_problem(client.get("/metrics"), 403, "forbidden")
    with keys.client(keys.admin) as admin:
        scraped = admin.get("/metrics")
        assert scraped.status_code == 200
        assert "pixdrop_http_requests_total" in scraped.text


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_on_the_metrics_port_metrics_need_no_key(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    args = ["--auth", "keys", "--metrics-port", str(port), "--no-access-log"]
    server = ServerProcess(tmp_path, tmp_path / "data", database_url, args)
    try:
        server.wait_healthy(timeout=120)
        assert httpx.get(server.url + "/metrics").status_code == 404
        assert httpx.get(server.url + "/v1/limits").status_code == 401  # keys mode indeed
        scraped = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert scraped.status_code == 200
        assert "pixdrop_" in scraped.text
    finally:
        server.stop()
