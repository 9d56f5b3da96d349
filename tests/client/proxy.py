"""A small TCP proxy for fault injection: cut connections after N bytes, delay responses.

It knows nothing of HTTP: it relays bytes between the client and the upstream server, one
thread per direction. Faults are decided per connection when it opens, so a test can make
the first few connections break mid-request (or mid-response) and the rest work.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass


@dataclass
class Faults:
    """What to do to new connections. Counters are updated by the proxy."""

    #: Cut a connection after this many client→server bytes (mid-request).
    cut_upload_after: int | None = None
    #: Cut a connection after this many server→client bytes (mid-response).
    cut_download_after: int | None = None
    #: Cut at most this many connections; every other connection is cut until then.
    max_cuts: int = 0
    #: Seconds to wait before relaying each block of the server's answer.
    delay: float = 0.0


class FaultProxy:
    """Listens on 127.0.0.1 (ephemeral port) and relays to *upstream_port*."""

    def __init__(self, upstream_port: int, faults: Faults | None = None) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.faults = faults or Faults()
        self.connections = 0
        #: Connections chosen to be cut, and connections actually cut (the fault happened).
        self.doomed = 0
        self.cuts = 0
        #: Connections closed at once because the server did not answer the proxy's connect.
        self.refused = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:  # the server is down: so is this connection, not the proxy
                with self._lock:
                    self.refused += 1
                _shut(client)
                continue
            with self._lock:
                self.connections += 1
                faults = self.faults
                doomed = self.doomed < faults.max_cuts and self.connections % 2 == 1
                self.doomed += doomed
                self._sockets += [client, upstream]
            link = _Link(self, client, upstream)
            up_limit = faults.cut_upload_after if doomed else None
            down_limit = faults.cut_download_after if doomed else None
            threading.Thread(
                target=link.pump, args=(client, upstream, up_limit, 0.0), daemon=True
            ).start()
            threading.Thread(
                target=link.pump, args=(upstream, client, down_limit, faults.delay), daemon=True
            ).start()

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class _Link:
    """Both directions of one proxied connection; either side closing closes both."""

    def __init__(self, proxy: FaultProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy, self.client, self.upstream = proxy, client, upstream

    def pump(self, src: socket.socket, dst: socket.socket, limit: int | None, delay: float) -> None:
        relayed = 0
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if delay:
                    time.sleep(delay)
                if limit is not None and relayed + len(data) >= limit:
                    dst.sendall(data[: limit - relayed])
                    with self.proxy._lock:
                        self.proxy.cuts += 1
                    break  # the fault: hang up mid-message
                dst.sendall(data)
                relayed += len(data)
        except OSError:
            pass
        finally:
            _shut(self.client)
            _shut(self.upstream)
