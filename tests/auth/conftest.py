"""Fixtures of the access-control suites: a server in ``--auth keys`` mode and its keys.

The first key (admin) is made straight in the server's database, as ``pixdrop keys create``
does while a server runs; every other key is made through the admin API (``POST /v1/keys``).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest
from sqlalchemy import update

from pixdrop.auth.keys import issue_key
from pixdrop.metadata import database_url as parse_database_url
from pixdrop.metadata import open_metadata_store
from pixdrop.metadata.sql import make_engine
from pixdrop.metadata.tables import grants
from pixdrop.models import utcnow
from tests.conftest import LiveServer, ServerFactory

SIGNING_KEY = "test-signing-key-0123456789"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def direct_key(database_url: str, *, expired: bool = False, **options: Any) -> str:
    """A key made in the database itself; *expired*: one whose lifetime ended an hour ago."""

    async def make() -> str:
        meta = open_metadata_store(database_url)
        try:
            clock = (lambda: utcnow() - timedelta(hours=2)) if expired else utcnow
            expires_in = timedelta(hours=1) if expired else None
            options.setdefault("name", "direct")
            issued = await issue_key(meta, clock=clock, expires_in=expires_in, **options)
            return issued.secret
        finally:
            await meta.close()

    # On a thread of its own: a test may already run an event loop here (Playwright's).
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(anyio.run, make).result()


def expire_grant(database_url: str, grant_id: str) -> None:
    """Move a grant's expiry a second into the past, in the server's database."""
    engine = make_engine(parse_database_url(database_url))
    try:
        with engine.begin() as conn:
            past = datetime.now(UTC) - timedelta(seconds=1)
            conn.execute(update(grants).where(grants.c.id == grant_id).values(expires_at=past))
    finally:
        engine.dispose()


@dataclass
class Keys:
    """A keyed server, its admin client, and a way to make more keys."""

    server: LiveServer
    admin: str
    database_url: str

    def client(self, secret: str | None = None) -> httpx.Client:
        headers = bearer(secret) if secret else {}
        return httpx.Client(base_url=self.server.url, headers=headers, timeout=30)

    def make(self, *scopes: str, **options: Any) -> str:
        """A new key with *scopes* (and quota, max_open_uploads... options), via the API."""
        with self.client(self.admin) as admin:
            response = admin.post(
                "/v1/keys", json={"name": "test", "scopes": list(scopes), **options}
            )
        assert response.status_code == 201, response.text
        secret: str = response.json()["secret"]
        return secret

    def revoked(self, *scopes: str) -> str:
        secret = self.make(*scopes)
        key_id = secret[4:26]
        with self.client(self.admin) as admin:
            assert admin.delete(f"/v1/keys/{key_id}").status_code == 204
        return secret

    def expired(self, *scopes: str) -> str:
        return direct_key(self.database_url, expired=True, scopes=scopes)


@pytest.fixture
def keys(server_factory: ServerFactory, database_url: str) -> Keys:
    server = server_factory(auth="keys", signing_key=SIGNING_KEY)
    admin = direct_key(database_url, scopes=("admin",), name="bootstrap")
    return Keys(server, admin, database_url)
