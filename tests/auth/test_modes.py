"""``--auth``: its defaults by address, the warning for an open server off loopback, and what
``none`` still does with a key."""

from __future__ import annotations

import logging

import httpx
import pytest

from pixdrop.config import Settings
from pixdrop.http.app import create_app
from tests.auth.conftest import bearer, direct_key
from tests.conftest import ServerFactory
from tests.http.helpers import assert_problem, tiny_image


@pytest.mark.parametrize(
    ("host", "auth", "mode"),
    [
        ("127.0.0.1", None, "none"),
        ("::1", None, "none"),
        ("localhost", None, "none"),
        ("0.0.0.0", None, "keys"),
        ("192.0.2.7", None, "keys"),
        ("0.0.0.0", "none", "none"),
        ("127.0.0.1", "keys", "keys"),
    ],
)
def test_default_mode_follows_the_address(host: str, auth: str | None, mode: str) -> None:
    assert Settings(host=host, auth=auth).auth_mode == mode


def test_an_open_server_off_loopback_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="pixdrop"):
        create_app(Settings(host="0.0.0.0", auth="none"))
    assert any("--auth none on 0.0.0.0" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="pixdrop"):
        create_app(Settings(host="127.0.0.1"))
        create_app(Settings(host="0.0.0.0"))
    assert not [r for r in caplog.records if "--auth none" in r.getMessage()]


def test_open_mode_still_knows_keys(server_factory: ServerFactory, database_url: str) -> None:
    server = server_factory(auth="none")
    secret = direct_key(database_url, scopes=("upload", "read"))
    with httpx.Client(base_url=server.url) as client:
        anonymous = client.post("/v1/images", content=tiny_image(seed=1)).json()
        mine = client.post("/v1/images", content=tiny_image(seed=2), headers=bearer(secret)).json()
        everyone = [i["id"] for i in client.get("/v1/images").json()["images"]]
        assert {anonymous["id"], mine["id"]} <= set(everyone)  # the database may hold others
        own = client.get("/v1/images", headers=bearer(secret)).json()["images"]
        assert [i["id"] for i in own] == [mine["id"]]
        forged = secret[:-4] + ("AAAA" if not secret.endswith("AAAA") else "BBBB")
        assert_problem(client.get("/v1/limits", headers=bearer(forged)), 401, "unauthorized")
