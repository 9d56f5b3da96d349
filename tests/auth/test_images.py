"""Owners, listing, deletion and private images over HTTP, in ``--auth keys``."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import httpx

from pixdrop.auth.signing import UrlSigner
from tests.auth.conftest import SIGNING_KEY, Keys, bearer
from tests.conftest import ServerFactory
from tests.http.helpers import assert_problem, tiny_image


def _post(keys: Keys, secret: str, *, seed: int, private: bool = False) -> dict[str, str]:
    with keys.client(secret) as client:
        params = {"private": "true"} if private else {}
        response = client.post("/v1/images", content=tiny_image(seed=seed), params=params)
    assert response.status_code == 201, response.text
    body: dict[str, str] = response.json()
    return body


def test_each_key_lists_its_own_images_and_admin_all(keys: Keys) -> None:
    alice, bob = keys.make("upload", "read"), keys.make("upload", "read")
    alices = [_post(keys, alice, seed=i)["id"] for i in range(5)]
    bobs = [_post(keys, bob, seed=10 + i)["id"] for i in range(2)]
    with keys.client(alice) as client:
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/images", params=params).json()
            seen += [image["id"] for image in page["images"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
    assert seen == list(reversed(alices))  # newest first, only hers, every page
    with keys.client(keys.admin) as admin:
        listed = admin.get("/v1/images", params={"limit": 500}).json()["images"]
    assert set(alices) | set(bobs) <= {image["id"] for image in listed}  # others' too


def test_delete_by_owner_key_by_token_and_by_the_deprecated_bearer_token(keys: Keys) -> None:
    owner = keys.make("upload", "read", "delete")
    stranger = keys.make("upload", "read", "delete")
    mine = _post(keys, owner, seed=1)
    with keys.client(stranger) as client:
        refused = client.delete(f"/v1/images/{mine['id']}")
        assert_problem(refused, 403, "forbidden")
    with keys.client(owner) as client:
        assert client.delete(f"/v1/images/{mine['id']}").status_code == 204
    by_header = _post(keys, owner, seed=2)
    by_scheme = _post(keys, owner, seed=3)
    by_bearer = _post(keys, owner, seed=4)
    with keys.client() as anyone:
        token = {"Pixdrop-Delete-Token": by_header["delete_token"]}
        response = anyone.delete(f"/v1/images/{by_header['id']}", headers=token)
        assert response.status_code == 204
        assert "Deprecation" not in response.headers
        scheme = {"Authorization": f"Pixdrop-Delete-Token {by_scheme['delete_token']}"}
        assert anyone.delete(f"/v1/images/{by_scheme['id']}", headers=scheme).status_code == 204
        old = anyone.delete(
            f"/v1/images/{by_bearer['id']}", headers=bearer(by_bearer["delete_token"])
        )
        assert old.status_code == 204
        assert old.headers["Deprecation"].startswith("@")
        assert_problem(anyone.delete(f"/v1/images/{_post(keys, owner, seed=5)['id']}"), 401)


def test_private_images_need_the_owner_or_a_signed_url(keys: Keys) -> None:
    owner, other = keys.make("upload", "read"), keys.make("upload", "read")
    image = _post(keys, owner, seed=1, private=True)
    public = _post(keys, owner, seed=2)
    paths = [f"/v1/images/{image['id']}", f"/v1/images/{image['id']}/original",
             f"/v1/images/{image['id']}/thumb"]  # fmt: skip
    with keys.client() as anyone, keys.client(other) as stranger, keys.client(owner) as mine:
        for path in paths:
            assert_problem(anyone.get(path), 401, "unauthorized")
            assert_problem(stranger.get(path), 403, "forbidden")
            response = mine.get(path)
            assert response.status_code == 200, (path, response.text)
            assert response.headers["Cache-Control"].startswith("private")
        assert anyone.get(f"/v1/images/{public['id']}/original").headers["Cache-Control"] == (
            "public, max-age=31536000, immutable"
        )
        assert stranger.get(f"/v1/images/{image['id']}/signed-url").status_code == 403
        signed = mine.get(f"/v1/images/{image['id']}/signed-url", params={"expires_in": 60})
        assert signed.status_code == 200, signed.text
        url = signed.json()["url"]
        response = anyone.get(url)
        assert response.status_code == 200
        assert response.headers["Cache-Control"].startswith("private")
        query = signed.json()["query"]
        assert anyone.get(f"/v1/images/{image['id']}/thumb?{query}").status_code == 200
        forged = url[:-3] + ("AAA" if not url.endswith("AAA") else "BBB")
        assert_problem(anyone.get(forged), 401)
        expires = int(time.time()) - 1
        late = UrlSigner([SIGNING_KEY]).sign(image["id"], expires)
        path = f"/v1/images/{image['id']}/original"
        assert_problem(anyone.get(path, params={"expires": expires, "sig": late}), 401)


def test_urls_signed_with_the_previous_key_work_during_rotation(
    server_factory: ServerFactory,
) -> None:
    old, new = "old-signing-key-0123456789", "new-signing-key-0123456789"
    server = server_factory(auth="none", signing_key=new, signing_key_previous=old)

    with httpx.Client(base_url=server.url, headers={"Pixdrop-Private": "true"}) as client:
        image = client.post("/v1/images", content=tiny_image()).json()
        path = f"/v1/images/{image['id']}/original"
        assert client.get(path).status_code == 401  # private even without access control
        expires = int(time.time()) + 600
        for key, status in ((old, 200), (new, 200), ("unknown-key-0123456789", 401)):
            sig = UrlSigner([key]).sign(image["id"], expires)
            response = client.get(path, params={"expires": expires, "sig": sig})
            assert response.status_code == status, key
        signing = f"/v1/images/{image['id']}/signed-url"
        assert client.get(signing).status_code == 403  # only the uploader signs
        token = {"Pixdrop-Delete-Token": image["delete_token"]}
        assert client.get(path, headers=token).status_code == 200
        signed = client.get(signing, headers=token).json()
        assert parse_qs(urlsplit(signed["url"]).query)["sig"] == [
            UrlSigner([new]).sign(image["id"], signed["expires_at"])
        ]
