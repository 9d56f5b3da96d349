"""Quotas over HTTP: the refusal names limit, usage and request; what ends gives bytes back;
two server processes racing for the last bytes of a quota on PostgreSQL cannot both win."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import Keys, bearer, direct_key
from tests.e2e import ServerProcess
from tests.http.helpers import assert_problem, tiny_image

IMAGE = tiny_image()


def usage(keys: Keys, secret: str) -> tuple[int, int]:
    with keys.client(keys.admin) as admin:
        (key,) = [k for k in admin.get("/v1/keys").json()["keys"] if k["id"] == secret[4:26]]
    return key["used_bytes"], key["open_uploads"]


def test_refusal_names_the_limit_and_ends_give_bytes_back(keys: Keys) -> None:
    secret = keys.make("upload", "read", "delete", quota=1000 + len(IMAGE), max_open_uploads=2)
    with keys.client(secret) as client:
        first = client.post("/v1/uploads", json={"size": 1000})
        assert first.status_code == 201, first.text
        image = client.post("/v1/images", content=IMAGE)
        assert image.status_code == 201, image.text
        assert usage(keys, secret) == (1000 + len(IMAGE), 1)
        refused = client.post("/v1/uploads", json={"size": 1})
        assert_problem(refused, 403, "quota-exceeded", limit="quota",
                       allowed=1000 + len(IMAGE), usage=1000 + len(IMAGE), requested=1)  # fmt: skip
        assert client.delete(f"/v1/uploads/{first.json()['id']}").status_code == 204
        assert usage(keys, secret) == (len(IMAGE), 0)
        assert client.delete(f"/v1/images/{image.json()['id']}").status_code == 204
        assert usage(keys, secret) == (0, 0)
        tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "10"}
        assert client.post("/files/", headers=tus).status_code == 201
        assert client.post("/v1/uploads", json={"size": 10}).status_code == 201
        too_many = client.post("/files/", headers=tus)
        assert_problem(too_many, 403, "quota-exceeded", limit="max_open_uploads", usage=2)


def test_a_finished_upload_keeps_its_bytes_as_an_image(keys: Keys) -> None:
    secret = keys.make("upload", quota=len(IMAGE))
    with keys.client(secret) as client:
        upload = client.post("/v1/uploads", json={"size": len(IMAGE)}).json()
        assert client.put(f"/v1/uploads/{upload['id']}/chunks/0", content=IMAGE).status_code == 201
        assert client.post(f"/v1/uploads/{upload['id']}/complete").status_code == 201
        assert usage(keys, secret) == (len(IMAGE), 0)
        assert_problem(client.post("/v1/images", content=IMAGE), 403, "quota-exceeded")


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_processes_racing_for_the_last_bytes(tmp_path: Path, database_url: str) -> None:
    size, room = 1000, 6
    secret = direct_key(database_url, scopes=("upload",), quota=size * room)
    nodes = [
        ServerProcess(tmp_path, tmp_path / "data", database_url, ["--auth", "keys"])
        for _ in range(2)
    ]
    try:
        for node in nodes:
            node.wait_healthy()

        def create(i: int) -> int:
            url = nodes[i % 2].url + "/v1/uploads"
            response = httpx.post(url, json={"size": size}, headers=bearer(secret), timeout=60)
            return response.status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(create, range(4 * room)))
    finally:
        for node in nodes:
            node.stop()
    assert sorted(set(statuses)) == [201, 403], statuses
    assert statuses.count(201) == room
