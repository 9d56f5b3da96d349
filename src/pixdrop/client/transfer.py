"""The upload algorithm, once, without I/O: flows that yield effects for a driver to perform.

Why this shape: the sync ``Client`` and the ``AsyncClient`` must behave the same (resume,
fresh starts, completion rounds) yet differ in how they wait and run things side by side. So
every decision lives here, in generators ("flows") that ``yield`` what they need done:

* ``Call``: one HTTP request, retried by the driver per ``retry.py``; the driver sends back the
  JSON body, or throws the final ``ProblemError``/``TransferError`` into the flow;
* ``SendChunks``: the given chunks of an upload, ``parallel`` at a time (threads in the sync
  driver, tasks in the async one); it returns when all are stored or throws the first failure.

The drivers (``_sync.py``, ``_async.py``) only perform effects. The flows do touch the local
disk for the small resume record (``state.py``), a few hundred bytes written at moments that
are rare (create, finish), which is not worth an effect of its own.

The protocol facts the flows rely on (docs/api.md): a chunk acknowledged ``201`` or ``200`` is
stored durably; ``GET /v1/uploads/{id}`` lists exactly what is ``missing``; ``complete`` on a
completed upload answers ``200`` with the image; a ``404 upload-not-found`` or ``410`` means the
upload is gone (expired, swept, aborted) and only a fresh one can help.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from pixdrop.client.errors import (
    ConflictError,
    GoneError,
    NotFoundError,
    PayloadTooLargeError,
    PixdropClientError,
    ProblemError,
    TransferError,
    UnprocessableError,
    problem_error,
)
from pixdrop.client.models import Image, ImagePage, Progress, UploadStatus
from pixdrop.client.retry import parse_retry_after
from pixdrop.client.source import Fingerprint, Source
from pixdrop.client.state import ResumeRecord, ResumeStore

T = TypeVar("T")
#: Bytes handed to the HTTP layer at a time while a body streams (the progress granularity).
PIECE = 256 * 1024
#: When no chunk size is asked for, files up to this size go in one request.
DEFAULT_SINGLE_LIMIT = 8 * 1024 * 1024
#: How often a vanished upload is replaced by a fresh one before giving up.
FRESH_STARTS = 3
#: ``complete`` rounds: each one sends what the server still reports missing.
COMPLETE_ROUNDS = 5


class ProgressTracker:
    """Counts the bytes of one upload and reports them; safe to call from several threads."""

    def __init__(self, total: int, callback: Callable[[Progress], None] | None) -> None:
        self._lock = threading.Lock()
        self._callback = callback
        self.total, self.done, self.resumed = total, 0, 0
        self.upload_id: str | None = None

    def begin(self, already: int, upload_id: str | None = None) -> None:
        """A (re)start: *already* bytes are on the server (of chunked upload *upload_id*)."""
        with self._lock:
            self.done = self.resumed = already
            self.upload_id = upload_id
            self._emit()

    def advance(self, count: int) -> None:
        """*count* more bytes went out (negative: a failed request's bytes must go again)."""
        with self._lock:
            self.done += count
            self._emit()

    def _emit(self) -> None:
        # Under the lock: the callback never runs twice at once and sees numbers in order.
        if self._callback is not None:
            self._callback(Progress(self.done, self.total, self.resumed, self.upload_id))


@dataclass(frozen=True, slots=True)
class Body:
    """A request body streamed from *source*: ``length`` bytes from ``offset``."""

    source: Source
    offset: int
    length: int
    progress: ProgressTracker | None = None

    def pieces(self) -> Iterable[tuple[int, int]]:
        end = self.offset + self.length
        return ((at, min(PIECE, end - at)) for at in range(self.offset, end, PIECE))


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request; ``url`` is relative to the client's base URL."""

    method: str
    url: str
    json: dict[str, Any] | None = None
    body: Body | None = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SendChunks:
    """Send chunks *indices* of *upload*, read from *source*, *parallel* at a time."""

    upload: UploadStatus
    indices: tuple[int, ...]
    source: Source
    parallel: int
    progress: ProgressTracker


Effect = Call | SendChunks
Flow = Generator[Effect, Any, T]


def reply_body(status: int, retry_after: str | None, content: bytes) -> dict[str, Any]:
    """The JSON of a success (``{}`` when empty), or raise the answer's ``ProblemError``."""
    if not 200 <= status < 300:
        raise problem_error(status, content, parse_retry_after(retry_after))
    if not content:
        return {}
    try:
        parsed = json.loads(content)
    except ValueError:
        # Something between us and pixdrop answered (a captive portal, a misrouted proxy).
        text = content[:200].decode("utf-8", "replace")
        raise ProblemError(status, {"title": "Not a pixdrop answer", "detail": text}) from None
    return parsed if isinstance(parsed, dict) else {"value": parsed}


def digest_field(sha256: bytes) -> str:
    """An RFC 9530 ``Content-Digest`` value for a raw sha256 digest."""
    return f"sha-256=:{base64.b64encode(sha256).decode()}:"


def chunk_call(job: SendChunks, index: int, data: bytes) -> Call:
    """The ``PUT`` of chunk *index*, its bytes *data* already read, with their digest."""
    buffer = Source(data)
    return Call(
        "PUT",
        f"/v1/uploads/{path_segment(job.upload.id)}/chunks/{index}",
        body=Body(buffer, 0, len(data), job.progress),
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Digest": digest_field(hashlib.sha256(data).digest()),
        },
    )


class ChunkQueue:
    """The chunks still to send, shared by the workers; the first failure stops them all."""

    def __init__(self, indices: Iterable[int]) -> None:
        self._lock = threading.Lock()
        self._pending = deque(indices)
        self.error: BaseException | None = None
        #: Set once a worker failed (or the caller gave up): sleeping workers wake and stop.
        self.stopped = threading.Event()

    def take(self) -> int | None:
        with self._lock:
            if self.stopped.is_set() or not self._pending:
                return None
            return self._pending.popleft()

    def fail(self, exc: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = exc
        self.stopped.set()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error


def path_segment(value: str) -> str:
    """An id as one path segment: whatever a user typed cannot reach another path."""
    return quote(value, safe="")


def _call(call: Call) -> Flow[dict[str, Any]]:
    body: dict[str, Any] = yield call
    return body


# --- the flows --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UploadJob:
    """Everything one upload needs to know; built by the client for each ``upload`` call."""

    server: str
    source: Source
    fingerprint: Fingerprint
    chunk_size: int | None
    single_limit: int
    parallel: int
    resume: bool
    store: ResumeStore
    progress: ProgressTracker

    @property
    def key(self) -> str:
        return ResumeStore.key(self.server, self.source, self.fingerprint)


def upload_flow(job: UploadJob) -> Flow[Image]:
    """Upload in one request when the file is small, else in resumable chunks."""
    if job.source.size <= job.single_limit:
        try:
            return (yield from _single(job))
        except PayloadTooLargeError as exc:
            # Over the server's max_request_size but not its max_image_size: chunks fit.
            if exc.body.get("limit") != "max_request_size":
                raise
    return (yield from _chunked(job))


def _single(job: UploadJob) -> Flow[Image]:
    job.progress.begin(0)
    params = {"filename": job.source.filename} if job.source.filename else {}
    raw = bytes.fromhex(job.fingerprint.sha256)
    call = Call(
        "POST",
        "/v1/images",
        body=Body(job.source, 0, job.source.size, job.progress),
        headers={"Content-Type": "application/octet-stream", "Content-Digest": digest_field(raw)},
        params=params,
    )
    return Image.from_json((yield from _call(call)))


def _chunked(job: UploadJob) -> Flow[Image]:
    gone: ProblemError | None = None
    for _ in range(FRESH_STARTS):
        status = (yield from _resume(job)) if job.resume else None
        if status is None:
            if not job.resume:
                job.store.discard(job.key)
            status = yield from _create(job)
        try:
            return (yield from _complete(job, status))
        except (NotFoundError, GoneError) as exc:
            if isinstance(exc, NotFoundError) and exc.slug != "upload-not-found":
                raise
            job.store.discard(job.key)  # expired or swept while we worked: start afresh
            gone = exc
    raise TransferError("the server kept losing the upload; giving up", gone)


def _resume(job: UploadJob) -> Flow[UploadStatus | None]:
    """The remembered upload of this file, if it is still there and still this file's."""
    record = job.store.load(job.key)
    if record is None:
        return None
    if record.fingerprint != job.fingerprint:
        # The file changed: its old chunks must never be mixed with the new bytes.
        job.store.discard(job.key)
        with contextlib.suppress(PixdropClientError):
            yield from _call(Call("DELETE", f"/v1/uploads/{path_segment(record.upload_id)}"))
        return None
    try:
        status = UploadStatus.from_json(
            (yield from _call(Call("GET", f"/v1/uploads/{path_segment(record.upload_id)}")))
        )
    except (NotFoundError, GoneError):
        job.store.discard(job.key)
        return None
    if status.size != job.fingerprint.size or status.sha256 not in (None, job.fingerprint.sha256):
        job.store.discard(job.key)
        return None
    return status


def _create(job: UploadJob) -> Flow[UploadStatus]:
    spec: dict[str, Any] = {"size": job.source.size, "sha256": job.fingerprint.sha256}
    if job.chunk_size is not None:
        spec["chunk_size"] = job.chunk_size
    if job.source.filename:
        spec["filename"] = job.source.filename
    status = UploadStatus.from_json((yield from _call(Call("POST", "/v1/uploads", json=spec))))
    # Remembered before the first chunk goes out: a run killed from here on can resume.
    path = str(job.source.path) if job.source.path else None
    record = ResumeRecord(job.server, status.id, status.url, job.fingerprint, path)
    job.store.save(job.key, record)
    return status


def _missing_bytes(status: UploadStatus) -> int:
    return sum(end - start for start, end in map(status.chunk_range, status.missing))


def _complete(job: UploadJob, status: UploadStatus) -> Flow[Image]:
    """Send what is missing, then complete; repeat while the server still misses chunks."""
    for _ in range(COMPLETE_ROUNDS):
        job.progress.begin(status.size - _missing_bytes(status), status.id)
        if status.state == "receiving" and status.missing:
            effect = SendChunks(status, status.missing, job.source, job.parallel, job.progress)
            try:
                yield effect
            except ConflictError as exc:
                if exc.slug != "upload-not-receiving":  # completed meanwhile: complete below
                    raise
        try:
            body = yield from _call(Call("POST", f"/v1/uploads/{path_segment(status.id)}/complete"))
        except ConflictError as exc:
            if exc.slug != "upload-incomplete":
                raise
            status = yield from status_flow(status.id)
            continue
        except UnprocessableError:
            job.store.discard(job.key)  # the server discarded the upload too
            raise
        job.store.discard(job.key)
        return Image.from_json(body)
    raise TransferError(f"upload {status.id} still misses chunks after {COMPLETE_ROUNDS} rounds")


def status_flow(upload_id: str) -> Flow[UploadStatus]:
    body = yield from _call(Call("GET", f"/v1/uploads/{path_segment(upload_id)}"))
    return UploadStatus.from_json(body)


def get_flow(image_id: str) -> Flow[Image]:
    return Image.from_json((yield from _call(Call("GET", f"/v1/images/{path_segment(image_id)}"))))


def list_flow(limit: int | None, cursor: str | None) -> Flow[ImagePage]:
    params = {"limit": str(limit)} if limit is not None else {}
    if cursor:
        params["cursor"] = cursor
    return ImagePage.from_json((yield from _call(Call("GET", "/v1/images", params=params))))


def delete_flow(image_id: str, delete_token: str) -> Flow[None]:
    # Its own header: an API key, if the client has one, still goes as Authorization.
    headers = {"Pixdrop-Delete-Token": delete_token}
    yield from _call(Call("DELETE", f"/v1/images/{path_segment(image_id)}", headers=headers))
