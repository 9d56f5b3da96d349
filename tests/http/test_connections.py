"""Connection limits and timeouts of the served app, over real sockets (``http/connections.py``).

Each finding of the hardening review: idle connections that never close, a chunk PUT that
goes silent and keeps its chunk busy, a JSON body that never ends, heads of any size, no cap
on connections. The protocol-level cases (both HTTP/1.1 implementations) are in
``tests/unit/test_h1.py``; these run the whole app on one backend, since no store is involved.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from tests.http.helpers import (
    RawRequest,
    assert_problem,
    create_upload,
    get_upload,
    poll,
    put_chunk,
    split_chunks,
)

CHUNK = 64 * 1024

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


def open_idle(url: str, count: int) -> list[socket.socket]:
    port = int(url.rsplit(":", 1)[1])
    return [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(count)]


@pytest.fixture
def idle_sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def test_healthz_answers_beside_900_idle_connections_which_are_then_closed(
    server_factory, idle_sockets
) -> None:
    server = server_factory(header_timeout=3)
    idle_sockets.extend(open_idle(server.url, 900))
    assert httpx.get(server.url + "/healthz", timeout=30).status_code == 200
    # None of them sent a byte: each is closed after the head timeout, without an answer.
    assert [sock.recv(1) for sock in idle_sockets] == [b""] * 900


def test_connections_over_the_cap_are_answered_503(server_factory, idle_sockets) -> None:
    server = server_factory(max_connections=3)
    idle_sockets.extend(open_idle(server.url, 3))
    refused = httpx.get(server.url + "/healthz", timeout=10)
    assert_problem(refused, 503, "service-unavailable", limit="max_connections", allowed=3)
    assert refused.headers["retry-after"] == "1"
    for sock in idle_sockets:
        sock.close()
    answered = poll(lambda: httpx.get(server.url + "/healthz", timeout=10), lambda r: r.is_success)
    assert answered.status_code == 200


def test_a_silent_chunk_put_is_ended_and_frees_its_chunk(server_factory, photo_png) -> None:
    """A chunk PUT that goes silent after 10 bytes is answered 408 after the idle timeout;
    nothing is recorded for it and the chunk takes the next PUT (no 409 chunk-busy)."""
    server = server_factory(idle_timeout=0.5)
    chunks = split_chunks(photo_png, CHUNK)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        upload = create_upload(client, len(photo_png), chunk_size=CHUNK)
        target = f"/v1/uploads/{upload['id']}/chunks/0"
        silent = RawRequest(server.url, "PUT", target, len(chunks[0]))
        try:
            silent.send(chunks[0][:10])
            reply = silent.response(timeout=30)
        finally:
            silent.close()
        assert reply.status == 408, reply
        assert reply.headers["content-type"] == "application/problem+json"
        assert '"limit": "idle_timeout"' in reply.body.decode()
        assert get_upload(client, upload["id"])["received"] == []
        again = put_chunk(client, upload["id"], 0, chunks[0])
        assert again.status_code == 201, again.text


def test_a_json_body_that_stops_coming_is_answered_408(server_factory) -> None:
    server = server_factory(idle_timeout=0.5)
    silent = RawRequest(
        server.url, "POST", "/v1/uploads", 100, {"Content-Type": "application/json"}
    )
    try:
        silent.send(b'{"size": 1')
        reply = silent.response(timeout=30)
    finally:
        silent.close()
    assert reply.status == 408, reply


def test_a_head_over_the_cap_is_answered_431(server_factory) -> None:
    server = server_factory(max_header_size="8KiB")
    headers = {f"X-Field-{i}": "v" * 100 for i in range(100)}  # some 11 KiB
    response = httpx.get(server.url + "/healthz", headers=headers, timeout=10)
    assert_problem(response, 431, "header-too-large", limit="max_header_size", allowed=8192)
    small = {f"X-Field-{i}": "v" * 100 for i in range(50)}
    assert httpx.get(server.url + "/healthz", headers=small, timeout=10).status_code == 200


def test_an_idle_keep_alive_connection_is_closed(server_factory) -> None:
    server = server_factory(keep_alive_timeout=0.5)
    request = RawRequest(server.url, "GET", "/healthz", 0)
    try:
        request.finish()
        assert request.response().status == 200
        request.sock.settimeout(30)
        assert request.sock.recv(1) == b""  # closed by the server, not by the test's timeout
    finally:
        request.close()
