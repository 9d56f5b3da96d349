"""The native chunked API: create an upload, PUT chunks in any order, complete, abort.

Most tests upload ``photo_png`` (240 512 bytes) in chunks of 64 KiB, the default minimum:
four chunks, the last one short (43 904 bytes).
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from tests.http.helpers import (
    UPLOAD_FIELDS,
    RawRequest,
    assert_id,
    assert_image,
    assert_location,
    assert_problem,
    create_upload,
    digest_field,
    get_upload,
    media_type,
    parse_time,
    put_chunk,
    send_chunks,
    send_cut,
    sha256_hex,
    split_chunks,
    tiny_image,
    upload_in_chunks,
)

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024
CHUNK = 64 * KiB

# Chunks of 64 KiB, under S3's 5 MiB part minimum: see tests/http/test_s3.py for S3.
pytestmark = pytest.mark.local_disk


@pytest.fixture
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


@pytest.fixture
def chunks(photo_png) -> list[bytes]:
    parts = split_chunks(photo_png, CHUNK)
    assert [len(p) for p in parts] == [CHUNK, CHUNK, CHUNK, len(photo_png) - 3 * CHUNK]
    return parts


@pytest.fixture
def upload(client, photo_png) -> dict[str, Any]:
    return create_upload(client, len(photo_png), chunk_size=CHUNK)


def put_with_retry(client: httpx.Client, upload_id: str, index: int, data: bytes) -> httpx.Response:
    """PUT a chunk, waiting out ``409 chunk-busy`` for up to 3 s (what a client should do)."""
    deadline = time.monotonic() + 3
    while True:
        response = put_chunk(client, upload_id, index, data)
        busy = response.status_code == 409 and response.json()["type"].endswith("/chunk-busy")
        if not busy or time.monotonic() > deadline:
            return response
        time.sleep(0.1)


# --- creating uploads ------------------------------------------------------------------------


def test_create_with_defaults(server, client, photo_png) -> None:
    before = datetime.now(UTC)
    response = client.post("/v1/uploads", json={"size": len(photo_png)})
    assert response.status_code == 201, response.text
    assert media_type(response) == "application/json"
    body = response.json()
    assert set(body) >= UPLOAD_FIELDS, sorted(UPLOAD_FIELDS - set(body))
    assert_id(body["id"])
    assert_location(response, server.url, f"/v1/uploads/{body['id']}")
    assert body["size"] == len(photo_png)
    assert body["chunk_size"] == 8 * MiB
    assert body["chunk_count"] == 1
    assert body["received"] == []
    assert body["missing"] == [0]
    assert body["state"] == "receiving"
    assert parse_time(body["expires_at"]) > before
    assert get_upload(client, body["id"]) == body


def test_create_with_fields(client, photo_png) -> None:
    body = create_upload(
        client,
        len(photo_png),
        chunk_size=CHUNK,
        sha256=sha256_hex(photo_png),
        filename="chelsea.png",
        content_type="image/png",
    )
    assert body["chunk_size"] == CHUNK
    assert body["chunk_count"] == 4
    assert body["missing"] == [0, 1, 2, 3]
    assert body["received"] == []


@dataclass(frozen=True)
class CreateCase:
    """A ``POST /v1/uploads`` body (JSON, or raw bytes) and the status it must get."""

    name: str
    json: Any = None
    status: int = 400
    slug: str | None = "invalid-upload-request"
    raw: bytes | None = None


CREATE_CASES = [
    CreateCase("size zero", {"size": 0}),
    CreateCase("size negative", {"size": -5}),
    CreateCase("size a word", {"size": "ten"}),
    CreateCase("size a numeric string", {"size": "100"}),
    CreateCase("size fractional", {"size": 1.5}),
    CreateCase("size null", {"size": None}),
    CreateCase("size boolean", {"size": True}),
    CreateCase("size a list", {"size": [100]}),
    CreateCase("size missing", {"filename": "a.png"}),
    CreateCase("chunk_size below the minimum", {"size": 1000, "chunk_size": 64 * KiB - 1}),
    CreateCase("chunk_size above the maximum", {"size": 1000, "chunk_size": 64 * MiB + 1}),
    CreateCase("chunk_size zero", {"size": 1000, "chunk_size": 0}),
    CreateCase("chunk_size a word", {"size": 1000, "chunk_size": "big"}),
    CreateCase("sha256 not hex", {"size": 1000, "sha256": "z" * 64}),
    CreateCase("sha256 too short", {"size": 1000, "sha256": "ab" * 10}),
    CreateCase("filename not a string", {"size": 1000, "filename": 12}),
    CreateCase("too many chunks", {"size": 10_001 * 64 * KiB, "chunk_size": 64 * KiB}),
    CreateCase(
        "larger than max_image_size", {"size": 4 * GiB + 1}, status=413, slug="payload-too-large"
    ),
    CreateCase("not JSON", raw=b"size=100"),
    CreateCase("JSON array", raw=b"[100]"),
    CreateCase("JSON number", raw=b"100"),
    CreateCase("empty body", raw=b""),
    CreateCase("chunk_size at the minimum", {"size": 1000, "chunk_size": 64 * KiB}, 201, None),
    CreateCase("chunk_size at the maximum", {"size": 1000, "chunk_size": 64 * MiB}, 201, None),
    CreateCase(
        "exactly max_chunks", {"size": 10_000 * 64 * KiB, "chunk_size": 64 * KiB}, 201, None
    ),
    CreateCase("exactly max_image_size", {"size": 4 * GiB}, 201, None),
    CreateCase("size one", {"size": 1}, 201, None),
]


def test_create_validation(client, subtests) -> None:
    for case in CREATE_CASES:
        with subtests.test(case.name):
            if case.raw is not None:
                response = client.post(
                    "/v1/uploads", content=case.raw, headers={"Content-Type": "application/json"}
                )
            else:
                response = client.post("/v1/uploads", json=case.json)
            if case.status == 201:
                assert response.status_code == 201, response.text
                assert response.json()["size"] == case.json["size"]
            else:
                assert_problem(response, case.status, case.slug)


# --- sending chunks --------------------------------------------------------------------------


def test_chunks_in_any_order_then_complete(server, client, upload, chunks, photo_png) -> None:
    uid = upload["id"]

    response = put_chunk(client, uid, 2, chunks[2])
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["index"], body["offset"], body["size"]) == (2, 2 * CHUNK, CHUNK)
    assert body["sha256"] == sha256_hex(chunks[2])
    state = get_upload(client, uid)
    assert (state["received"], state["missing"]) == ([2], [0, 1, 3])

    again = put_chunk(client, uid, 2, chunks[2])
    assert again.status_code == 200, again.text
    assert {k: again.json()[k] for k in ("index", "offset", "size", "sha256")} == {
        k: body[k] for k in ("index", "offset", "size", "sha256")
    }

    last = put_chunk(client, uid, 3, chunks[3])
    assert last.status_code == 201, last.text
    assert (last.json()["offset"], last.json()["size"]) == (3 * CHUNK, len(chunks[3]))
    assert put_chunk(client, uid, 0, chunks[0]).status_code == 201
    state = get_upload(client, uid)
    assert (state["received"], state["missing"]) == ([0, 2, 3], [1])
    assert state["state"] == "receiving"

    incomplete = client.post(f"/v1/uploads/{uid}/complete")
    assert_problem(incomplete, 409, "upload-incomplete", missing=[1])

    assert put_chunk(client, uid, 1, chunks[1]).status_code == 201
    done = client.post(f"/v1/uploads/{uid}/complete")
    assert done.status_code == 201, done.text
    image = done.json()
    assert_image(
        image, server.url, photo_png, content_type="image/png", fmt="png", delete_token=True
    )
    assert_location(done, server.url, f"/v1/images/{image['id']}")

    state = get_upload(client, uid)
    assert state["state"] == "completed"
    assert state["image_id"] == image["id"]
    assert (state["received"], state["missing"]) == ([0, 1, 2, 3], [])

    second = client.post(f"/v1/uploads/{uid}/complete")
    assert second.status_code == 200, second.text
    assert second.json() == {k: v for k, v in image.items() if k != "delete_token"}

    served = client.get(f"/v1/images/{image['id']}/original")
    assert served.status_code == 200
    assert served.content == photo_png


def test_filename_and_sniffed_type(server, client, photo_png) -> None:
    _, done = upload_in_chunks(
        client,
        photo_png,
        CHUNK,
        filename="my cat.png",
        content_type="image/jpeg",
        sha256=sha256_hex(photo_png),
    )
    assert done.status_code == 201, done.text
    assert_image(
        done.json(),
        server.url,
        photo_png,
        content_type="image/png",
        fmt="png",
        filename="my cat.png",
        delete_token=True,
    )


def test_single_short_chunk(server, client) -> None:
    data = tiny_image("JPEG", 8, 8)
    _, done = upload_in_chunks(client, data, 8 * MiB)
    assert done.status_code == 201, done.text
    assert_image(
        done.json(), server.url, data, content_type="image/jpeg", fmt="jpeg", delete_token=True
    )


@dataclass(frozen=True)
class ChunkCase:
    """A chunk PUT with a twist; ``recorded`` says whether GET must then list it."""

    name: str
    index: int
    body: bytes
    headers: dict[str, str]
    status: int
    slug: str | None
    recorded: bool


def chunk_cases(chunks: list[bytes]) -> list[ChunkCase]:
    c0, c1, c3 = chunks[0], chunks[1], chunks[3]
    other = bytes(reversed(c0))
    mismatch, size_mismatch = "digest-mismatch", "chunk-size-mismatch"
    return [
        ChunkCase(
            "sha-256 of other bytes",
            0,
            c0,
            {"Content-Digest": digest_field(other)},
            400,
            mismatch,
            False,
        ),
        ChunkCase(
            "sha-512 of other bytes",
            0,
            c0,
            {"Content-Digest": digest_field(other, "sha-512")},
            400,
            mismatch,
            False,
        ),
        ChunkCase(
            "malformed digest",
            0,
            c0,
            {"Content-Digest": "sha-256=oops"},
            400,
            "invalid-digest",
            False,
        ),
        ChunkCase("short", 0, c0[:-1], {}, 400, size_mismatch, False),
        ChunkCase("long", 0, c0 + b"x", {}, 400, size_mismatch, False),
        ChunkCase("empty", 0, b"", {}, 400, size_mismatch, False),
        ChunkCase(
            "last chunk at full size",
            3,
            c3 + b"\0" * (CHUNK - len(c3)),
            {},
            400,
            size_mismatch,
            False,
        ),
        ChunkCase("last chunk too short", 3, c3[:-10], {}, 400, size_mismatch, False),
        ChunkCase("good sha-256", 0, c0, {"Content-Digest": digest_field(c0)}, 201, None, True),
        ChunkCase(
            "good sha-512", 1, c1, {"Content-Digest": digest_field(c1, "sha-512")}, 201, None, True
        ),
        ChunkCase("different bytes for a stored chunk", 0, other, {}, 409, "chunk-conflict", True),
        ChunkCase(
            "identical again, with digest",
            1,
            c1,
            {"Content-Digest": digest_field(c1)},
            200,
            None,
            True,
        ),
        ChunkCase(
            "identical again, digest of other bytes",
            1,
            c1,
            {"Content-Digest": digest_field(other)},
            400,
            mismatch,
            True,
        ),
    ]


def test_chunk_checks(client, upload, chunks, photo_png, subtests) -> None:
    """Rows run in order on one upload: refused chunks leave no trace, stored ones stay."""
    uid = upload["id"]
    for case in chunk_cases(chunks):
        with subtests.test(case.name):
            response = put_chunk(client, uid, case.index, case.body, case.headers)
            if case.slug is None:
                assert response.status_code == case.status, response.text
            else:
                assert_problem(response, case.status, case.slug)
            received = get_upload(client, uid)["received"]
            assert (case.index in received) is case.recorded, received

    send_chunks(client, uid, chunks, [2, 3])
    done = client.post(f"/v1/uploads/{uid}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == sha256_hex(photo_png)


def pieces(data: bytes, size: int = 10_000) -> Iterator[bytes]:
    """*data* as an iterator, which httpx sends with ``Transfer-Encoding: chunked``."""
    yield from split_chunks(data, size)


def test_streamed_chunk_bodies(client, upload, chunks, photo_png) -> None:
    """Without Content-Length, the body's real length decides: exact, long or short."""
    uid = upload["id"]
    long = put_chunk(client, uid, 1, pieces(chunks[1] + b"x"))
    assert_problem(long, 400, "chunk-size-mismatch")
    short = put_chunk(client, uid, 1, pieces(chunks[1][:-1]))
    assert_problem(short, 400, "chunk-size-mismatch")
    assert get_upload(client, uid)["received"] == []
    for index, chunk in enumerate(chunks):
        response = put_chunk(client, uid, index, pieces(chunk))
        assert response.status_code == 201, response.text
    done = client.post(f"/v1/uploads/{uid}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == sha256_hex(photo_png)


BAD_INDICES = ["4", "5", "-1", "abc", "1.5", "0x1", "99999999999999999999999", "%20"]


def test_chunk_index_outside_the_upload(client, upload, chunks, subtests) -> None:
    for index in BAD_INDICES:
        with subtests.test(index):
            response = put_chunk(client, upload["id"], index, chunks[0])
            assert_problem(response, 404, "chunk-not-found")
    assert get_upload(client, upload["id"])["received"] == []


def test_unknown_upload(client, chunks, subtests) -> None:
    uid = "A" * 22
    requests = {
        "GET": lambda: client.get(f"/v1/uploads/{uid}"),
        "PUT chunk": lambda: put_chunk(client, uid, 0, chunks[0]),
        "complete": lambda: client.post(f"/v1/uploads/{uid}/complete"),
        "DELETE": lambda: client.delete(f"/v1/uploads/{uid}"),
    }
    for name, send in requests.items():
        with subtests.test(name):
            assert_problem(send(), 404, "upload-not-found")


def test_chunk_after_completion(client, photo_png, chunks) -> None:
    upload, done = upload_in_chunks(client, photo_png, CHUNK)
    assert done.status_code == 201, done.text
    response = put_chunk(client, upload["id"], 0, chunks[0])
    assert_problem(response, 409, "upload-not-receiving")
    assert get_upload(client, upload["id"])["state"] == "completed"


def test_whole_file_sha256_mismatch_frees_the_upload(client, photo_png) -> None:
    upload, done = upload_in_chunks(client, photo_png, CHUNK, sha256=sha256_hex(b"other"))
    assert_problem(done, 422, "unprocessable-image")
    assert_problem(client.get(f"/v1/uploads/{upload['id']}"), 404, "upload-not-found")


def test_not_an_image_frees_the_upload(client) -> None:
    data = random.Random(1).randbytes(CHUNK + 1000)
    upload, done = upload_in_chunks(client, data, CHUNK)
    assert_problem(done, 422, "unprocessable-image")
    assert_problem(client.get(f"/v1/uploads/{upload['id']}"), 404, "upload-not-found")


def test_delete_upload(client, upload, chunks) -> None:
    uid = upload["id"]
    assert put_chunk(client, uid, 0, chunks[0]).status_code == 201
    response = client.delete(f"/v1/uploads/{uid}")
    assert response.status_code == 204
    assert response.content == b""
    assert_problem(client.get(f"/v1/uploads/{uid}"), 404, "upload-not-found")
    assert_problem(put_chunk(client, uid, 1, chunks[1]), 404, "upload-not-found")
    assert_problem(client.post(f"/v1/uploads/{uid}/complete"), 404, "upload-not-found")
    assert_problem(client.delete(f"/v1/uploads/{uid}"), 404, "upload-not-found")


# --- concurrency and faults ------------------------------------------------------------------


def test_same_chunk_at_the_same_moment_is_busy(server, client, upload, chunks) -> None:
    uid = upload["id"]
    first = RawRequest(
        server.url,
        "PUT",
        f"/v1/uploads/{uid}/chunks/1",
        CHUNK,
        {"Content-Type": "application/octet-stream"},
    )
    try:
        first.send(chunks[1][: CHUNK // 2])
        time.sleep(0.3)  # the server is now inside the first request, waiting for the rest

        second = put_chunk(client, uid, 1, chunks[1])
        assert_problem(second, 409, "chunk-busy")
        assert second.headers["retry-after"].strip().isdigit(), second.headers

        first.send(chunks[1][CHUNK // 2 :])
        first.finish()
        reply = first.response()
    finally:
        first.close()
    assert reply.status == 201, reply.body
    assert get_upload(client, uid)["received"] == [1]


def test_parallel_shuffled_chunks(server_factory, photo_png) -> None:
    live = server_factory(min_chunk_size=16 * KiB)
    size = 16 * KiB
    parts = split_chunks(photo_png, size)
    assert len(parts) == 15
    with httpx.Client(base_url=live.url, timeout=10) as client:
        upload = create_upload(client, len(photo_png), chunk_size=size)
    uid = upload["id"]
    assert upload["chunk_count"] == 15

    order = list(range(len(parts)))
    random.Random(20240601).shuffle(order)
    lanes = [order[i::8] for i in range(8)]
    start = threading.Barrier(len(lanes))
    results: dict[int, int] = {}
    lock = threading.Lock()

    def lane(indices: list[int]) -> None:
        with httpx.Client(base_url=live.url, timeout=10) as client:
            start.wait()
            for index in indices:
                status = put_with_retry(client, uid, index, parts[index]).status_code
                with lock:
                    results[index] = status

    threads = [threading.Thread(target=lane, args=(indices,)) for indices in lanes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == dict.fromkeys(range(15), 201)

    with httpx.Client(base_url=live.url, timeout=10) as client:
        state = get_upload(client, uid)
        assert (state["received"], state["missing"]) == (list(range(15)), [])
        done = client.post(f"/v1/uploads/{uid}/complete")
        assert done.status_code == 201, done.text
        assert done.json()["sha256"] == sha256_hex(photo_png)
        served = client.get(f"/v1/images/{done.json()['id']}/original")
        assert served.content == photo_png


def test_cut_connection_records_nothing(server, client, upload, chunks, photo_png) -> None:
    uid = upload["id"]
    garbage = bytes(reversed(chunks[1]))  # same length, other bytes: a stored cut would conflict
    send_cut(
        server.url,
        "PUT",
        f"/v1/uploads/{uid}/chunks/1",
        garbage,
        CHUNK // 2,
        {"Content-Type": "application/octet-stream"},
    )
    deadline = time.monotonic() + 0.8
    while time.monotonic() < deadline:
        state = get_upload(client, uid)
        assert state["received"] == [], state
        time.sleep(0.1)

    response = put_with_retry(client, uid, 1, chunks[1])
    assert response.status_code == 201, response.text
    send_chunks(client, uid, chunks, [0, 2, 3])
    done = client.post(f"/v1/uploads/{uid}/complete")
    assert done.status_code == 201, done.text
    assert done.json()["sha256"] == sha256_hex(photo_png)
    served = client.get(f"/v1/images/{done.json()['id']}/original")
    assert served.content == photo_png


def test_create_body_is_bounded(client) -> None:
    """The JSON that creates an upload is small; a huge one is refused, not buffered."""
    padding = " " * (100 * 1024)
    response = client.post(
        "/v1/uploads",
        content=f'{{"size": 10,{padding}"chunk_size": 65536}}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload-too-large", limit="max_json_body")

    def streamed() -> Iterator[bytes]:  # no Content-Length: cut off while reading
        yield b'{"size": 10,'
        for _ in range(100):
            yield b" " * 1024
        yield b"}"

    response = client.post("/v1/uploads", content=streamed())
    assert_problem(response, 413, "payload-too-large")
