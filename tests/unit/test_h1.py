"""pixdrop.http.h1: request trailers and 1xx responses through uvicorn, over real sockets.

A tiny raw ASGI app runs under ``uvicorn.Server`` (in a thread, 127.0.0.1, ephemeral port)
with each of the two protocol classes; raw sockets drive it, since HTTP clients can neither
send request trailers nor show 1xx responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import pickle
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from pixdrop.http import h1
from pixdrop.http.connections import ConnectionLimits
from pixdrop.http.h1 import INFORMATIONAL, TRAILERS, RequestTrailers, http_protocol_class

IMPLEMENTATIONS = ["httptools", "h11"]
CHECKSUM = b"sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="


# --- the app -------------------------------------------------------------------------------


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the body, then answers JSON about what it saw.

    ``/informational`` sends a 104 before reading the body; ``/late`` tries one after the
    response has started; ``/invalid`` tries statuses and fields that must be refused;
    ``/slow-reader`` waits 2.5 seconds before reading.
    """
    assert scope["type"] == "http"
    trailers: RequestTrailers = scope["extensions"][TRAILERS]
    inform = scope["extensions"][INFORMATIONAL]
    path = scope["path"]
    report: dict[str, Any] = {"received_before_end": []}
    if path == "/informational":
        await inform(104, [(b"location", b"/files/1"), (b"upload-draft-interop-version", b"6")])
    if path == "/slow-reader":
        await asyncio.sleep(2.5)  # longer than the idle timeout of the limited server
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        size += len(message["body"])
        if not message.get("more_body", False):
            break
        report["received_before_end"].append(trailers.received)
    report.update(
        body=size,
        received=trailers.received,
        trailers=[[name.decode(), value.decode()] for name, value in trailers.headers],
        checksum=(trailers.get("Upload-Checksum") or b"").decode(),
        headers=[name.decode() for name, _ in scope["headers"]],
    )
    if path == "/invalid":
        attempts = {
            "100": (100, []),
            "101": (101, []),
            "200": (200, []),
            "bad name": (104, [(b"bad name", b"x")]),
            "bad value": (104, [(b"x-ok", b"line\r\nbreak")]),
        }
        report["refused"] = []
        for label, (status, fields) in attempts.items():
            try:
                await inform(status, fields)
            except ValueError:
                report["refused"].append(label)
    if path == "/late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await inform(104, [])
        except RuntimeError:
            outcome = b"RuntimeError"
        else:
            outcome = b"sent"
        await send({"type": "http.response.body", "body": outcome, "more_body": False})
        return
    body = json.dumps(report).encode()
    status = 201 if path == "/informational" else 200
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


# --- server and raw client -----------------------------------------------------------------


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    """uvicorn serving the app with one of the protocol classes, on an ephemeral port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        http=http_protocol_class(request.param),
        log_level="critical",
        access_log=False,
        lifespan="off",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    yield int(sock.getsockname()[1])
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    """One raw TCP connection: write bytes, read responses (1xx ones included)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.file = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def response(self) -> Response:
        line = self.file.readline()
        assert line.startswith(b"HTTP/1.1 "), line
        _, code, reason = line.rstrip(b"\r\n").decode().split(" ", 2)
        headers: dict[str, str] = {}
        while (field := self.file.readline()) not in (b"\r\n", b""):
            name, _, value = field.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(code)
        if status < 200:
            return Response(status, reason, headers, b"")
        if headers.get("transfer-encoding") != "chunked":
            return Response(status, reason, headers, self.file.read(int(headers["content-length"])))
        body = b""
        while size := int(self.file.readline(), 16):
            body += self.file.read(size)
            assert self.file.readline() == b"\r\n"
        assert self.file.readline() == b"\r\n"  # no response trailers
        return Response(status, reason, headers, body)

    def rest(self) -> bytes:
        """Everything until the server closes the connection."""
        return self.file.read()

    def close(self) -> None:
        self.file.close()
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@pytest.fixture
def client(port: int) -> Iterator[Client]:
    conn = Client(port)
    yield conn
    conn.close()


def chunked(target: str, chunks: list[bytes], trailers: bytes = b"", head: bytes = b"") -> bytes:
    """A chunked PATCH with *trailers* (raw field lines) after the last chunk."""
    out = [b"PATCH " + target.encode() + b" HTTP/1.1\r\nHost: test\r\n", head]
    out.append(b"Transfer-Encoding: chunked\r\n\r\n")
    out.extend(b"%x\r\n%s\r\n" % (len(chunk), chunk) for chunk in chunks)
    out.append(b"0\r\n" + trailers + b"\r\n")
    return b"".join(out)


def sized(target: str, body: bytes, version: bytes = b"1.1", head: bytes = b"") -> bytes:
    return (
        b"POST " + target.encode() + b" HTTP/" + version + b"\r\nHost: test\r\n" + head
        + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )  # fmt: skip


TRAILER_FIELDS = b"Upload-Checksum: " + CHECKSUM + b"\r\nX-Extra: 1\r\n"
ANNOUNCE = b"Trailer: Upload-Checksum, X-Extra\r\n"


# --- trailers ------------------------------------------------------------------------------


def test_trailers_reach_the_app_before_the_last_body_event(client: Client) -> None:
    data = chunked("/", [b"hello ", b"world"], TRAILER_FIELDS, head=ANNOUNCE)
    split = data.index(b"0\r\nUpload-Checksum")
    client.send(data[:split])
    time.sleep(0.1)  # the app reads the chunks first (more_body=True): no trailers yet
    client.send(data[split:])
    response = client.response()
    assert response.status == 200
    seen = response.json()
    assert seen["body"] == 11
    assert seen["received"] is True
    assert seen["received_before_end"] == [False] * len(seen["received_before_end"])
    assert seen["trailers"] == [["upload-checksum", CHECKSUM.decode()], ["x-extra", "1"]]
    assert seen["checksum"] == CHECKSUM.decode()
    # trailer fields never pass for header fields
    assert seen["headers"] == ["host", "trailer", "transfer-encoding"]


def test_trailer_section_split_across_reads(client: Client) -> None:
    data = chunked("/", [b"abc"], TRAILER_FIELDS)
    start = data.index(b"0\r\n")
    client.send(data[:start])
    for i in range(start, len(data), 7):
        client.send(data[i : i + 7])
        time.sleep(0.002)
    seen = client.response().json()
    assert seen["trailers"] == [["upload-checksum", CHECKSUM.decode()], ["x-extra", "1"]]
    assert seen["body"] == 3


@pytest.mark.parametrize(
    "request_bytes",
    [sized("/", b"abc"), chunked("/", [b"abc"]), chunked("/", [])],
    ids=["content-length", "chunked", "empty-chunked"],
)
def test_without_trailers_the_extension_is_empty_but_received(
    client: Client, request_bytes: bytes
) -> None:
    client.send(request_bytes)
    seen = client.response().json()
    assert seen["received"] is True
    assert seen["trailers"] == []
    assert seen["checksum"] == ""


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "sequential"])
def test_trailers_belong_to_the_request_they_end(client: Client, pipelined: bool) -> None:
    requests = [
        chunked("/", [b"first"], TRAILER_FIELDS, head=ANNOUNCE),
        sized("/", b"second"),
        chunked("/", [b"third"]),
        chunked("/", [b"fourth"], b"Upload-Checksum: sha1 AAAA\r\n"),
    ]
    if pipelined:
        client.send(b"".join(requests))
        seen = [client.response().json() for _ in requests]
    else:
        seen = []
        for request_bytes in requests:
            client.send(request_bytes)
            seen.append(client.response().json())
    assert [s["body"] for s in seen] == [5, 6, 5, 6]
    assert [s["received"] for s in seen] == [True] * 4
    assert seen[0]["trailers"] == [["upload-checksum", CHECKSUM.decode()], ["x-extra", "1"]]
    assert seen[1]["trailers"] == []
    assert seen[2]["trailers"] == []
    assert seen[3]["trailers"] == [["upload-checksum", "sha1 AAAA"]]
    assert "upload-checksum" not in seen[1]["headers"] + seen[2]["headers"]


def test_an_oversized_trailer_section_is_refused(client: Client) -> None:
    fields = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 500) for i in range(40))  # ~20 KiB
    data = chunked("/", [b"abc"], fields)
    client.send(data[: -len(b"\r\n")])  # never completed: the limit alone must end it
    response = client.response()
    assert response.status == 400
    assert response.body == b"Invalid HTTP request received."
    assert client.rest() == b""


# --- informational responses ---------------------------------------------------------------


def test_104_then_the_final_response(client: Client) -> None:
    client.send(sized("/informational", b"abc"))
    interim = client.response()
    assert (interim.status, interim.reason) == (104, "Upload Resumption Supported")
    assert interim.headers == {"location": "/files/1", "upload-draft-interop-version": "6"}
    final = client.response()
    assert final.status == 201
    assert final.json()["body"] == 3
    # and the connection is still good for the next request
    client.send(sized("/", b"next"))
    assert client.response().json()["body"] == 4


def test_104_before_100_continue(client: Client) -> None:
    head = sized("/informational", b"abc", head=b"Expect: 100-continue\r\n")[: -len(b"abc")]
    client.send(head)
    assert client.response().status == 104  # sent before the app reads the body
    assert client.response().status == 100  # uvicorn's own, on the first receive()
    client.send(b"abc")
    final = client.response()
    assert final.status == 201
    assert final.json()["body"] == 3


def test_no_1xx_for_http_1_0(client: Client) -> None:
    client.send(sized("/informational", b"abc", version=b"1.0"))
    final = client.response()
    assert final.status == 201
    assert final.json()["body"] == 3
    assert client.rest() == b""  # closed, and nothing else was on the wire


def test_informational_after_the_response_started_is_an_error(client: Client) -> None:
    client.send(sized("/late", b""))
    response = client.response()  # chunked: the app had no length to give
    assert (response.status, response.body) == (200, b"RuntimeError")


def test_invalid_informational_responses_are_refused(client: Client) -> None:
    client.send(sized("/invalid", b""))
    response = client.response()  # no 1xx came first
    assert response.status == 200
    assert response.json()["refused"] == ["100", "101", "200", "bad name", "bad value"]


# --- selection -----------------------------------------------------------------------------


def test_http_protocol_class_selects_an_implementation() -> None:
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    assert h1.HAVE_HTTPTOOLS
    assert http_protocol_class() is h1.HttpToolsTrailersProtocol
    assert http_protocol_class("httptools") is h1.HttpToolsTrailersProtocol
    assert http_protocol_class("h11") is h1.H11TrailersProtocol
    assert issubclass(h1.HttpToolsTrailersProtocol, HttpToolsProtocol)
    assert issubclass(h1.H11TrailersProtocol, H11Protocol)
    with pytest.raises(ValueError, match="unknown"):
        http_protocol_class("zttp")  # type: ignore[arg-type]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_the_classes_survive_pickling_for_worker_processes(impl: Any) -> None:
    cls = http_protocol_class(impl)
    assert pickle.loads(pickle.dumps(cls)) is cls


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_uvicorn_takes_the_class(impl: Any) -> None:
    config = uvicorn.Config(app, http=http_protocol_class(impl), ws="none")
    config.load()
    assert config.http_protocol_class is http_protocol_class(impl)


def test_request_trailers_lookup() -> None:
    trailers = RequestTrailers()
    assert (trailers.received, trailers.headers, trailers.get("x")) == (False, [], None)
    trailers.add(b"Upload-Checksum", b"sha1 AAAA")
    trailers.add(b"upload-checksum", b"sha1 BBBB")
    assert trailers.get("UPLOAD-CHECKSUM") == b"sha1 AAAA"
    assert trailers.get(b"upload-checksum") == b"sha1 AAAA"
    assert trailers.headers == [
        (b"upload-checksum", b"sha1 AAAA"),
        (b"upload-checksum", b"sha1 BBBB"),
    ]
    with pytest.raises(ValueError, match="too large"):
        trailers.add(b"x", b"y" * 100, limit=50)


# --- connection limits (pixdrop.http.connections) ------------------------------------------

SHORT = ConnectionLimits(header_timeout=1.5, idle_timeout=1.5, max_header_size=4096)


def serve(impl: str, limits: ConnectionLimits) -> tuple[int, uvicorn.Server, threading.Thread]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app,
        http=http_protocol_class(impl, limits),  # type: ignore[arg-type]
        log_level="critical",
        access_log=False,
        lifespan="off",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    return int(sock.getsockname()[1]), server, thread


@pytest.fixture(scope="module", params=IMPLEMENTATIONS)
def limited(request: pytest.FixtureRequest) -> Iterator[int]:
    """The app served with short timeouts and a 4 KiB head cap."""
    port, server, thread = serve(request.param, SHORT)
    yield port
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def limited_client(limited: int) -> Iterator[Client]:
    conn = Client(limited)
    yield conn
    conn.close()


def assert_refused(response: Response, status: int, limit: str) -> None:
    assert response.status == status, response
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["connection"] == "close"
    body = response.json()
    assert (body["status"], body["limit"]) == (status, limit), body


def test_a_connection_that_sends_nothing_is_closed(limited_client: Client) -> None:
    assert limited_client.rest() == b""  # closed without an answer: nobody asked anything


def test_a_head_that_stops_coming_is_answered_408(limited_client: Client) -> None:
    limited_client.send(b"GET / HTTP/1.1\r\nHost: test\r\nX-Half: ")
    assert_refused(limited_client.response(), 408, "header_timeout")
    assert limited_client.rest() == b""


def test_a_head_sent_byte_by_byte_is_answered_408(limited_client: Client) -> None:
    head = b"GET / HTTP/1.1\r\nHost: test\r\nX-Pad: " + b"a" * 3000 + b"\r\n\r\n"
    stop = threading.Event()

    def dribble() -> None:
        for byte in head:
            if stop.wait(0.02):
                return
            try:
                limited_client.send(bytes([byte]))
            except OSError:
                return  # the server closed

    sender = threading.Thread(target=dribble, daemon=True)
    sender.start()
    try:
        assert_refused(limited_client.response(), 408, "header_timeout")
    finally:
        stop.set()
        sender.join(timeout=10)


@pytest.mark.parametrize(
    "fields",
    [
        b"X-Big: " + b"a" * (1024 * 1024) + b"\r\n",  # one field of 1 MiB
        b"".join(b"X-%d: 1\r\n" % i for i in range(20_000)),  # 20,000 fields
        b"X-A: " + b"a" * 2100 + b"\r\nX-B: " + b"b" * 2100 + b"\r\n",  # two that fit alone
    ],
    ids=["1MiB-field", "20000-fields", "sum-over-cap"],
)
def test_a_head_over_the_cap_is_answered_431(limited_client: Client, fields: bytes) -> None:
    data = b"POST / HTTP/1.1\r\nHost: test\r\n" + fields + b"Content-Length: 2\r\n\r\nok"
    with contextlib.suppress(OSError):  # the server may answer before all of it is sent
        limited_client.send(data)
    assert_refused(limited_client.response(), 431, "max_header_size")


def test_a_head_under_the_cap_is_served(limited_client: Client) -> None:
    limited_client.send(sized("/", b"abc", head=b"X-Pad: " + b"a" * 3500 + b"\r\n"))
    response = limited_client.response()
    assert response.status == 200, response
    assert response.json()["body"] == 3


def test_a_body_that_stops_coming_is_answered_408(limited_client: Client) -> None:
    limited_client.send(b"POST / HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n0123456789")
    assert_refused(limited_client.response(), 408, "idle_timeout")
    assert limited_client.rest() == b""


def test_a_body_waiting_for_100_continue_is_not_idle(limited_client: Client) -> None:
    """The client waits for the server (``Expect: 100-continue``): its silence is not idling."""
    head = b"POST /slow-reader HTTP/1.1\r\nHost: test\r\nExpect: 100-continue\r\n"
    limited_client.send(head + b"Content-Length: 3\r\n\r\n")
    assert limited_client.response().status == 100  # sent once the app reads, a second later
    limited_client.send(b"abc")
    response = limited_client.response()
    assert response.status == 200, response
    assert response.json()["body"] == 3


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_connections_over_the_cap_are_answered_503(impl: str) -> None:
    limits = ConnectionLimits(header_timeout=60, idle_timeout=60, max_connections=3)
    port, server, thread = serve(impl, limits)
    idle = [Client(port) for _ in range(3)]
    try:
        with Client(port) as extra:
            extra.send(sized("/", b"abc"))
            response = extra.response()
            assert_refused(response, 503, "max_connections")
            assert response.headers["retry-after"] == "1"
        for conn in idle:
            conn.close()
        time.sleep(0.2)  # (the server sees the closes)
        with Client(port) as again:
            again.send(sized("/", b"abc"))
            assert again.response().status == 200
    finally:
        for conn in idle:
            conn.close()
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_the_limited_classes_survive_pickling_for_worker_processes(impl: Any) -> None:
    made = http_protocol_class(impl, SHORT)
    again = pickle.loads(pickle.dumps(made))
    assert again.func is http_protocol_class(impl)  # type: ignore[attr-defined]
    assert again.keywords == {"limits": SHORT}  # type: ignore[attr-defined]


# --- the response head leaves with the body (_coalesce_head) ---------------------------------


class RecordingTransport(asyncio.Transport):
    """What the protocol writes, call by call (the socket would see one send() each)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        assert not self.closed, "written after close"
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 5000)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def answering(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/stream`` awaits between the head and the body; ``/big`` answers 100 KiB."""
    if scope["type"] != "http":
        return
    body = b"x" * (100 * 1024) if scope["path"] == "/big" else b"ok"
    start = {"type": "http.response.start", "status": 200}
    start["headers"] = [(b"content-length", b"%d" % len(body))]
    await send(start)
    if scope["path"] == "/stream":
        await asyncio.sleep(0.01)
    await send({"type": "http.response.body", "body": body})


def written(impl: str, request: bytes) -> RecordingTransport:
    async def go() -> RecordingTransport:
        config = uvicorn.Config(app=answering, lifespan="off", log_level="warning")
        config.load()
        loop = asyncio.get_running_loop()
        protocol: Any = http_protocol_class(impl)(
            config=config, server_state=uvicorn.server.ServerState(), app_state={}, _loop=loop
        )
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(request)
        await asyncio.sleep(0.1)
        return transport

    return asyncio.run(go())


def responses(transport: RecordingTransport) -> list[bytes]:
    return [data for data in transport.writes if data]  # h11 writes an empty end of message


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_small_response_leaves_in_one_write(impl: str) -> None:
    transport = written(impl, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
    assert len(responses(transport)) == 2  # one per response, not a head and then a body
    for data in responses(transport):
        assert data.startswith(b"HTTP/1.1 200 OK\r\n")
        assert data.endswith(b"\r\n\r\nok")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_a_head_response_still_sends_its_head(impl: str) -> None:
    transport = written(impl, b"HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    (data,) = responses(transport)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"\r\n\r\n")
    assert transport.closed  # after the head, not before it


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("path", ["/stream", "/big"])
def test_a_late_or_large_body_follows_its_head(impl: str, path: str) -> None:
    """An app that awaits between head and body gets its head out at once; a large body is
    written after its head rather than copied into one buffer with it."""
    transport = written(impl, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, body = responses(transport)
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert head.endswith(b"\r\n\r\n")
    assert body in (b"ok", b"x" * (100 * 1024))
