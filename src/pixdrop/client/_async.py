"""``AsyncClient``: the asyncio/trio driver of the flows in ``transfer.py`` (anyio tasks).

File reads happen in worker threads (``anyio.to_thread``) so the event loop never waits on the
disk; the tiny resume record is written inline by the flows.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx

from pixdrop.client.config import ClientConfig
from pixdrop.client.download import Destination, Sink
from pixdrop.client.errors import PixdropClientError
from pixdrop.client.models import Image, ImagePage, Progress, UploadStatus
from pixdrop.client.pools import ShardedAsyncTransport
from pixdrop.client.retry import RetryNotice, RetryPolicy, next_wait, should_retry
from pixdrop.client.source import Source, Uploadable
from pixdrop.client.transfer import (
    Call,
    ChunkQueue,
    Effect,
    Flow,
    SendChunks,
    chunk_call,
    delete_flow,
    get_flow,
    list_flow,
    path_segment,
    reply_body,
    status_flow,
    upload_flow,
)

T = TypeVar("T")


async def _read(source: Source, at: int, length: int) -> bytes:
    if source.in_memory:
        return source.read_at(at, length)
    return await anyio.to_thread.run_sync(source.read_at, at, length)


class AsyncClient:
    """The async twin of ``Client``: the same arguments, the same methods, awaited.

    ``transport`` takes an ``httpx.AsyncBaseTransport``. ``on_progress`` runs in the event
    loop's thread, except while a file is being hashed; ``on_retry`` in the event loop's.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        single_request_limit: int | None = None,
        resume: bool = True,
        state_dir: str | Path | None = None,
        max_connections: int = 8,
        on_retry: Callable[[RetryNotice], None] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = ClientConfig(
            base_url,
            token,
            timeout,
            retry or RetryPolicy(),
            single_request_limit,
            resume,
            Path(state_dir) if state_dir is not None else None,
            max_connections,
            on_retry,
        )
        if transport is None:  # the connections in shards: cheaper per request (pools.py)
            transport = ShardedAsyncTransport(max_connections)
        self._http = httpx.AsyncClient(transport=transport, **self.config.http_options())
        self._rng = random.Random()

    @property
    def base_url(self) -> str:
        return self.config.server

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the API ------------------------------------------------------------------------------

    async def upload(
        self,
        file: Uploadable,
        *,
        filename: str | None = None,
        chunk_size: int | None = None,
        parallel: int = 4,
        on_progress: Callable[[Progress], None] | None = None,
        resume: bool | None = None,
    ) -> Image:
        """See ``Client.upload``."""
        with Source(file, filename) as source:
            fingerprint = await anyio.to_thread.run_sync(source.fingerprint)
            job = self.config.job(
                source,
                fingerprint,
                chunk_size=chunk_size,
                parallel=parallel,
                on_progress=on_progress,
                resume=resume,
            )
            return await self._run(upload_flow(job))

    async def status(self, upload_id: str) -> UploadStatus:
        return await self._run(status_flow(upload_id))

    async def get(self, image_id: str) -> Image:
        return await self._run(get_flow(image_id))

    async def delete(self, image_id: str, delete_token: str) -> None:
        await self._run(delete_flow(image_id, delete_token))

    async def list_images(
        self, *, limit: int | None = None, cursor: str | None = None
    ) -> ImagePage:
        """See ``Client.list_images``."""
        return await self._run(list_flow(limit, cursor))

    async def iter_images(self, *, page_size: int | None = None) -> AsyncIterator[Image]:
        """See ``Client.iter_images``."""
        cursor: str | None = None
        while True:
            page = await self.list_images(limit=page_size, cursor=cursor)
            for image in page.images:
                yield image
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def download(self, image_id: str, dest: Destination) -> int:
        """See ``Client.download``."""
        url = f"/v1/images/{path_segment(image_id)}/original"
        sink = Sink(dest)
        try:
            await self._retrying(f"GET {url}", lambda: self._download_once(url, sink))
            return await anyio.to_thread.run_sync(sink.finish)
        finally:
            sink.close()

    # --- the driver ---------------------------------------------------------------------------

    async def _run(self, flow: Flow[T]) -> T:
        try:
            effect = next(flow)
            while True:
                try:
                    result = await self._perform(effect)
                except PixdropClientError as exc:
                    effect = flow.throw(exc)
                else:
                    effect = flow.send(result)
        except StopIteration as done:
            value: T = done.value
            return value

    async def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, SendChunks):
            return await self._send_chunks(effect)
        return await self._retrying(
            f"{effect.method} {effect.url}", lambda: self._send_once(effect)
        )

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        failures = 0
        while True:
            try:
                return await attempt()
            except Exception as exc:
                if not should_retry(exc):
                    raise
                failures += 1
                config = self.config
                delay = next_wait(config.retry, what, failures, exc, self._rng, config.on_retry)
            await anyio.sleep(delay)

    async def _send_once(self, call: Call) -> dict[str, Any]:
        sent = 0
        body = call.body

        async def stream() -> AsyncIterator[bytes]:
            nonlocal sent
            assert body is not None
            for at, length in body.pieces():
                yield await _read(body.source, at, length)
                sent += length
                if body.progress:
                    body.progress.advance(length)

        headers = dict(call.headers)
        if body is not None:
            headers["Content-Length"] = str(body.length)
        try:
            response = await self._http.request(
                call.method,
                call.url,
                json=call.json,
                params=call.params or None,
                headers=headers,
                content=stream() if body is not None else None,
            )
            return reply_body(
                response.status_code, response.headers.get("retry-after"), response.content
            )
        except BaseException:
            if body is not None and body.progress and sent:
                body.progress.advance(-sent)
            raise

    async def _send_chunks(self, job: SendChunks) -> None:
        queue = ChunkQueue(job.indices)
        async with anyio.create_task_group() as tasks:
            for _ in range(min(job.parallel, len(job.indices))):
                tasks.start_soon(self._chunk_worker, job, queue, tasks.cancel_scope)
        queue.raise_error()

    async def _chunk_worker(
        self, job: SendChunks, queue: ChunkQueue, scope: anyio.CancelScope
    ) -> None:
        try:
            while (index := queue.take()) is not None:
                start, end = job.upload.chunk_range(index)
                data = await _read(job.source, start, end - start)
                call = chunk_call(job, index, data)
                await self._retrying(f"PUT chunk {index}", partial(self._send_once, call))
        except Exception as exc:  # cancellation is not a failure: it passes through
            queue.fail(exc)
            scope.cancel()  # the first failure stops the other workers at once

    async def _download_once(self, url: str, sink: Sink) -> None:
        async with self._http.stream("GET", url, headers=sink.request_headers()) as response:
            if response.status_code >= 300:
                content = await response.aread()
                reply_body(response.status_code, response.headers.get("retry-after"), content)
            sink.begin(response.status_code, response.headers.get("etag"))
            async for data in response.aiter_bytes():
                await anyio.to_thread.run_sync(sink.write, data)
