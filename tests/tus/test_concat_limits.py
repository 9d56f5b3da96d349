"""tus concatenation cannot amplify: a final upload names each partial once, a bounded number
of them, none another final waits for, and never more bytes than ``max_image_size``; every
refusal comes before a byte is copied (issue 16)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pixdrop.services.concat import MAX_PARTIALS
from tests.conftest import LiveServer, ServerFactory
from tests.http.helpers import assert_problem, tiny_image
from tests.tus.wire import TUS, create, head, location_path, new_upload, patch

KiB = 1024
PARTIAL = {"Upload-Concat": "partial"}


@pytest.fixture
def server(server_factory: ServerFactory) -> LiveServer:
    return server_factory(max_image_size=64 * KiB)


@pytest.fixture
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def final(client: httpx.Client, paths: list[str]) -> httpx.Response:
    return client.post("/files", headers={**TUS, "Upload-Concat": "final;" + " ".join(paths)})


def staged(server: LiveServer) -> dict[str, int]:
    """The staging files of the server's data directory and their sizes (none is looked
    for on S3, whose staging is multipart uploads in the bucket)."""
    if server.settings.blob_store is not None:
        return {}
    root = Path(server.settings.data_dir) / "staging"
    return {entry.name: entry.stat().st_size for entry in os.scandir(root)}


def test_a_complete_partial_named_twice_is_refused_before_any_copy(server, client) -> None:
    image = tiny_image("PNG")
    path = new_upload(client, len(image), headers=PARTIAL)
    assert patch(client, path, 0, image).status_code == 204
    before = staged(server)

    body = assert_problem(final(client, [path, path]), 400, "invalid-resumable-request")

    assert body["partial"] == path.rsplit("/", 1)[1]
    assert staged(server) == before  # no final upload was staged, nothing was joined
    assert head(client, path).status_code == 200  # the partial is still there to use


def test_an_unfinished_partial_named_twice_is_refused(client) -> None:
    path = new_upload(client, 1000, headers=PARTIAL)
    assert_problem(final(client, [path, path]), 400, "invalid-resumable-request")
    assert head(client, path).headers["upload-offset"] == "0"


def test_deferred_partials_already_over_the_limit_are_refused_at_creation(client) -> None:
    paths = [new_upload(client, None, headers=PARTIAL) for _ in range(2)]
    for path in paths:
        assert patch(client, path, 0, b"x" * (40 * KiB)).status_code == 204

    body = assert_problem(final(client, paths), 413, "payload-too-large")

    assert body["value"] == 80 * KiB
    assert body["allowed"] == 64 * KiB


def test_a_deferred_length_grown_past_the_limit_is_refused_before_the_join(server, client) -> None:
    grows = new_upload(client, None, headers=PARTIAL)
    fixed = new_upload(client, 10 * KiB, headers=PARTIAL)
    made = final(client, [grows, fixed])
    assert made.status_code == 201, made.text
    final_path = location_path(made)
    end = {"Upload-Length": str(60 * KiB)}
    assert patch(client, grows, 0, b"x" * (60 * KiB), headers=end).status_code == 204

    assert_problem(patch(client, fixed, 0, b"y" * (10 * KiB)), 413, "payload-too-large")

    # Refused as a whole: the final upload and both pieces are freed, nothing was joined.
    for path in (final_path, grows, fixed):
        assert head(client, path).status_code == 404, path
    assert staged(server) == {}


def test_a_partial_belongs_to_one_final_the_newest(client) -> None:
    """A client whose final upload's answer was lost (or whose completion a crash cut short)
    creates it again: the new final replaces the earlier one, which is freed, and the image is
    made once, by the new one."""
    data = tiny_image("PNG", 40, 30, seed=3)
    pieces = [data[: len(data) // 2], data[len(data) // 2 :]]
    paths = [new_upload(client, len(piece), headers=PARTIAL) for piece in pieces]
    earlier = final(client, paths)
    assert earlier.status_code == 201, earlier.text

    again = final(client, paths)

    assert again.status_code == 201, again.text
    assert head(client, location_path(earlier)).status_code == 404
    for path, piece in zip(paths, pieces, strict=True):
        assert patch(client, path, 0, piece).status_code == 204
    done = head(client, location_path(again))
    assert done.headers["upload-offset"] == str(len(data))


def test_a_final_names_at_most_max_partials(client) -> None:
    paths = [location_path(create(client, 1, headers=PARTIAL)) for _ in range(MAX_PARTIALS + 1)]
    body = assert_problem(final(client, paths), 400, "invalid-resumable-request")
    assert body["allowed"] == MAX_PARTIALS
    assert final(client, paths[:MAX_PARTIALS]).status_code == 201
