"""A real HTTP receiver on 127.0.0.1 in the test process: records what it is sent and answers
as the test says (a status per request, or a JSON decision for the pre-create hook)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


#: What the receiver answers to one request: (status, JSON body or None, seconds to wait first).
Answer = tuple[int, Any, float]


class Receiver:
    """``url`` receives POSTs; ``answer`` decides each reply (default: 200, no body)."""

    def __init__(self, port: int = 0) -> None:
        self.received: list[Received] = []
        self.answer: Callable[[Received], Answer] = lambda _: (200, None, 0.0)
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                got = Received(
                    {k.lower(): v for k, v in self.headers.items()}, self.rfile.read(length)
                )
                with owner._lock:
                    owner.received.append(got)
                status, body, wait = owner.answer(got)
                if wait:
                    time.sleep(wait)
                data = b"" if body is None else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the sender gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def verified(self, secret: str) -> list[dict[str, Any]]:
        """Every event received, each checked with the standardwebhooks library."""
        checker = Webhook(secret)
        return [checker.verify(r.body, r.headers) for r in self.events()]

    def wait_for(
        self, done: Callable[[list[Received]], bool], timeout: float = 30.0
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.events()
            if done(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: condition not met; got {[r.json() for r in got]}")
            time.sleep(0.05)


def types_for(received: list[Received], resource_id: str) -> list[str]:
    """The event types received about one upload or image, in arrival order."""
    return [r.json()["type"] for r in received if r.json()["data"]["id"] == resource_id]
