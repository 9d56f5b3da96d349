"""``--blob-redirect``, over real HTTP on PostgreSQL + an S3 bucket (SeaweedFS): a GET of a
public original answers 302 to a presigned URL of the bucket, which gives the exact bytes.

Not tested: that the URL stops working after its 300 s (it would take the time).
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pixdrop.config import ConfigError, load_settings
from pixdrop.http.serve import REDIRECT_EXPIRES
from tests.conftest import ServerFactory
from tests.http.helpers import post_image
from tests.imaging.corpus import gps_jpeg

pytestmark = [pytest.mark.postgres, pytest.mark.s3]


@pytest.fixture
def backend() -> str:
    return "s3"


def original(image: dict[str, Any]) -> str:
    return f"/v1/images/{image['id']}/original"


def test_public_original_redirects_to_a_presigned_url(
    server_factory: ServerFactory, photo_jpeg: bytes
) -> None:
    server = server_factory(blob_redirect=True)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        image = post_image(client, photo_jpeg)
        answer = client.get(original(image))
        assert answer.status_code == 302, answer.text
        location = answer.headers["location"]
        store = urlsplit(str(server.settings.blob_store))
        assert location.startswith(parse_qs(store.query)["endpoint_url"][0] + "/")
        query = parse_qs(urlsplit(location).query)
        if "X-Amz-Expires" in query:  # signature version 4: seconds
            assert query["X-Amz-Expires"] == [str(REDIRECT_EXPIRES)]
        else:  # version 2: the instant it expires
            assert abs(int(query["Expires"][0]) - time.time() - REDIRECT_EXPIRES) < 30
        cache = {d.strip() for d in answer.headers["cache-control"].split(",")}
        assert "private" in cache
        max_age = next(int(d.split("=")[1]) for d in cache if d.startswith("max-age="))
        assert 0 < max_age < REDIRECT_EXPIRES

        followed = client.get(original(image), follow_redirects=True)
        assert followed.status_code == 200
        assert followed.content == photo_jpeg
        # The presigned URL honours Range: a Range GET is redirected too.
        ranged = client.get(
            original(image), headers={"Range": "bytes=10-19"}, follow_redirects=True
        )
        assert ranged.status_code == 206
        assert ranged.content == photo_jpeg[10:20]

        # HEAD moves no bytes and is answered by pixdrop (a presigned GET refuses HEAD).
        head = client.head(original(image))
        assert head.status_code == 200
        assert int(head.headers["content-length"]) == len(photo_jpeg)
        # A client that has the bytes is told so without a second request.
        etag = head.headers["etag"]
        assert client.get(original(image), headers={"If-None-Match": etag}).status_code == 304


def test_an_original_that_is_not_public_is_not_redirected(server_factory: ServerFactory) -> None:
    """With a GPS location (and --strip-gps): others get a GPS-free copy and the uploader the
    original with private caching; neither is the shared original, so neither is redirected."""
    server = server_factory(blob_redirect=True)
    data = gps_jpeg()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        image = post_image(client, data)
        others = client.get(original(image))
        assert others.status_code == 200
        assert others.content != data
        mine = client.get(
            original(image), headers={"Authorization": f"Bearer {image['delete_token']}"}
        )
        assert mine.status_code == 200
        assert mine.content == data


def test_off_by_default(server_factory: ServerFactory, photo_jpeg: bytes) -> None:
    server = server_factory()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        image = post_image(client, photo_jpeg)
        answer = client.get(original(image))
        assert answer.status_code == 200
        assert answer.content == photo_jpeg


def test_refused_on_a_local_store(tmp_path: Any) -> None:
    with pytest.raises(ConfigError, match="blob_redirect needs an S3 blob store"):
        load_settings({}, data_dir=tmp_path, blob_redirect=True)
    with pytest.raises(ConfigError, match="blob_redirect"):
        load_settings({}, blob_store=tmp_path.as_uri(), blob_redirect=True)
