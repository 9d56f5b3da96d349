"""Connection limits and timeouts for pixdrop's HTTP/1.1 protocols (see ``h1.py``).

uvicorn times out only the wait *between* two requests of a connection (``timeout_keep_alive``,
armed when a response completes). A connection that never finishes a request head, a request
head of any size or field count, a request body that stops mid-way, and a request still
running at shutdown are bounded by nothing. :class:`ConnectionGuard` is a mixin for both of
uvicorn's protocol classes that bounds each, with :class:`ConnectionLimits`:

* **head**: from the connection's start, or the first byte of a later request, the whole head
  must arrive within ``header_timeout`` (else ``408`` if any of it came, and the connection
  closes) and be at most ``max_header_size`` bytes (request line and fields; else ``431``);
* **body**: a request body from which no byte arrives for ``idle_timeout`` seconds while the
  server waits for one ends: the app's ``receive`` raises ``BodyEnded`` (a ``ClientGone``: a
  resumable append keeps what it received and answers), and a request that answers nothing
  then gets ``408``; the connection closes after the answer;
* **connections**: beyond ``max_connections`` open connections, a request is answered ``503``
  (with ``Retry-After``) and its connection closed, rather than the process running out of
  file descriptors and failing to accept;
* **shutdown**: once uvicorn asks a connection to shut down, the request it runs has
  ``shutdown_timeout`` seconds; then its body ends as above (an append keeps its bytes) with one
  log line, and a request cancelled later (uvicorn's own deadline) logs one line too, no
  traceback.

Every refusal is an RFC 9457 problem written by the protocol itself (:func:`problem_response`).
Timers: one ``TimerHandle`` per connection at most; the body timer is not re-armed per byte
(``data_received`` only notes the time), it checks when it fires and re-arms for the rest.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from pixdrop.errors import (
    BodyEnded,
    HeaderTooLarge,
    PixdropError,
    RequestTimeout,
    ServiceUnavailable,
)
from pixdrop.protocols.problem import MEDIA_TYPE, problem_body

__all__ = [
    "GUARD",
    "SHUTDOWN_GRACE",
    "ConnectionGuard",
    "ConnectionLimits",
    "RequestGuard",
    "default_max_connections",
    "problem_response",
]

log = logging.getLogger("pixdrop.server")

#: ``scope["extensions"]`` key of a request's :class:`RequestGuard` (private to pixdrop).
GUARD = "pixdrop.request_guard"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


#: Seconds a refused connection keeps reading (and dropping) what the client still sends.
LINGER = 2.0

#: Seconds between the shutdown deadline (bodies end) and uvicorn cancelling what still runs.
SHUTDOWN_GRACE = 5.0


def default_max_connections() -> int:
    """Three quarters of the process's open-file limit: the rest is left for the database,
    staging files, logs and the connections being answered 503."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 65_536
    return max(16, soft * 3 // 4)


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """The bounds :class:`ConnectionGuard` applies (seconds and bytes; ``None``: no cap)."""

    header_timeout: float = 10.0
    max_header_size: int = 16 * 1024
    idle_timeout: float = 30.0
    max_connections: int | None = None
    shutdown_timeout: float = 30.0


def problem_response(error: PixdropError) -> bytes:
    """A whole HTTP/1.1 response carrying *error* as problem+json, closing the connection."""
    body = json.dumps(problem_body(error)).encode()
    lines = [
        b"HTTP/1.1 %d %s" % (error.status, error.title.encode("latin-1")),
        b"content-type: " + MEDIA_TYPE.encode(),
        b"content-length: %d" % len(body),
        b"connection: close",
        *(f"{name}: {value}".encode("latin-1") for name, value in error.headers.items()),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Cycle(Protocol):
    """What the guard uses of uvicorn's ``RequestResponseCycle`` (both implementations)."""

    @property
    def scope(self) -> Any: ...

    transport: asyncio.Transport
    message_event: asyncio.Event
    body: bytearray
    keep_alive: bool
    response_started: bool
    response_complete: bool
    disconnected: bool
    waiting_for_100_continue: bool


class RequestGuard:
    """One request's state: whether (and why) its body was ended, and the receive to use."""

    __slots__ = ("cycle", "ended", "logged", "raised", "receive_from")

    def __init__(self, cycle: _Cycle) -> None:
        self.cycle = cycle
        #: Why the body was ended: ``"idle"`` or ``"shutdown"`` (``None``: it was not).
        self.ended: str | None = None
        self.logged = False
        self.raised = False
        self.receive_from: Receive | None = None

    def end_body(self, why: str) -> None:
        """End the body where it is: the app's next ``receive()`` raises ``BodyEnded`` and the
        connection closes after the answer."""
        self.ended = why
        self.cycle.keep_alive = False
        self.cycle.message_event.set()

    async def receive(self) -> Message:
        """The app's ``receive``: raises ``BodyEnded`` once, on the first call after the body
        was ended with no byte waiting (so the body's reader sees it). Bytes that arrived before
        the ending but were not yet read (an app busy for longer than ``idle_timeout`` before
        its first read) are handed over first: they are kept like any others. Not
        ``http.disconnect``: Starlette would remember the request as disconnected, and an
        append that keeps its bytes would not answer."""
        if self.ended is not None and not self.raised and not self.cycle.body:
            self.raised = True
            raise BodyEnded
        assert self.receive_from is not None
        message = await self.receive_from()
        if self.ended is not None and not self.raised and not message.get("body"):
            self.raised = True  # woken by end_body(): no byte came
            raise BodyEnded
        return message

    def describe(self) -> str:
        scope = self.cycle.scope
        client = scope.get("client")
        who = f"{client[0]}:{client[1]}" if client else "?"
        return f"{scope.get('method')} {scope.get('path')} from {who}"


class GuardedApp:
    """The app as a connection runs it: the connection cap, ended bodies, quiet cancellation."""

    __slots__ = ("_app", "_guard")

    def __init__(self, app: App, guard: ConnectionGuard) -> None:
        self._app = app
        self._guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = scope.get("extensions", {}).get(GUARD)
        if request is None:
            return await self._app(scope, receive, send)
        cap = self._guard.limits.max_connections
        if cap is not None and len(self._guard.connections) > cap:
            log.warning("pixdrop: %d connections open (cap %d): answered 503", cap + 1, cap)
            busy = ServiceUnavailable(
                f"The server has {cap} connections open, its limit; retry shortly.",
                limit="max_connections",
                allowed=cap,
            )
            busy.headers["Retry-After"] = "1"
            self._refuse(request, busy)
            return None
        request.receive_from = receive
        try:
            await self._app(scope, request.receive, send)
        except BodyEnded:
            if request.cycle.response_started:
                raise  # (an app that lets it through after answering: uvicorn closes)
        except asyncio.CancelledError:
            # uvicorn cancels what still runs past its shutdown deadline (or at a second
            # signal): one line, no traceback; the client's connection just closes.
            self._log_cut(request, "cancelled")
            request.cycle.disconnected = True
            request.cycle.transport.close()
            return None
        if request.ended and not request.cycle.response_started:
            if request.ended == "idle":
                error: PixdropError = RequestTimeout(
                    f"No byte of the request body came for {self._guard.limits.idle_timeout:g} "
                    "seconds; the request was ended. Send it again.",
                    limit="idle_timeout",
                )
            else:
                error = ServiceUnavailable(
                    "The server is shutting down; the request was ended. Send it again.",
                )
            self._refuse(request, error)
        return None

    def _refuse(self, request: RequestGuard, error: PixdropError) -> None:
        cycle = request.cycle
        cycle.response_started = cycle.response_complete = True
        self._guard.answer_and_close(problem_response(error))

    @staticmethod
    def _log_cut(request: RequestGuard, how: str) -> None:
        if not request.logged:
            request.logged = True
            log.warning("pixdrop: shutdown: %s %s", how, request.describe())


# --- the protocol mixin ----------------------------------------------------------------------

PHASE_NONE, PHASE_HEAD, PHASE_BODY = 0, 1, 2


class ConnectionGuard:
    """Mixin (first base) for uvicorn's HTTP/1.1 protocols: see the module docstring.

    The protocol subclass calls :meth:`_head_started`, :meth:`_head_complete` and
    :meth:`_body_complete` from its parser callbacks, and :meth:`_refuse_head` for a head over
    the size cap.
    """

    # Provided by uvicorn's protocol classes.
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    connections: set[Any]
    flow: Any
    app: Any
    limit_concurrency: int | None

    limits: ConnectionLimits = ConnectionLimits()
    _timer: asyncio.TimerHandle | None = None
    _phase = PHASE_NONE
    _head_seen = False
    _last_byte = 0.0
    _guard: RequestGuard | None = None
    _refusal: PixdropError | None = None
    #: A last answer was written: what still arrives is dropped until the connection closes.
    _lingering = False

    def _setup_guard(self, limits: ConnectionLimits | None) -> None:
        if limits is not None:
            self.limits = limits
        # The cap is applied by GuardedApp, with a problem body, not by uvicorn's text 503.
        self.limit_concurrency = None
        self.app = GuardedApp(self.app, self)

    @property
    def _cycle(self) -> _Cycle | None:
        raise NotImplementedError

    # -- timers

    def _arm(self, delay: float, callback: Callable[[], None]) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, callback)

    def _disarm(self) -> None:
        self._phase = PHASE_NONE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- head

    def _head_started(self, seen: bool) -> None:
        """A head is awaited (*seen*: some of it arrived); it has ``header_timeout`` seconds."""
        if self._phase != PHASE_HEAD:
            self._phase = PHASE_HEAD
            self._arm(self.limits.header_timeout, self._head_timed_out)
        self._head_seen = self._head_seen or seen

    def _head_timed_out(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if not self._head_seen:
            self.transport.close()  # nothing came: nobody to answer
            return
        error = RequestTimeout(
            f"The request head did not arrive within {self.limits.header_timeout:g} seconds.",
            limit="header_timeout",
        )
        self.answer_and_close(problem_response(error))

    def _head_complete(self) -> None:
        """The head is in: the body (if any) is bounded by ``idle_timeout`` from now on."""
        self._head_seen = False
        self._phase = PHASE_BODY
        self._last_byte = self.loop.time()
        self._arm(self.limits.idle_timeout, self._body_check)

    def _head_too_large(self) -> HeaderTooLarge:
        limit = self.limits.max_header_size
        self._refusal = HeaderTooLarge(
            f"The request head (request line and header fields) is larger than {limit} bytes.",
            limit="max_header_size",
            allowed=limit,
        )
        return self._refusal

    def _refuse_head(self) -> bool:
        """Answer the head refused by the parser with its problem (``False``: none pending)."""
        refusal, self._refusal = self._refusal, None
        if refusal is None:
            return False
        self.answer_and_close(problem_response(refusal))
        return True

    def answer_and_close(self, response: bytes) -> None:
        """Write a last *response* (it says ``connection: close``) and close the connection.

        The close lingers: what the client still sends (the rest of a head or body it was
        sending when refused) is read and dropped for up to ``LINGER`` seconds after our FIN,
        since closing a socket with unread data resets the connection, and a client may then
        lose the answer before it reads it.
        """
        self._disarm()
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(response)
        self._lingering = True
        self.flow.resume_reading()
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(LINGER, transport.close)  # unless the client closes first
        else:
            transport.close()

    # -- body

    def _body_complete(self) -> None:
        if self._phase == PHASE_BODY:
            self._disarm()

    def _body_check(self) -> None:
        self._timer = None
        cycle, guard = self._cycle, self._guard
        if self._phase != PHASE_BODY or cycle is None or guard is None or cycle.response_complete:
            self._phase = PHASE_NONE
            return
        idle = self.limits.idle_timeout
        waiting = self.loop.time() - self._last_byte
        if cycle.waiting_for_100_continue or self.flow.read_paused:
            # The client waits for us (100-continue) or we stopped reading: not its silence.
            self._last_byte = self.loop.time()
            waiting = 0.0
        if waiting < idle:
            self._arm(idle - waiting, self._body_check)
            return
        self._phase = PHASE_NONE
        guard.end_body("idle")

    # -- shutdown

    def _shutdown_requested(self) -> None:
        """uvicorn asked this connection to shut down: its request gets ``shutdown_timeout``."""
        cycle = self._cycle
        if cycle is not None and not cycle.response_complete and self._guard is not None:
            guard = self._guard
            self.loop.call_later(self.limits.shutdown_timeout, self._shutdown_deadline, guard)

    def _shutdown_deadline(self, guard: RequestGuard) -> None:
        if self._guard is guard:
            self.end_body()

    def end_body(self) -> bool:
        """End the body of the request this connection runs, if it is still coming in (one
        log line); ``False`` if there is none."""
        guard, cycle = self._guard, self._cycle
        if guard is None or cycle is None or self._phase != PHASE_BODY:
            return False
        if cycle.response_complete or cycle.disconnected:
            return False
        self._disarm()
        GuardedApp._log_cut(guard, "ended the body of")
        guard.end_body("shutdown")
        return True
