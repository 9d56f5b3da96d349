"""``Client``: the blocking driver of the flows in ``transfer.py``; chunks go out on threads."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import httpx

from pixdrop.client.config import ClientConfig
from pixdrop.client.download import Destination, Sink
from pixdrop.client.errors import PixdropClientError, TransferError
from pixdrop.client.models import Image, ImagePage, Progress, UploadStatus
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


def _serialized(callback: Callable[[RetryNotice], None]) -> Callable[[RetryNotice], None]:
    lock = threading.Lock()

    def call(notice: RetryNotice) -> None:
        with lock:
            callback(notice)

    return call


class Client:
    """A blocking pixdrop client (httpx underneath).

    ``token`` (an API key, ``docs/auth.md``) is sent as ``Authorization: Bearer`` on every
    request; a delete sends the image's delete token beside it (``Pixdrop-Delete-Token``).
    Files up to ``single_request_limit`` bytes (default: the chunk size, 8 MiB when none is
    asked for) go in one request, larger ones in chunks. ``resume`` (default on) keeps a
    resume record per file under ``state_dir``. ``on_retry`` is told of every failed attempt
    that will be retried (a ``RetryNotice``), from worker threads, one call at a time.
    ``transport`` replaces httpx's network transport, e.g. in tests.
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
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if on_retry is not None:
            on_retry = _serialized(on_retry)
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
        self._http = httpx.Client(transport=transport, **self.config.http_options())
        self._rng = random.Random()

    @property
    def base_url(self) -> str:
        return self.config.server

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the API ------------------------------------------------------------------------------

    def upload(
        self,
        file: Uploadable,
        *,
        filename: str | None = None,
        chunk_size: int | None = None,
        parallel: int = 4,
        on_progress: Callable[[Progress], None] | None = None,
        resume: bool | None = None,
    ) -> Image:
        """Upload a path, binary file or bytes; return the stored image (with its delete token).

        ``on_progress`` is called from worker threads, one call at a time.
        """
        with Source(file, filename) as source:
            fingerprint = source.fingerprint()
            job = self.config.job(
                source,
                fingerprint,
                chunk_size=chunk_size,
                parallel=parallel,
                on_progress=on_progress,
                resume=resume,
            )
            return self._run(upload_flow(job))

    def status(self, upload_id: str) -> UploadStatus:
        """Which chunks of a chunked upload the server holds."""
        return self._run(status_flow(upload_id))

    def get(self, image_id: str) -> Image:
        """An image's metadata."""
        return self._run(get_flow(image_id))

    def delete(self, image_id: str, delete_token: str) -> None:
        """Delete an image with the token its upload returned."""
        self._run(delete_flow(image_id, delete_token))

    def list_images(self, *, limit: int | None = None, cursor: str | None = None) -> ImagePage:
        """One page of the server's images, newest first (``limit``: the server's default,
        50, when not given); pass ``next_cursor`` back as ``cursor`` for the next page."""
        return self._run(list_flow(limit, cursor))

    def iter_images(self, *, page_size: int | None = None) -> Iterator[Image]:
        """Every image, newest first, fetched a page at a time as the iteration goes."""
        cursor: str | None = None
        while True:
            page = self.list_images(limit=page_size, cursor=cursor)
            yield from page.images
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def download(self, image_id: str, dest: Destination) -> int:
        """Write the original bytes to a path or binary file; verified; return their count."""
        url = f"/v1/images/{path_segment(image_id)}/original"
        sink = Sink(dest)
        try:
            self._retrying(f"GET {url}", lambda: self._download_once(url, sink))
            return sink.finish()
        finally:
            sink.close()

    # --- the driver ---------------------------------------------------------------------------

    def _run(self, flow: Flow[T]) -> T:
        try:
            effect = next(flow)
            while True:
                try:
                    result = self._perform(effect)
                except PixdropClientError as exc:
                    effect = flow.throw(exc)
                else:
                    effect = flow.send(result)
        except StopIteration as done:
            value: T = done.value
            return value

    def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, SendChunks):
            return self._send_chunks(effect)
        return self._retrying(f"{effect.method} {effect.url}", lambda: self._send_once(effect))

    def _retrying(
        self, what: str, attempt: Callable[[], T], stop: threading.Event | None = None
    ) -> T:
        failures = 0
        while True:
            try:
                return attempt()
            except Exception as exc:
                if not should_retry(exc):
                    raise
                failures += 1
                config = self.config
                delay = next_wait(config.retry, what, failures, exc, self._rng, config.on_retry)
            if (stop or threading.Event()).wait(delay):
                raise TransferError(f"{what}: stopped")

    def _send_once(self, call: Call) -> dict[str, Any]:
        sent = 0
        body = call.body

        def stream() -> Iterator[bytes]:
            nonlocal sent
            assert body is not None
            for at, length in body.pieces():
                yield body.source.read_at(at, length)
                sent += length
                if body.progress:
                    body.progress.advance(length)

        headers = dict(call.headers)
        if body is not None:
            headers["Content-Length"] = str(body.length)
        try:
            response = self._http.request(
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
                body.progress.advance(-sent)  # these bytes will be sent again
            raise

    def _send_chunks(self, job: SendChunks) -> None:
        queue = ChunkQueue(job.indices)
        workers = min(job.parallel, len(job.indices))
        pool = ThreadPoolExecutor(workers, thread_name_prefix="pixdrop-chunk")
        try:
            wait([pool.submit(self._chunk_worker, job, queue) for _ in range(workers)])
        except BaseException as exc:  # Ctrl-C: no new chunk starts; what is stored stays
            queue.fail(exc)
            raise
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        queue.raise_error()

    def _chunk_worker(self, job: SendChunks, queue: ChunkQueue) -> None:
        try:
            while (index := queue.take()) is not None:
                start, end = job.upload.chunk_range(index)
                call = chunk_call(job, index, job.source.read_at(start, end - start))
                self._retrying(f"PUT chunk {index}", partial(self._send_once, call), queue.stopped)
        except BaseException as exc:
            queue.fail(exc)

    def _download_once(self, url: str, sink: Sink) -> None:
        with self._http.stream("GET", url, headers=sink.request_headers()) as response:
            if response.status_code >= 300:
                reply_body(
                    response.status_code, response.headers.get("retry-after"), response.read()
                )
            sink.begin(response.status_code, response.headers.get("etag"))
            for data in response.iter_bytes():
                sink.write(data)
