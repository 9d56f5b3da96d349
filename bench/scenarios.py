"""The timed scenarios: real HTTP against the server, each done when the server has answered.

Every upload is checked: the server must answer 201 with the payload's sha256 and size, or the
run stops with ``BenchError``, so a fast figure can never come from a failed request.
"""

from __future__ import annotations

import os
import queue
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from bench.payload import Payload

MiB = 1024 * 1024
CHUNK_SIZE = 8 * MiB
#: Size of the blocks a one-request body is read from its file and handed to httpx in.
BODY_BLOCK = MiB
TIMEOUT = httpx.Timeout(600.0, connect=10.0)


class BenchError(Exception):
    """The server answered something other than what the scenario needs."""


@dataclass(frozen=True, slots=True)
class Uploaded:
    """An image a scenario created: what deleting it takes."""

    image_id: str
    delete_token: str


def _expect(response: httpx.Response, status: int, what: str) -> Any:
    if response.status_code != status:
        raise BenchError(f"{what}: HTTP {response.status_code}, wanted {status}: {response.text}")
    return response.json() if response.content else None


def _stored(body: dict[str, Any], payload: Payload, what: str) -> Uploaded:
    if body.get("sha256") != payload.sha256 or body.get("size") != payload.size:
        raise BenchError(f"{what}: the server stored other bytes: {body}")
    return Uploaded(body["id"], body["delete_token"])


def _file_body(payload: Payload) -> Iterator[bytes]:
    with payload.path.open("rb") as source:
        while block := source.read(BODY_BLOCK):
            yield block


def one_request(base_url: str, payload: Payload) -> Uploaded:
    """``POST /v1/images`` with the payload as a raw body streamed from its file."""
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        response = client.post(
            "/v1/images",
            content=_file_body(payload),
            # A declared length: without it httpx would use chunked transfer encoding.
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(payload.size),
            },
        )
    return _stored(_expect(response, 201, "one-request upload"), payload, "one-request upload")


def _send_chunks(
    base_url: str, upload_id: str, payload: Payload, todo: queue.SimpleQueue[int]
) -> int:
    """Take chunk indices from *todo* until it is empty; PUT each one. Return how many."""
    sent = 0
    fd = os.open(payload.path, os.O_RDONLY)
    try:
        with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
            while True:
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    return sent
                data = os.pread(fd, CHUNK_SIZE, index * CHUNK_SIZE)
                response = client.put(
                    f"/v1/uploads/{upload_id}/chunks/{index}",
                    content=data,
                    headers={"Content-Type": "application/octet-stream"},
                )
                _expect(response, 201, f"chunk {index}")
                sent += 1
    finally:
        os.close(fd)


def chunked(base_url: str, payload: Payload, parallel: int) -> Uploaded:
    """Create an upload, PUT its 8 MiB chunks from *parallel* threads, then complete it.

    Each thread has its own ``httpx.Client`` (its own connection) and takes the next chunk
    index from a shared queue, so a slow request does not hold the others back.
    """
    spec = {"size": payload.size, "chunk_size": CHUNK_SIZE, "sha256": payload.sha256}
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        upload = _expect(client.post("/v1/uploads", json=spec), 201, "create upload")
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for index in range(upload["chunk_count"]):
            todo.put(index)
        with ThreadPoolExecutor(parallel, thread_name_prefix="chunks") as pool:
            futures = [
                pool.submit(_send_chunks, base_url, upload["id"], payload, todo)
                for _ in range(parallel)
            ]
            sent = sum(future.result() for future in futures)
        if sent != upload["chunk_count"]:
            raise BenchError(f"sent {sent} of {upload['chunk_count']} chunks")
        response = client.post(f"/v1/uploads/{upload['id']}/complete")
    return _stored(_expect(response, 201, "complete upload"), payload, "chunked upload")


def download(base_url: str, image_id: str, size: int) -> None:
    """``GET /v1/images/{id}/original``, reading and discarding every byte."""
    received = 0
    with (
        httpx.Client(base_url=base_url, timeout=TIMEOUT) as client,
        client.stream("GET", f"/v1/images/{image_id}/original") as response,
    ):
        if response.status_code != 200:
            raise BenchError(f"download: HTTP {response.status_code}")
        for block in response.iter_raw():
            received += len(block)
    if received != size:
        raise BenchError(f"download: got {received} bytes of {size}")


def delete(base_url: str, image: Uploaded) -> None:
    """``DELETE /v1/images/{id}`` with the delete token, so the disk does not fill up."""
    with httpx.Client(base_url=base_url, timeout=TIMEOUT) as client:
        response = client.delete(
            f"/v1/images/{image.image_id}",
            headers={"Authorization": f"Bearer {image.delete_token}"},
        )
    _expect(response, 204, "delete image")
