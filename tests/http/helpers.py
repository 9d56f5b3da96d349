"""Helpers shared by the HTTP contract tests: problem checks, uploads, digests, raw sockets.

Everything here talks to a real server over real sockets; nothing reaches into the app.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit

import h11
import httpx
from PIL import Image as PILImage

PROBLEM_MEDIA_TYPE = "application/problem+json"
ID_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
IMAGE_FIELDS = {
    "id",
    "url",
    "sha256",
    "size",
    "content_type",
    "format",
    "width",
    "height",
    "created_at",
    "filename",
}
UPLOAD_FIELDS = {
    "id",
    "size",
    "chunk_size",
    "chunk_count",
    "received",
    "missing",
    "state",
    "expires_at",
}
#: Accepted spellings of an image object's ``format`` (compared lower-cased).
FORMAT_NAMES = {"png": {"png"}, "jpeg": {"jpeg", "jpg"}, "gif": {"gif"}, "webp": {"webp"}}
DB_SUFFIXES = (".db", ".db-wal", ".db-shm", ".db-journal", ".sqlite", ".sqlite3")
T = TypeVar("T")


# --- bytes, digests, images ---------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digest_field(data: bytes, algorithm: str = "sha-256") -> str:
    """An RFC 9530 digest field value for *data*: ``sha-256=:<base64>:``."""
    name = {"sha-256": "sha256", "sha-512": "sha512"}[algorithm]
    encoded = base64.b64encode(hashlib.new(name, data).digest()).decode()
    return f"{algorithm}=:{encoded}:"


def tiny_image(fmt: str = "PNG", width: int = 3, height: int = 2, seed: int = 0) -> bytes:
    """A small real image made with Pillow; *seed* varies the pixels (and so the bytes)."""
    image = PILImage.new("RGB", (width, height))
    image.putdata(
        [
            ((x * 40 + seed) % 256, (y * 80 + seed) % 256, seed % 256)
            for y in range(height)
            for x in range(width)
        ]
    )
    out = io.BytesIO()
    image.save(out, format=fmt)
    return out.getvalue()


def noise_png(side: int, seed: int) -> bytes:
    """A *side* x *side* PNG of random pixels, stored uncompressed: about 3 * side**2 bytes
    that no codec shrinks (large images for multi-part uploads)."""
    rnd = random.Random(seed)
    image = PILImage.frombytes("RGB", (side, side), rnd.randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    return out.getvalue()


def image_size(data: bytes) -> tuple[int, int]:
    with PILImage.open(io.BytesIO(data)) as image:
        return image.size


def split_chunks(data: bytes, chunk_size: int) -> list[bytes]:
    return [data[i : i + chunk_size] for i in range(0, len(data), chunk_size)]


# --- assertions ------------------------------------------------------------------------------


def media_type(response: httpx.Response) -> str:
    return response.headers.get("content-type", "").split(";")[0].strip().lower()


def assert_problem(
    response: httpx.Response, status: int, slug: str | None = None, **extra: Any
) -> dict[str, Any]:
    """Assert *response* is an RFC 9457 problem with *status* (and *slug*, and *extra* fields)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert media_type(response) == PROBLEM_MEDIA_TYPE, response.headers.get("content-type")
    body = response.json()
    assert isinstance(body, dict), body
    assert body.get("status") == status, body
    assert isinstance(body.get("type"), str), body
    if slug is not None:
        assert body["type"] == slug or body["type"].endswith("/" + slug), (slug, body)
    assert isinstance(body.get("title"), str), body
    assert body["title"].strip(), body
    assert isinstance(body.get("detail"), str), body
    assert body["detail"].strip(), body
    for key, value in extra.items():
        assert body.get(key) == value, (key, value, body)
    return body


def assert_id(value: Any) -> None:
    assert isinstance(value, str), value
    assert len(value) == 22, value
    assert set(value) <= ID_CHARS, value


def assert_location(response: httpx.Response, base_url: str, path: str) -> None:
    """``Location`` may be relative or absolute; either way it must resolve to *path*."""
    location = response.headers.get("location")
    assert location, response.headers
    assert urljoin(base_url + "/", location) == base_url + path, location


def parse_time(value: Any) -> datetime:
    assert isinstance(value, str), value
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None, f"timestamp without a time zone: {value}"
    return parsed


def assert_image(
    body: Mapping[str, Any],
    base_url: str,
    data: bytes,
    *,
    content_type: str,
    fmt: str,
    filename: str | None = None,
    delete_token: bool = False,
) -> None:
    """Assert *body* is the image object for *data* (with a delete token only if asked)."""
    expected_fields = IMAGE_FIELDS | ({"delete_token"} if delete_token else set())
    assert expected_fields <= set(body), sorted(expected_fields - set(body))
    if not delete_token:
        assert "delete_token" not in body, body
    else:
        assert isinstance(body["delete_token"], str), body
        assert len(body["delete_token"]) >= 16, body
    assert_id(body["id"])
    assert body["url"] == f"{base_url}/v1/images/{body['id']}/original", body["url"]
    assert body["sha256"] == sha256_hex(data)
    assert body["size"] == len(data)
    assert body["content_type"] == content_type
    assert str(body["format"]).lower() in FORMAT_NAMES[fmt], body["format"]
    width, height = image_size(data)
    assert (body["width"], body["height"]) == (width, height)
    parse_time(body["created_at"])
    assert body["filename"] == filename


# --- requests --------------------------------------------------------------------------------


def post_image(
    client: httpx.Client, data: bytes, content_type: str = "application/octet-stream"
) -> dict[str, Any]:
    """One-request upload of *data*; assert 201 and return the image object."""
    response = client.post("/v1/images", content=data, headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def create_upload(client: httpx.Client, size: int, **fields: Any) -> dict[str, Any]:
    """``POST /v1/uploads``; assert 201 and return the upload object."""
    response = client.post("/v1/uploads", json={"size": size, **fields})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def put_chunk(
    client: httpx.Client,
    upload_id: str,
    index: int | str,
    data: bytes | Iterable[bytes],
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    return client.put(
        f"/v1/uploads/{upload_id}/chunks/{index}",
        content=data,
        headers={"Content-Type": "application/octet-stream", **(headers or {})},
    )


def get_upload(client: httpx.Client, upload_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/uploads/{upload_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def send_chunks(
    client: httpx.Client, upload_id: str, chunks: list[bytes], indices: Iterable[int]
) -> None:
    for index in indices:
        response = put_chunk(client, upload_id, index, chunks[index])
        assert response.status_code == 201, (index, response.text)


def upload_in_chunks(
    client: httpx.Client, data: bytes, chunk_size: int, **fields: Any
) -> tuple[dict[str, Any], httpx.Response]:
    """Create an upload, send every chunk in order, complete; return (upload, complete reply)."""
    upload = create_upload(client, len(data), chunk_size=chunk_size, **fields)
    chunks = split_chunks(data, chunk_size)
    send_chunks(client, upload["id"], chunks, range(len(chunks)))
    return upload, client.post(f"/v1/uploads/{upload['id']}/complete")


# --- polling, files, processes ---------------------------------------------------------------


def poll(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 5.0) -> T:
    """Call *probe* until *done* holds for its result or *timeout* passes; return the last."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def data_files(root: Path) -> list[Path]:
    """Every regular file under *root* except SQLite database files."""
    if not root.exists():
        return []
    return [
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.endswith(DB_SUFFIXES) and ".db-" not in p.name
    ]


def files_containing(root: Path, needle: bytes) -> list[Path]:
    """Files under *root* (SQLite files excepted) whose bytes contain *needle*."""
    found = []
    for path in data_files(root):
        try:
            if needle in path.read_bytes():
                found.append(path)
        except FileNotFoundError:
            continue  # removed while we looked
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_health(
    base_url: str, timeout: float = 20.0, alive: Callable[[], bool] | None = None
) -> None:
    """Poll ``GET /healthz`` until it answers 200; fail if *alive* says the process died."""
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise AssertionError(f"server process exited before becoming healthy ({last})")
        try:
            response = httpx.get(base_url + "/healthz", timeout=1.0)
            if response.status_code == 200:
                return
            last = response.status_code
        except httpx.TransportError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"server at {base_url} not healthy after {timeout}s ({last})")


# --- raw HTTP/1.1 on a socket, to send bodies in part ----------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class RawRequest:
    """A request written with h11 on a plain socket: the body can be sent in part, or cut.

    ``Content-Length`` is declared as *content_length* whatever is actually sent.
    """

    def __init__(
        self,
        base_url: str,
        method: str,
        target: str,
        content_length: int,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        self.sock = socket.create_connection((host, port), timeout=10)
        self.conn = h11.Connection(our_role=h11.CLIENT)
        all_headers = [
            ("Host", f"{host}:{port}"),
            ("Content-Length", str(content_length)),
            *(headers or {}).items(),
        ]
        self._write(h11.Request(method=method, target=target, headers=all_headers))

    def _write(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            self.sock.sendall(data)

    def send(self, data: bytes) -> None:
        """Send part of the body (h11 would refuse more than the declared length)."""
        self._write(h11.Data(data=data))

    def finish(self) -> None:
        self._write(h11.EndOfMessage())

    def response(self, timeout: float = 10.0) -> RawResponse:
        """Read the server's reply (it may come before the body was sent in full)."""
        self.sock.settimeout(timeout)
        status, headers, body = 0, {}, bytearray()
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
                headers = {k.decode().lower(): v.decode() for k, v in event.headers}
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return RawResponse(status, headers, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError("connection closed before a full response")

    def close(self) -> None:
        self.sock.close()


def send_cut(
    base_url: str,
    method: str,
    target: str,
    body: bytes,
    sent: int,
    headers: Mapping[str, str] | None = None,
    linger: float = 0.2,
) -> None:
    """Declare ``len(body)`` bytes, send the first *sent*, wait *linger* seconds, hang up."""
    request = RawRequest(base_url, method, target, len(body), headers)
    try:
        request.send(body[:sent])
        time.sleep(linger)
    finally:
        request.close()
