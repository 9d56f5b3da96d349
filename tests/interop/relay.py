"""A byte-counting TCP relay in front of a test server, able to cut one connection mid-stream.

The interop tests need two things the clients do not tell: how many bytes a client really
sent (to prove that a resumed upload did not start again from zero) and a transfer that
breaks for real (the connection drops in the middle of a request body). The relay knows
nothing of HTTP; it counts client→server bytes over all connections, so a cut placed at
byte N of the traffic lands wherever the client happens to be, whatever connection it uses.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from urllib.parse import urlsplit


class Relay:
    """Listens on 127.0.0.1 (ephemeral port) and relays every connection to *upstream_url*."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._sent = 0
        self._cut_at: int | None = None
        #: Connections accepted, and connections cut by ``cut_after``.
        self.connections = 0
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    @property
    def sent(self) -> int:
        """Client→server bytes relayed so far (request lines, headers and bodies)."""
        with self._lock:
            return self._sent

    def reset(self) -> int:
        """Start counting again from zero; return the count so far."""
        with self._lock:
            sent, self._sent = self._sent, 0
            return sent

    def cut_after(self, nbytes: int) -> None:
        """Hang up the connection that carries the client's next *nbytes*-th byte (once)."""
        with self._lock:
            self._cut_at = self._sent + nbytes

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._acceptor.join(timeout=5)
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _hang_up(sock)

    def __enter__(self) -> Relay:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self._upstream, timeout=10)
                upstream.settimeout(None)
            except OSError:
                _hang_up(client)
                continue
            with self._lock:
                self.connections += 1
                self._sockets += [client, upstream]
            for src, dst, counted in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(
                    target=self._pump, args=(src, dst, client, upstream, counted), daemon=True
                ).start()

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        client: socket.socket,
        upstream: socket.socket,
        counted: bool,
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    # A half-close: pass it on, the other direction may still be talking.
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                    return
                cut = False
                if counted:
                    with self._lock:
                        if self._cut_at is not None and self._sent + len(data) >= self._cut_at:
                            data = data[: self._cut_at - self._sent]
                            self._cut_at = None
                            self.cuts += 1
                            cut = True
                        self._sent += len(data)
                dst.sendall(data)
                if cut:
                    _hang_up(client)
                    _hang_up(upstream)
                    return
        except OSError:
            _hang_up(client)
            _hang_up(upstream)


def _hang_up(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
