"""Every route x every kind of credential, on SQLite and PostgreSQL, over real sockets.

The table names each route's scope (``None``: a public read, or the upload URL whose
credential is in its path; ``any``: any valid credential) and the statuses a right credential
gets. Expected, in ``--auth keys``: a protected route answers 401 with
``WWW-Authenticate: Bearer`` without a credential, 403 to a key without the scope, 401 to a
revoked or an expired key; a public read answers everyone but a bad key.

A direct-upload grant is a credential of scope ``upload`` that still resolves once expired or
used (``auth/grants.py``): where it would open an upload it is refused naming why (403
``grant-expired``, 409 ``grant-used``); it may not issue grants nor read their status (403);
routes that act on an existing upload (whose id is the capability) take it as any upload
credential, so an upload opened before its grant expired can finish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.auth.conftest import Keys, bearer, expire_grant
from tests.http.helpers import assert_problem, sha256_hex, tiny_image

IMAGE = tiny_image()
TUS = {"Tus-Resumable": "1.0.0"}
IETF = {"Upload-Draft-Interop-Version": "8", "Upload-Complete": "?1"}
#: Where the matrix's webhook endpoints point: a port nothing listens on.
DEAD_URL = "http://127.0.0.1:9/matrix"


class World:
    """Fresh things to act on, made by the owner's key (so a refusal is about the caller)."""

    def __init__(self, keys: Keys) -> None:
        self.keys = keys
        self.owner_secret = keys.make("upload", "read", "delete")
        self.owner = keys.client(self.owner_secret)
        self.private_image = self.image(private=True)

    def image(self, *, private: bool = False) -> str:
        params = {"private": "true"} if private else {}
        response = self.owner.post("/v1/images", content=tiny_image(seed=7), params=params)
        assert response.status_code == 201, response.text
        image_id: str = response.json()["id"]
        return image_id

    def upload(self, *, with_chunk: bool = False) -> str:
        response = self.owner.post("/v1/uploads", json={"size": len(IMAGE)})
        assert response.status_code == 201, response.text
        upload_id: str = response.json()["id"]
        if with_chunk:
            put = self.owner.put(f"/v1/uploads/{upload_id}/chunks/0", content=IMAGE)
            assert put.status_code == 201, put.text
        return upload_id

    def grant(self) -> dict[str, Any]:
        response = self.owner.post("/v1/direct-uploads", json={})
        assert response.status_code == 201, response.text
        grant: dict[str, Any] = response.json()
        return grant

    def expired_grant(self) -> str:
        grant = self.grant()
        expire_grant(self.keys.database_url, grant["id"])
        token: str = grant["token"]
        return token

    def used_grant(self) -> str:
        token: str = self.grant()["token"]
        made = self.owner.post("/v1/images", content=tiny_image(seed=9), headers=bearer(token))
        assert made.status_code == 201, made.text
        return token

    def webhook(self, events: tuple[str, ...] = ("image.deleted",)) -> str:
        """A new webhook endpoint (to a port nothing listens on), made by an admin key."""
        with self.keys.client(self.keys.admin) as admin:
            response = admin.post("/v1/webhooks", json={"url": DEAD_URL, "events": list(events)})
        assert response.status_code == 201, response.text
        webhook_id: str = response.json()["id"]
        return webhook_id

    def delivery(self) -> int:
        """A delivery to a new endpoint: of the image.created event of a new image."""
        webhook_id = self.webhook(("image.created",))
        self.image()
        with self.keys.client(self.keys.admin) as admin:
            found = admin.get("/v1/webhooks/deliveries", params={"limit": 200}).json()
        mine = [d for d in found["deliveries"] if d["endpoint_id"] == webhook_id]
        assert mine, found
        seq: int = mine[0]["id"]
        return seq

    def remove_webhooks(self) -> None:
        """Remove the endpoints the matrix made (PostgreSQL's database outlives the test)."""
        with self.keys.client(self.keys.admin) as admin:
            for found in admin.get("/v1/webhooks").json()["webhooks"]:
                if found["url"] == DEAD_URL:
                    assert admin.delete(f"/v1/webhooks/{found['id']}").status_code == 204

    def tus(self) -> str:
        headers = {**TUS, "Upload-Length": str(len(IMAGE))}
        response = self.owner.post("/files/", headers=headers)
        assert response.status_code == 201, response.text
        return response.headers["Location"]


Call = Callable[[httpx.Client, World], httpx.Response]


@dataclass(frozen=True)
class Route:
    name: str
    #: The scope it needs; None for a public read; "any" for any valid key.
    scope: str | None
    call: Call
    ok: tuple[int, ...]
    #: What an expired and a used grant get (status, problem type); None: as any credential
    #: of scope upload (``ok`` where the route takes scope upload or any, else 403).
    expired_grant: tuple[int, str] | None = None
    used_grant: tuple[int, str] | None = None


def _form(client: httpx.Client, world: World) -> httpx.Response:
    files = {"file": ("a.png", IMAGE, "image/png")}
    return client.post(world.grant()["upload_url"], files=files)


def _patch(client: httpx.Client, world: World) -> httpx.Response:
    headers = {**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    return client.patch(world.tus(), content=IMAGE, headers=headers)


#: Opening an upload with an expired or a used grant: refused naming why.
OPENING = ((403, "grant-expired"), (409, "grant-used"))
#: Routes for keys only: no grant, whatever its state.
NOT_BY_GRANT = ((403, "forbidden"), (403, "forbidden"))

ROUTES = [
    Route(
        "one request",
        "upload",
        lambda c, w: c.post("/v1/images", content=IMAGE),
        (201,),
        *OPENING,
    ),
    Route(
        "create upload",
        "upload",
        lambda c, w: c.post("/v1/uploads", json={"size": 9}),
        (201,),
        *OPENING,
    ),
    Route("upload status", "upload", lambda c, w: c.get(f"/v1/uploads/{w.upload()}"), (200,)),
    Route(
        "put chunk",
        "upload",
        lambda c, w: c.put(f"/v1/uploads/{w.upload()}/chunks/0", content=IMAGE),
        (201,),
    ),
    Route(
        "complete",
        "upload",
        lambda c, w: c.post(f"/v1/uploads/{w.upload(with_chunk=True)}/complete"),
        (201,),
    ),
    Route("abort upload", "upload", lambda c, w: c.delete(f"/v1/uploads/{w.upload()}"), (204,)),
    Route(
        "tus create",
        "upload",
        lambda c, w: c.post("/files/", headers={**TUS, "Upload-Length": "10"}),
        (201,),
        *OPENING,
    ),
    Route("tus head", "upload", lambda c, w: c.head(w.tus(), headers=TUS), (200,)),
    Route("tus patch", "upload", _patch, (204,)),
    Route("tus terminate", "upload", lambda c, w: c.delete(w.tus(), headers=TUS), (204,)),
    Route(
        "ietf create",
        "upload",
        lambda c, w: c.post("/files/", headers=IETF, content=IMAGE),
        (201,),
        *OPENING,
    ),
    Route(
        "issue grant",
        "upload",
        lambda c, w: c.post("/v1/direct-uploads", json={}),
        (201,),
        *NOT_BY_GRANT,
    ),
    Route(
        "grant status",
        "any",
        lambda c, w: c.get(f"/v1/direct-uploads/{w.grant()['id']}"),
        (200,),
        *NOT_BY_GRANT,
    ),
    Route("grant upload url", None, _form, (201,)),
    Route(
        "blob check",
        "upload",
        lambda c, w: c.get(f"/v1/blobs/sha256/{sha256_hex(b'none')}"),
        (404,),  # the route answered: no such bytes
    ),
    Route("limits", "any", lambda c, w: c.get("/v1/limits"), (200,)),
    Route("list images", "read", lambda c, w: c.get("/v1/images"), (200,)),
    Route(
        "signed url",
        "read",
        lambda c, w: c.get(f"/v1/images/{w.private_image}/signed-url"),
        (200,),
    ),
    Route(
        "private original",
        "read",
        lambda c, w: c.get(f"/v1/images/{w.private_image}/original"),
        (200,),
    ),
    Route(
        "private variant",
        "read",
        lambda c, w: c.get(f"/v1/images/{w.private_image}/thumb"),
        (200,),
    ),
    Route("delete image", "delete", lambda c, w: c.delete(f"/v1/images/{w.image()}"), (204,)),
    Route("list keys", "admin", lambda c, w: c.get("/v1/keys"), (200,)),
    Route(
        "create key",
        "admin",
        lambda c, w: c.post("/v1/keys", json={"name": "n", "scopes": ["read"]}),
        (201,),
    ),
    Route(
        "revoke key",
        "admin",
        lambda c, w: c.delete(f"/v1/keys/{w.keys.make('read')[4:26]}"),
        (204,),
    ),
    Route("list webhooks", "admin", lambda c, w: c.get("/v1/webhooks"), (200,)),
    Route(
        "add webhook",
        "admin",
        lambda c, w: c.post("/v1/webhooks", json={"url": DEAD_URL, "events": ["*"]}),
        (201,),
    ),
    Route("remove webhook", "admin", lambda c, w: c.delete(f"/v1/webhooks/{w.webhook()}"), (204,)),
    Route(
        "list deliveries",
        "admin",
        lambda c, w: c.get("/v1/webhooks/deliveries", params={"state": "failed"}),
        (200,),
    ),
    Route(
        "resend delivery",
        "admin",
        lambda c, w: c.post(f"/v1/webhooks/deliveries/{w.delivery()}/resend"),
        (204,),
    ),
    Route("image metadata", None, lambda c, w: c.get(f"/v1/images/{w.image()}"), (200,)),
    Route("original", None, lambda c, w: c.get(f"/v1/images/{w.image()}/original"), (200,)),
    Route("variant", None, lambda c, w: c.get(f"/v1/images/{w.image()}/thumb"), (200,)),
]

#: Paths that need no credential: health checks and the web page's static files.
OPEN = [("/healthz", 200), ("/", 200), ("/web/app.js", 200)]

#: For each scope, a key that lacks it.
WRONG = {
    "upload": ("read",),
    "read": ("upload",),
    "delete": ("upload", "read"),
    "admin": ("upload", "read", "delete"),
}


GRANTS = ("expired grant", "used grant")


def _expected(route: Route, credential: str) -> tuple[tuple[int, ...], str | None]:
    """The statuses *credential* may get on *route*, and the problem type of a refusal."""
    if credential in ("revoked", "expired"):
        return (401,), "unauthorized"
    if route.scope is None or credential == "right":
        return route.ok, None
    if credential == "none":
        return (401,), "unauthorized"
    if credential in GRANTS:
        special = route.expired_grant if credential == "expired grant" else route.used_grant
        if special is not None:
            return (special[0],), special[1]
        if route.scope in ("upload", "any"):
            return route.ok, None
    return (403,), "forbidden"


def _check(response: httpx.Response, expected: tuple[tuple[int, ...], str | None]) -> None:
    statuses, problem = expected
    assert response.status_code in statuses, (response.status_code, response.text)
    if response.status_code == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    if problem is not None and response.request.method != "HEAD":
        assert_problem(response, response.status_code, problem)


@pytest.mark.parametrize("route", ROUTES, ids=[r.name for r in ROUTES])
def test_route_x_credential(keys: Keys, route: Route, subtests: Any) -> None:
    world = World(keys)
    right = keys.admin if route.scope == "admin" else world.owner_secret
    credentials: dict[str, str | None] = {
        "none": None,
        "revoked": keys.revoked("admin"),
        "expired": keys.expired("admin"),
        "expired grant": world.expired_grant(),
        "used grant": world.used_grant(),
        "right": right,
    }
    if route.scope not in (None, "any"):
        credentials["wrong scope"] = keys.make(*WRONG[route.scope])
    try:
        for credential, secret in credentials.items():
            with subtests.test(credential=credential), keys.client(secret) as client:
                _check(route.call(client, world), _expected(route, credential))
    finally:
        world.remove_webhooks()
        world.owner.close()


def test_open_paths_need_nothing(keys: Keys) -> None:
    with keys.client() as client:
        for path, status in OPEN:
            assert client.get(path).status_code == status, path
