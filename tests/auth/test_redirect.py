"""``--blob-redirect`` never sends a private original to the bucket: a presigned URL would
outlive the key or signature checked here. On PostgreSQL + S3 (SeaweedFS)."""

from __future__ import annotations

import httpx
import pytest

from tests.auth.conftest import bearer, direct_key
from tests.conftest import ServerFactory

pytestmark = [pytest.mark.postgres, pytest.mark.s3]


@pytest.fixture
def backend() -> str:
    return "s3"


def test_private_originals_are_never_redirected(
    server_factory: ServerFactory, database_url: str, photo_jpeg: bytes
) -> None:
    server = server_factory(auth="keys", blob_redirect=True)
    secret = direct_key(database_url, scopes=("upload", "read"))
    with httpx.Client(base_url=server.url, headers=bearer(secret), timeout=30) as client:
        public = client.post("/v1/images", content=photo_jpeg).json()
        private = client.post("/v1/images", content=photo_jpeg, params={"private": "true"}).json()
        assert client.get(f"/v1/images/{public['id']}/original").status_code == 302
        answer = client.get(f"/v1/images/{private['id']}/original")
        assert answer.status_code == 200
        assert answer.content == photo_jpeg
        assert answer.headers["Cache-Control"].startswith("private")
