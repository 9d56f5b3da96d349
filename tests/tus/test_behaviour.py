"""tus uploads end to end: real images in several requests, cut and hung connections, parallel
partial uploads, deferred lengths, expiry, and the real ``pixdrop serve`` process.

Each test runs on a fresh server (``server`` / ``server_factory``, both metadata backends).
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import anyio
import httpx
import pytest

from pixdrop.metadata import open_metadata_store
from pixdrop.models import Part
from tests.conftest import DATA
from tests.e2e import ServerProcess
from tests.http.helpers import (
    RawRequest,
    assert_problem,
    files_containing,
    poll,
    send_cut,
    split_chunks,
)
from tests.tus.wire import (
    EXTENSIONS,
    OCTETS,
    TUS,
    checksum,
    create,
    fetch_image,
    head,
    location_path,
    metadata,
    new_upload,
    offset_of,
    patch,
    send_chunked,
    send_expecting_continue,
    sf_strings,
)

KiB = 1024


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def patch_until_done(
    client: httpx.Client, path: str, data: bytes, deadline: float = 10.0
) -> tuple[httpx.Response, int]:
    """Send the rest of *data* from wherever the server says the upload is, answering 409
    (stale offset) and 423 (locked) as a client would, until a 2xx or 4xx that is neither;
    return the last reply and the offset its PATCH started at. Fails after *deadline* s."""
    end = time.monotonic() + deadline
    offset = offset_of(client, path)
    while True:
        response = patch(client, path, offset, data[offset:])
        if response.status_code not in (409, 423):
            return response, offset
        assert time.monotonic() < end, f"no PATCH got through in {deadline} s: {response.text}"
        if response.status_code == 409:
            offset = int(response.json().get("offset", offset_of(client, path)))
        else:
            time.sleep(min(float(response.headers.get("retry-after", "1")), 1.0))
            offset = offset_of(client, path)


# --- real images -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"), [("rocket.jpg", "image/jpeg"), ("chelsea.png", "image/png")]
)
def test_image_in_several_patches(server, client, name: str, content_type: str) -> None:
    data = (DATA / name).read_bytes()
    meta = metadata(filename=name, filetype=content_type)
    path = new_upload(client, len(data), headers={"Upload-Metadata": meta})
    pieces = split_chunks(data, len(data) // 4 + 1)
    assert len(pieces) == 4
    offset = 0
    for piece in pieces[:-1]:
        response = patch(client, path, offset, piece)
        assert response.status_code == 204, response.text
        offset += len(piece)
        assert response.headers["upload-offset"] == str(offset)
        assert "pixdrop-image" not in response.headers
        assert offset_of(client, path) == offset
    last = patch(client, path, offset, pieces[-1])
    assert last.status_code == 204, last.text
    assert last.headers["upload-offset"] == str(len(data))
    token = last.headers["pixdrop-delete-token"]
    image = sf_strings(last.headers["pixdrop-image"])
    assert image["url"] == f"{server.url}/v1/images/{image['id']}"

    assert fetch_image(client, last.headers["pixdrop-image"], token) == data
    info = client.get(image["url"]).json()
    assert (info["filename"], info["content_type"]) == (name, content_type)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()

    after = head(client, path)
    assert after.status_code == 200
    assert after.headers["upload-offset"] == after.headers["upload-length"] == str(len(data))
    assert sf_strings(after.headers["pixdrop-image"]) == image
    assert "pixdrop-delete-token" not in after.headers
    assert after.headers["upload-metadata"] == meta

    # Terminating the finished upload frees the record; the image stays until its own DELETE.
    assert client.delete(path, headers=TUS).status_code == 204
    assert head(client, path).status_code == 404
    assert client.get(image["url"]).status_code == 200
    gone = client.delete(image["url"], headers={"Authorization": f"Bearer {token}"})
    assert gone.status_code == 204, gone.text


@pytest.mark.local_disk  # looks for leftovers in the data directory
def test_not_an_image_is_refused_on_the_last_patch(server, client) -> None:
    data = random.Random(3).randbytes(20 * KiB)
    path = new_upload(client, len(data))
    first = patch(client, path, 0, data[: 10 * KiB])
    assert first.status_code == 204, first.text
    last = patch(client, path, 10 * KiB, data[10 * KiB :])
    body = assert_problem(last, 422)
    assert last.headers["tus-resumable"] == "1.0.0"
    assert "pixdrop-image" not in last.headers, body
    assert head(client, path).status_code == 404
    assert files_containing(server.settings.data_dir, data[:64]) == []


@pytest.mark.local_disk
def test_termination_frees_the_bytes(server, client) -> None:
    data = random.Random(4).randbytes(20 * KiB)
    path = new_upload(client, 2 * len(data))
    assert patch(client, path, 0, data).status_code == 204
    assert files_containing(server.settings.data_dir, data[:64]) != []
    assert client.delete(path, headers=TUS).status_code == 204
    assert files_containing(server.settings.data_dir, data[:64]) == []
    assert head(client, path).status_code == 404


@pytest.mark.local_disk
def test_creation_with_upload_of_a_whole_image(server, client, photo_jpeg) -> None:
    meta = metadata(filename="photo.jpg", filetype="image/jpeg")
    response = create(client, len(photo_jpeg), body=photo_jpeg, headers={"Upload-Metadata": meta})
    assert response.status_code == 201, response.text
    assert response.headers["upload-offset"] == str(len(photo_jpeg))
    token = response.headers["pixdrop-delete-token"]
    assert fetch_image(client, response.headers["pixdrop-image"], token) == photo_jpeg
    image = sf_strings(response.headers["pixdrop-image"])
    info = client.get(image["url"]).json()
    assert info["filename"] == "photo.jpg"
    assert info["sha256"] == hashlib.sha256(photo_jpeg).hexdigest()
    path = location_path(response)
    after = head(client, path)
    assert after.headers["upload-offset"] == after.headers["upload-length"]
    assert after.headers["upload-offset"] == str(len(photo_jpeg))
    assert after.headers["upload-metadata"] == meta
    assert sf_strings(after.headers["pixdrop-image"]) == image
    # Complete: a repeated empty PATCH at the end is harmless, more data is refused.
    assert patch(client, path, len(photo_jpeg), b"").status_code == 204
    assert_problem(patch(client, path, len(photo_jpeg), b"x"), 409)
    # Nothing is left in staging once the image is stored.
    assert list((server.settings.data_dir / "staging").iterdir()) == []


@pytest.mark.local_disk  # looks for leftovers in the data directory
def test_creation_with_upload_of_not_an_image_keeps_nothing(server, client) -> None:
    data = random.Random(5).randbytes(20 * KiB)
    response = create(client, len(data), body=data)
    assert_problem(response, 422)
    assert "location" not in response.headers
    assert files_containing(server.settings.data_dir, data[:64]) == []


@pytest.mark.parametrize("algorithm", ["sha1", "crc32"])
@pytest.mark.local_disk  # looks for leftovers in the data directory
def test_creation_with_upload_checks_upload_checksum(server, client, photo_png, algorithm) -> None:
    good = {"Upload-Checksum": checksum(algorithm, photo_png)}
    response = create(client, len(photo_png), body=photo_png, headers=good)
    assert response.status_code == 201, response.text
    assert fetch_image(client, response.headers["pixdrop-image"]) == photo_png

    altered = photo_png[:-10] + bytes(10)
    wrong = create(client, len(altered), body=altered, headers=good)
    assert_problem(wrong, 460)
    assert files_containing(server.settings.data_dir, altered[-200:]) == []


def test_silent_creation_with_upload_keeps_what_arrived(server_factory, photo_png) -> None:
    """A creation whose body stops is answered after the idle timeout with the bytes kept, so
    the client can resume at the offset it is told."""
    server = server_factory(idle_timeout=0.5)
    half = len(photo_png) // 2
    headers = {**TUS, "Content-Type": OCTETS, "Upload-Length": str(len(photo_png))}
    silent = RawRequest(server.url, "POST", "/files/", len(photo_png), headers)
    try:
        silent.send(photo_png[:half])
        reply = silent.response()
    finally:
        silent.close()
    assert reply.status == 201, reply
    assert reply.headers["upload-offset"] == str(half)
    assert "pixdrop-image" not in reply.headers
    path = urlsplit(reply.headers["location"]).path
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert offset_of(client, path) == half
        last = patch(client, path, half, photo_png[half:])
        assert last.status_code == 204, last.text
        assert fetch_image(client, last.headers["pixdrop-image"]) == photo_png


def test_creation_with_upload_waits_for_100_continue(server, photo_jpeg) -> None:
    """A client that asks ``Expect: 100-continue`` learns early whether to send the body."""
    headers = {**TUS, "Upload-Length": str(len(photo_jpeg)), "Content-Type": OCTETS}
    continued, reply = send_expecting_continue(server.url, "/files/", headers, photo_jpeg)
    assert continued, reply
    assert reply.status == 201, reply
    assert "pixdrop-image" in reply.headers, reply
    too_big = {**headers, "Upload-Length": str(4 * 1024**3 + 1)}
    continued, reply = send_expecting_continue(server.url, "/files/", too_big, photo_jpeg)
    assert (continued, reply.status) == (False, 413), reply


def test_deferred_length(client, photo_jpeg) -> None:
    path = new_upload(client, None)
    half = len(photo_jpeg) // 2
    first = patch(client, path, 0, photo_jpeg[:half])
    assert first.status_code == 204, first.text
    state = head(client, path)
    assert state.headers["upload-defer-length"] == "1"
    assert "upload-length" not in state.headers
    assert state.headers["upload-offset"] == str(half)
    last = patch(client, path, half, photo_jpeg[half:], {"Upload-Length": str(len(photo_jpeg))})
    assert last.status_code == 204, last.text
    assert fetch_image(client, last.headers["pixdrop-image"]) == photo_jpeg
    done = head(client, path)
    assert done.headers["upload-length"] == str(len(photo_jpeg))
    assert "upload-defer-length" not in done.headers


# --- cut and hung connections ----------------------------------------------------------------


def test_interrupted_patch_keeps_what_arrived(server, client, photo_png) -> None:
    path = new_upload(client, len(photo_png))
    half = len(photo_png) // 2
    headers = {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"}
    send_cut(server.url, "PATCH", path, photo_png, half, headers)
    # The server notices the disconnect on its own time: wait for the offset to move.
    offset = poll(lambda: offset_of(client, path), lambda n: n >= half, timeout=10)
    assert offset == half, f"kept {offset} of the {half} bytes sent"
    last = patch(client, path, offset, photo_png[offset:])
    assert last.status_code == 204, last.text
    assert fetch_image(client, last.headers["pixdrop-image"]) == photo_png


def test_interrupted_patch_with_a_checksum_keeps_nothing(server, client, photo_png) -> None:
    path = new_upload(client, len(photo_png))
    headers = {
        **TUS,
        "Content-Type": OCTETS,
        "Upload-Offset": "0",
        "Upload-Checksum": checksum("sha1", photo_png),
    }
    send_cut(server.url, "PATCH", path, photo_png, len(photo_png) // 2, headers)
    response, started_at = patch_until_done(client, path, photo_png)
    assert started_at == 0, "bytes of a cut request with Upload-Checksum were kept"
    assert response.status_code == 204, response.text


def test_a_refused_patch_sent_again_stores_the_right_bytes(server, client, photo_png) -> None:
    """Bytes written by a PATCH that is then refused (its checksum does not match) never
    count in the image's sha256, even though they passed the server's running hash."""
    path = new_upload(client, len(photo_png))
    half = len(photo_png) // 2
    assert patch(client, path, 0, photo_png[:half]).status_code == 204
    wrong = bytes(len(photo_png) - half)
    refused = patch(
        client, path, half, wrong, {"Upload-Checksum": checksum("sha1", photo_png[half:])}
    )
    assert refused.status_code == 460, refused.text
    last = patch(client, path, half, photo_png[half:])
    assert last.status_code == 204, last.text
    # fetch_image also checks that the sha256 the image is described with is its bytes'
    assert fetch_image(client, last.headers["pixdrop-image"]) == photo_png


def test_patches_in_order_store_the_image_under_its_sha256(server, client, photo_png) -> None:
    path = new_upload(client, len(photo_png))
    step = len(photo_png) // 5 + 1
    for start in range(0, len(photo_png), step):
        response = patch(client, path, start, photo_png[start : start + step])
        assert response.status_code == 204, response.text
    assert fetch_image(client, response.headers["pixdrop-image"]) == photo_png


def test_second_patch_takes_over_a_hung_one(server, client, photo_png) -> None:
    path = new_upload(client, len(photo_png))
    half = len(photo_png) // 2
    headers = {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"}
    hung = RawRequest(server.url, "PATCH", path, len(photo_png), headers)
    try:
        hung.send(photo_png[:half])
        time.sleep(0.5)  # let the bytes reach the server; the connection then stays silent
        response, started_at = patch_until_done(client, path, photo_png, deadline=10)
        assert response.status_code == 204, response.text
        assert started_at == half, f"the hung request's {half} bytes were not kept"
        assert fetch_image(client, response.headers["pixdrop-image"]) == photo_png
    finally:
        hung.close()


def test_silent_patch_ends_after_idle_timeout(server_factory, photo_png) -> None:
    server = server_factory(idle_timeout=0.5)
    half = len(photo_png) // 2
    headers = {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        path = new_upload(client, len(photo_png))
        silent = RawRequest(server.url, "PATCH", path, len(photo_png), headers)
        try:
            silent.send(photo_png[:half])
            offset = poll(lambda: offset_of(client, path), lambda n: n >= half, timeout=10)
            assert offset == half, f"kept {offset} of the {half} bytes sent"
        finally:
            silent.close()
        last = patch(client, path, half, photo_png[half:])
        assert last.status_code == 204, last.text


# --- concatenation ---------------------------------------------------------------------------


def upload_parts_in_parallel(base_url: str, paths: list[str], parts: list[bytes]) -> None:
    """Each part in two PATCHes, every part on its own thread and connection."""
    errors: list[str] = []

    def send(path: str, part: bytes) -> None:
        with httpx.Client(base_url=base_url, timeout=10) as own:
            middle = len(part) // 2
            for offset, piece in ((0, part[:middle]), (middle, part[middle:])):
                response = patch(own, path, offset, piece)
                if response.status_code != 204:
                    errors.append(f"{path}@{offset}: {response.status_code} {response.text}")

    threads = [threading.Thread(target=send, args=pair) for pair in zip(paths, parts, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors


def three_partials(client: httpx.Client, data: bytes) -> tuple[list[str], list[bytes]]:
    third = len(data) // 3
    parts = [data[:third], data[third : 2 * third], data[2 * third :]]
    paths = [new_upload(client, len(p), headers={"Upload-Concat": "partial"}) for p in parts]
    return paths, parts


def create_final(client: httpx.Client, paths: list[str], **headers: str) -> httpx.Response:
    concat = {"Upload-Concat": "final;" + " ".join(paths)}
    return client.post("/files", headers={**TUS, **concat, **headers})


def test_concatenation_final_created_first(server, client, photo_jpeg) -> None:
    paths, parts = three_partials(client, photo_jpeg)
    meta = metadata(filename="rocket.jpg")
    final = create_final(client, paths, **{"Upload-Metadata": meta})
    assert final.status_code == 201, final.text
    assert "pixdrop-image" not in final.headers
    final_path = location_path(final)
    state = head(client, final_path)
    assert "upload-offset" not in state.headers
    assert state.headers["upload-length"] == str(len(photo_jpeg))

    upload_parts_in_parallel(server.url, paths, parts)

    done = poll(lambda: head(client, final_path), lambda r: "pixdrop-image" in r.headers, 10)
    assert done.status_code == 200
    assert done.headers["upload-offset"] == done.headers["upload-length"]
    assert done.headers["upload-length"] == str(len(photo_jpeg))
    assert done.headers["upload-metadata"] == meta
    assert fetch_image(client, done.headers["pixdrop-image"]) == photo_jpeg
    info = client.get(sf_strings(done.headers["pixdrop-image"])["url"]).json()
    assert info["filename"] == "rocket.jpg"


def test_concatenation_final_created_after(server, client, photo_png) -> None:
    paths, parts = three_partials(client, photo_png)
    upload_parts_in_parallel(server.url, paths, parts)
    for path, part in zip(paths, parts, strict=True):
        partial = head(client, path)
        assert partial.headers["upload-offset"] == str(len(part))
        assert partial.headers["upload-concat"] == "partial"
        assert "pixdrop-image" not in partial.headers
    absolute = [server.url + path for path in paths]
    final = create_final(client, absolute)
    assert final.status_code == 201, final.text
    token = final.headers["pixdrop-delete-token"]
    assert fetch_image(client, final.headers["pixdrop-image"], token) == photo_png
    state = head(client, location_path(final))
    assert state.headers["upload-concat"] == "final;" + " ".join(absolute)
    assert state.headers["upload-offset"] == str(len(photo_png))


# --- expiry ----------------------------------------------------------------------------------


def test_expired_upload_is_gone(server_factory) -> None:
    server = server_factory(upload_ttl=1, sweep_interval=3600)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        path = new_upload(client, 1000)
        state = poll(lambda: head(client, path), lambda r: r.status_code != 200, timeout=10)
        assert state.status_code == 410, state.status_code
        assert "upload-offset" not in state.headers
        assert_problem(patch(client, path, 0, b"x" * 10), 410)


def test_expired_upload_is_swept(server_factory) -> None:
    server = server_factory(upload_ttl=1, sweep_interval=0.2)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        path = new_upload(client, 1000)
        assert patch(client, path, 0, b"x" * 10).status_code == 204
        state = poll(lambda: head(client, path), lambda r: r.status_code == 404, timeout=10)
        assert state.status_code == 404, state.status_code


# --- the real server process -----------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """``python -m pixdrop serve`` as deployed (SQLite, default settings)."""
    root = tmp_path_factory.mktemp("serve")
    process = ServerProcess(root, root / "data", f"sqlite:///{root / 'p.db'}")
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


def test_pixdrop_serve_reads_trailers(served: ServerProcess) -> None:
    """checksum-trailer is announced, so the real server must read trailers (the table's
    servers are started in-process and may be wired differently)."""
    with httpx.Client(base_url=served.url, timeout=10) as client:
        options = client.options("/files")
        announced = {e.strip() for e in options.headers["tus-extension"].split(",")}
        assert set(EXTENSIONS) <= announced
        path = new_upload(client, 100)
        body = random.Random(5).randbytes(100)
        headers = {**TUS, "Content-Type": OCTETS, "Upload-Offset": "0"}
        halves = [body[:50], body[50:]]
        wrong = {"Upload-Checksum": checksum("sha256", body[:99] + b"!")}
        reply = send_chunked(served.url, "PATCH", path, headers, halves, wrong)
        assert reply.status == 460, reply
        right = {"Upload-Checksum": checksum("sha256", body)}
        reply = send_chunked(served.url, "PATCH", path, headers, halves, right)
        assert reply.status == 422, reply  # checksum accepted; the whole upload is no image


def test_pixdrop_serve_ignores_forwarded_by_default(served: ServerProcess) -> None:
    with httpx.Client(base_url=served.url, timeout=10) as client:
        spoofed = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
        created = create(client, 100, headers=spoofed)
        assert created.status_code == 201, created.text
        assert created.headers["location"].startswith(f"{served.url}/files/"), created.headers


@pytest.mark.local_disk
def test_an_upload_stored_in_full_but_not_ingested_completes_on_the_next_append(
    server, client, photo_jpeg
) -> None:
    """What a crash between recording an upload's last bytes and ingesting them leaves: every
    byte durable and recorded, the upload still receiving, no image. The client's next append
    at the end (an empty one) completes it."""
    path = new_upload(client, len(photo_jpeg))
    upload_id = path.rstrip("/").rsplit("/", 1)[1]
    # Reproduce that state beside the server, as its own append would have left it.
    (server.settings.data_dir / "staging" / upload_id).write_bytes(photo_jpeg)
    part = Part(0, len(photo_jpeg), hashlib.sha256(photo_jpeg).hexdigest())
    store = open_metadata_store(server.settings.resolved_database_url)
    try:
        assert anyio.run(store.add_part, upload_id, part)
    finally:
        anyio.run(store.close)
    before = head(client, path)
    assert before.headers["upload-offset"] == str(len(photo_jpeg))
    assert "pixdrop-image" not in before.headers

    done = patch(client, path, len(photo_jpeg), b"")
    assert done.status_code == 204, done.text
    token = done.headers["pixdrop-delete-token"]
    assert fetch_image(client, done.headers["pixdrop-image"], token) == photo_jpeg
    assert "pixdrop-image" in head(client, path).headers
