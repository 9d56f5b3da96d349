"""HTTP/1.1 request trailers and 1xx interim responses for ASGI apps served by uvicorn.

ASGI has no event for request trailers and no way to send an informational (1xx) response,
yet the tus ``checksum-trailer`` extension sends ``Upload-Checksum`` in the trailer section of
a chunked PATCH, and the resumable-upload draft wants ``104 Upload Resumption Supported``
before the final response. The protocol classes here are uvicorn's own HTTP/1.1 protocols
(:class:`HttpToolsProtocol` and :class:`H11Protocol`, a few methods overridden) that put two
entries into every HTTP request's ``scope["extensions"]``:

``"pixdrop.request_trailers"`` (:data:`TRAILERS`) — a :class:`RequestTrailers`.
    Filled when the trailer section is parsed, before the last ``http.request`` event
    (``more_body=False``) is delivered: an app that has read the whole body sees the final
    ``received`` (True) and ``headers`` (lower-case names, in wire order, possibly empty).
    Trailer fields are never merged into ``scope["headers"]`` (with httptools, plain uvicorn
    appends them there); which of them to trust (``Trailer:`` announcements, forbidden
    framing fields) is the app's decision.
``"pixdrop.informational"`` (:data:`INFORMATIONAL`) — an :class:`InformationalSender`.
    ``await send_informational(104, [(b"location", b"/files/1")])`` writes
    ``HTTP/1.1 104 Upload Resumption Supported`` and the fields to the connection. Raises
    ``RuntimeError`` once the final response has started and ``ValueError`` for a status
    outside 102-199 (100 is uvicorn's answer to ``Expect: 100-continue``, 101 switches
    protocols) or a malformed field; does nothing for an HTTP/1.0 client (which must not get
    a 1xx) or after the client has gone.

An app must treat a missing entry as "not supported" (another server, HTTP/2, a test client).
Select the class with :func:`http_protocol_class` and pass it as ``uvicorn.Config(http=...)``
or ``uvicorn.run(http=...)``: uvicorn uses a class as is (and pickles it by reference for
worker processes, which works as both classes live at module level).

uvicorn internals relied upon (read in uvicorn 0.54.0; ``tests/unit/test_h1.py`` exercises
every one on both implementations and passes with uvicorn 0.30.0, 0.40.0, 0.47.0, 0.53.0 and
0.54.0, httptools 0.5.0, 0.6.0 and 0.9.0, h11 0.16.0 — pin ``uvicorn>=0.30,<0.55`` and rerun
those tests before raising the cap):

* both protocols assign a new ``RequestResponseCycle`` to ``self.cycle`` for every request,
  after its head is parsed and before its ASGI task first runs (a ``cycle`` property here
  sees the assignment and adds the extensions to ``cycle.scope``, the scope the app gets);
* ``RequestResponseCycle`` attributes ``scope``, ``transport``, ``flow`` (``FlowControl``:
  ``write_paused``, ``drain()``), ``response_started`` and ``disconnected``; for h11 also
  ``conn`` (the connection's ``h11.Connection``);
* httptools: the parser calls the protocol's ``on_header`` for trailer fields too (after
  ``on_headers_complete``, flushed at the last ``on_chunk_complete``) and then
  ``on_message_complete``, which sets ``cycle.more_body = False``; ``self.scope`` is replaced
  in ``on_message_begin`` (so ``self.cycle.scope is self.scope`` means "this request's head is
  complete": any further field is a trailer); a callback's exception becomes
  ``HttpParserError``, which uvicorn answers with 400 and a close;
* h11: ``self.conn`` is created in ``__init__`` and first used in ``data_received``, so
  ``__init__`` replaces it with an identical connection (same
  ``config.h11_max_incomplete_event_size``) whose ``next_event`` records the trailers of
  ``h11.EndOfMessage`` before ``handle_events`` sets ``more_body = False``.

Both classes also send a response's head in the same write as its first body bytes
(:func:`_coalesce_head`): uvicorn writes the head as soon as ``http.response.start`` comes,
and the body with the next event, two ``send()`` calls and two wake-ups of the client for a
small response (the head's write was 8 % of the server's GIL time on a 1 KiB chunk's PUT,
py-spy ``--gil``; the server's CPU per request did not move measurably). The
head waits for the body only within the loop turn that started the response: if the app
awaits between the two (a streamed response), the head leaves at the end of that turn. A
body over :data:`COALESCE_MAX` bytes is written after the head, not copied into one buffer.
This relies on the cycle's ``send`` being looked up when the app is called, and on its
writes going through ``cycle.transport`` (``write``, ``close`` and ``is_closing``).

Both classes also carry :class:`pixdrop.http.connections.ConnectionGuard` (head timeout and
size cap, body idle timeout, connection cap, shutdown deadline); ``http_protocol_class(impl,
limits)`` binds its :class:`~pixdrop.http.connections.ConnectionLimits`. It relies on more of
uvicorn: ``loop``, ``flow.read_paused``, ``connections`` (the server's set of protocols),
``limit_concurrency`` (set to None: the guard answers the cap itself), ``app`` (wrapped),
``send_400_response`` (called for a parser error; the guard answers 431 instead when the
head was too large), ``shutdown()`` (called once per connection when shutdown begins), and on
the cycle ``keep_alive``, ``message_event``, ``response_complete`` and
``waiting_for_100_continue``; httptools' ``on_message_begin``/``on_url``/``on_header``/
``on_headers_complete`` (a callback's exception is a parser error) and h11's ``Request``
event and ``error_status_hint`` 431 for an incomplete head past the size given to
``h11.Connection``.

Everything runs in the event loop's protocol callbacks, so the app cannot observe a request
half-way through them; keep-alive and pipelining keep working because the extensions belong
to each request's scope, not to the connection. ``Expect: 100-continue`` is untouched
(uvicorn still sends 100 on the first ``receive()``, also after a 104), and flow control too
(no body byte passes through this module; the 1xx write waits while the transport's buffer
is full, like uvicorn's own ``send``).
"""

from __future__ import annotations

import asyncio
import functools
import http
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal, Protocol, cast

import h11
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.h11_impl import RequestResponseCycle as H11Cycle

from pixdrop.http.connections import (
    GUARD,
    PHASE_BODY,
    PHASE_HEAD,
    PHASE_NONE,
    ConnectionGuard,
    ConnectionLimits,
    RequestGuard,
)

TRAILERS = "pixdrop.request_trailers"
INFORMATIONAL = "pixdrop.informational"

#: Largest trailer section (names and values) the httptools protocol accepts; beyond, the
#: request is answered 400 and the connection closed. (h11 applies its own limit to the whole
#: section, ``h11_max_incomplete_event_size``: 16 KiB by default.)
MAX_TRAILER_SIZE = 16 * 1024

#: Largest first body write that takes the response head along in one buffer (a copy).
COALESCE_MAX = 64 * 1024

#: Reason phrases Python's ``http.HTTPStatus`` does not know.
REASONS = {104: b"Upload Resumption Supported"}

_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(rb"[^\x00-\x08\x0a-\x1f\x7f]*")

Fields = list[tuple[bytes, bytes]]


class RequestTrailers:
    """The trailer fields of one request: ``scope["extensions"]["pixdrop.request_trailers"]``.

    ``received`` turns True when the request's body has been read to its end (with or
    without a trailer section); ``headers`` holds the trailer fields as ``(name, value)``
    pairs, names lower-case, in the order received.
    """

    __slots__ = ("_size", "headers", "received")

    def __init__(self) -> None:
        self.received = False
        self.headers: Fields = []
        self._size = 0

    def get(self, name: bytes | str) -> bytes | None:
        """The value of the first trailer field called *name* (any case), or None."""
        key = (name.encode("latin-1") if isinstance(name, str) else name).lower()
        return next((value for field, value in self.headers if field == key), None)

    def add(self, name: bytes, value: bytes, limit: int | None = None) -> None:
        """Record one field (the protocol's job); ``ValueError`` past *limit* bytes in all."""
        self._size += len(name) + len(value)
        if limit is not None and self._size > limit:
            raise ValueError("request trailer section too large")
        self.headers.append((name.lower(), value))

    def __repr__(self) -> str:
        return f"RequestTrailers(received={self.received}, headers={self.headers!r})"


class _Cycle(Protocol):
    """What this module uses of uvicorn's ``RequestResponseCycle`` (both implementations)."""

    @property
    def scope(self) -> Mapping[str, object]: ...

    transport: asyncio.Transport
    flow: FlowControl
    response_started: bool
    disconnected: bool


Encoder = Callable[[int, bytes, Fields], bytes]


class InformationalSender:
    """``scope["extensions"]["pixdrop.informational"]``: send a 1xx before the final response."""

    __slots__ = ("_cycle", "_encode")

    def __init__(self, cycle: _Cycle, encode: Encoder) -> None:
        self._cycle = cycle
        self._encode = encode

    async def __call__(self, status: int, headers: Iterable[tuple[bytes, bytes]] = ()) -> None:
        fields = [(bytes(name), bytes(value)) for name, value in headers]
        if isinstance(status, bool) or not isinstance(status, int) or not 102 <= status <= 199:
            raise ValueError(f"not an informational status for an app to send: {status!r}")
        for name, value in fields:
            if not _TOKEN.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
                raise ValueError(f"invalid header field {name!r}: {value!r}")
        cycle = self._cycle
        if cycle.response_started:
            raise RuntimeError("informational response after the final response has started")
        if cycle.scope.get("http_version") != "1.1":
            return  # RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
        if cycle.flow.write_paused and not cycle.disconnected:
            await cycle.flow.drain()
            if cycle.response_started:
                raise RuntimeError("informational response after the final response has started")
        if cycle.disconnected or cycle.transport.is_closing():
            return
        reason = REASONS.get(status) or _phrase(status)
        cycle.transport.write(self._encode(status, reason, fields))


class _HeldWrites:
    """The transport a response head is written to while ``http.response.start`` is sent:
    the bytes are kept, every other call goes to the real transport."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.data: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.data.append(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


class _HeadFirst:
    """The transport while the first body event is sent: its first write (or a close, or the
    end of the event without either: a HEAD response) takes the held head along first."""

    def __init__(self, transport: asyncio.Transport, head: bytes) -> None:
        self.transport = transport
        self.head: bytes | None = head

    def write(self, data: bytes) -> None:
        head, self.head = self.head, None
        if head is None:
            self.transport.write(data)
        elif len(data) <= COALESCE_MAX:
            self.transport.write(head + data)
        else:
            self.transport.write(head)
            self.transport.write(data)

    def flush(self) -> None:
        head, self.head = self.head, None
        if head is not None and not self.transport.is_closing():
            self.transport.write(head)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.transport, name)


def _coalesce_head(cycle: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Make *cycle*'s ASGI ``send`` write the response head with the first body bytes (see
    the module docstring)."""
    send = cycle.send
    pending: list[bytes] = []

    def flush() -> None:  # the loop turn ended before the body came: the head goes alone
        if pending:
            head = pending.pop()
            if not cycle.transport.is_closing():
                cycle.transport.write(head)

    async def coalescing_send(message: Mapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start" and not cycle.response_started:
            transport = cycle.transport
            held = cycle.transport = _HeldWrites(transport)
            try:
                await send(message)
            finally:
                cycle.transport = transport
            if held.data:
                pending.append(b"".join(held.data))
                loop.call_soon(flush)
        elif pending and kind == "http.response.body":
            transport = cycle.transport
            head_first = cycle.transport = _HeadFirst(transport, pending.pop())
            try:
                await send(message)
            finally:
                cycle.transport = transport
                head_first.flush()
        else:
            await send(message)

    cycle.send = coalescing_send


def _phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


def _add_extensions(protocol: ConnectionGuard, cycle: _Cycle, encode: Encoder) -> RequestTrailers:
    """Put both extensions (and the connection guard's) into *cycle*'s scope; return its
    (empty) trailers."""
    scope = cast("dict[str, Any]", cycle.scope)
    extensions = scope.get("extensions")
    if extensions is None:
        extensions = scope["extensions"] = {}
    trailers = RequestTrailers()
    extensions[TRAILERS] = trailers
    extensions[INFORMATIONAL] = InformationalSender(cycle, encode)
    guard = extensions[GUARD] = RequestGuard(cast("Any", cycle))
    protocol._guard = guard
    _coalesce_head(cycle, cast("Any", protocol).loop)
    return trailers


def _encode_raw(status: int, reason: bytes, fields: Fields) -> bytes:
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    lines.extend(name + b": " + value + b"\r\n" for name, value in fields)
    lines.append(b"\r\n")
    return b"".join(lines)


# --- h11 -----------------------------------------------------------------------------------


def _h11_encoder(conn: h11.Connection) -> Encoder:
    """The 1xx encoder for an h11 connection: through h11, which tracks 100-continue."""

    def encode(status: int, reason: bytes, fields: Fields) -> bytes:
        event = h11.InformationalResponse(status_code=status, headers=fields, reason=reason)
        try:
            return conn.send(event) or b""
        except h11.LocalProtocolError as exc:
            raise RuntimeError(f"cannot send {status} now: {exc}") from exc

    return encode


class _TrailersConnection(h11.Connection):
    """An ``h11.Connection`` that hands the next ``EndOfMessage``'s fields to ``pending`` and
    tells its protocol (the connection guard) where each request stands."""

    pending: RequestTrailers | None = None
    protocol: H11TrailersProtocol | None = None

    def next_event(self) -> h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]:
        protocol = self.protocol
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431 and protocol and protocol._phase != PHASE_BODY:
                protocol._head_too_large()  # h11's own cap on an incomplete head (not trailers)
            raise
        kind = type(event)
        if kind is h11.Request and protocol is not None:
            request = cast("h11.Request", event)
            size = len(request.method) + len(request.target) + 11
            size += sum(len(name) + len(value) + 4 for name, value in request.headers)
            if size > protocol.limits.max_header_size:  # a whole head in one read: h11 takes it
                protocol._head_too_large()
                raise h11.RemoteProtocolError("request head too large", error_status_hint=431)
            protocol._head_complete()
        elif kind is h11.EndOfMessage:
            if self.pending is not None:
                for name, value in cast("h11.EndOfMessage", event).headers:
                    self.pending.add(name, value)
                self.pending.received = True
                self.pending = None
            if protocol is not None:
                protocol._body_complete()
        return event


class H11TrailersProtocol(ConnectionGuard, H11Protocol):
    """uvicorn's h11 protocol with the ``pixdrop.*`` scope extensions and connection limits."""

    _pixdrop_cycle: H11Cycle = None  # type: ignore[assignment]  # as in uvicorn: None at first

    def __init__(self, *args: Any, limits: ConnectionLimits | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._setup_guard(limits)
        # h11 refuses (431) an incomplete head past this size; a whole one is measured above.
        conn = _TrailersConnection(h11.SERVER, self.limits.max_header_size)
        conn.protocol = self
        self.conn = conn
        self._pixdrop_conn = conn

    @property  # uvicorn assigns a plain attribute: this sees every new request
    def cycle(self) -> H11Cycle:
        return self._pixdrop_cycle

    @cycle.setter
    def cycle(self, cycle: H11Cycle) -> None:
        self._pixdrop_cycle = cycle
        if cycle is not None:
            encoder = _h11_encoder(cycle.conn)
            self._pixdrop_conn.pending = _add_extensions(self, cycle, encoder)

    @property
    def _cycle(self) -> Any:
        return self._pixdrop_cycle

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_started(seen=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return
        self._last_byte = self.loop.time()
        if self._phase == PHASE_NONE:
            cycle = self._pixdrop_cycle
            if cycle is None or cycle.response_complete:
                self._head_started(seen=True)
        elif self._phase == PHASE_HEAD:
            self._head_seen = True
        super().data_received(data)

    def send_400_response(self, msg: str) -> None:
        if not self._refuse_head():
            super().send_400_response(msg)

    def shutdown(self) -> None:
        super().shutdown()
        self._shutdown_requested()


# --- httptools -----------------------------------------------------------------------------

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle as HttpToolsCycle
except ImportError:  # pragma: no cover - httptools is optional for uvicorn
    HAVE_HTTPTOOLS = False
else:
    HAVE_HTTPTOOLS = True

if HAVE_HTTPTOOLS:

    class HttpToolsTrailersProtocol(ConnectionGuard, HttpToolsProtocol):
        """uvicorn's httptools protocol with the ``pixdrop.*`` scope extensions and
        connection limits."""

        _pixdrop_cycle: HttpToolsCycle = None  # type: ignore[assignment]  # None at first
        _pixdrop_trailers: RequestTrailers | None = None
        #: Bytes of the head being parsed: request target and fields as the parser hands them
        #: over, and whole reads that came while the head was still incomplete.
        _head_bytes = 0
        _head_raw = 0
        _begun = False

        def __init__(
            self, *args: Any, limits: ConnectionLimits | None = None, **kwargs: Any
        ) -> None:
            super().__init__(*args, **kwargs)
            self._setup_guard(limits)

        @property  # uvicorn assigns a plain attribute: this sees every new request
        def cycle(self) -> HttpToolsCycle:
            return self._pixdrop_cycle

        @cycle.setter
        def cycle(self, cycle: HttpToolsCycle) -> None:
            self._pixdrop_cycle = cycle
            if cycle is not None:
                self._pixdrop_trailers = _add_extensions(self, cycle, _encode_raw)

        @property
        def _cycle(self) -> Any:
            return self._pixdrop_cycle

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._head_started(seen=False)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return
            self._last_byte = self.loop.time()
            in_head = self._begun and self._phase == PHASE_HEAD
            if self._phase == PHASE_NONE:
                cycle = self._pixdrop_cycle
                if cycle is None or cycle.response_complete:
                    self._head_started(seen=True)
            elif self._phase == PHASE_HEAD:
                self._head_seen = True
            super().data_received(data)
            if in_head and self._begun and not self.transport.is_closing():
                # The whole read belongs to a head still incomplete (httptools keeps a field
                # until it is complete: a huge one is caught here, before it ends).
                self._head_raw += len(data)
                if self._head_raw > self.limits.max_header_size:
                    self._head_too_large()
                    self._refuse_head()

        def send_400_response(self, msg: str) -> None:
            if not self._refuse_head():
                super().send_400_response(msg)

        def shutdown(self) -> None:
            super().shutdown()
            self._shutdown_requested()

        def _count_head(self, size: int) -> None:
            self._head_bytes += size
            if self._head_bytes > self.limits.max_header_size:
                raise self._head_too_large()  # the parser makes it HttpParserError: 431 above

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = self._head_raw = 0
            self._begun = True
            self._head_started(seen=True)

        def on_url(self, url: bytes) -> None:
            super().on_url(url)
            self._count_head(len(url))

        def on_headers_complete(self) -> None:
            self._begun = False
            super().on_headers_complete()
            self._head_complete()

        def _current_trailers(self) -> RequestTrailers | None:
            """The trailers of the request being parsed, once its head is complete."""
            cycle = self._pixdrop_cycle
            if cycle is None or cycle.scope is not self.scope:
                return None  # still in the head (or an upgrade): a header, not a trailer
            return self._pixdrop_trailers

        def on_header(self, name: bytes, value: bytes) -> None:
            trailers = self._current_trailers()
            if trailers is None:
                super().on_header(name, value)
                self._count_head(len(name) + len(value) + 4)
            else:
                trailers.add(name, value, MAX_TRAILER_SIZE)

        def on_message_complete(self) -> None:
            trailers = self._current_trailers()
            if trailers is not None:
                trailers.received = True
            super().on_message_complete()
            self._body_complete()


def http_protocol_class(
    impl: Literal["auto", "httptools", "h11"] = "auto",
    limits: ConnectionLimits | None = None,
) -> Callable[..., asyncio.Protocol]:
    """The protocol class for ``uvicorn.Config(http=...)``: httptools if installed, else h11.

    With *limits*, a ``functools.partial`` of it that applies them (it pickles, for worker
    processes); without, the class itself, with ``ConnectionLimits()``'s defaults.
    """
    cls: type[asyncio.Protocol]
    if impl == "h11" or (impl == "auto" and not HAVE_HTTPTOOLS):
        cls = H11TrailersProtocol
    elif impl not in ("auto", "httptools"):
        raise ValueError(f"unknown HTTP/1.1 implementation: {impl!r}")
    elif not HAVE_HTTPTOOLS:
        raise ImportError("httptools is not installed")
    else:
        cls = HttpToolsTrailersProtocol
    return cls if limits is None else functools.partial(cls, limits=limits)
