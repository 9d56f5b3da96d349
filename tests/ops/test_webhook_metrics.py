"""The webhook and hook metrics over HTTP, after sessions with a real receiver (the webhook
tests' ``Receiver``): ``/metrics`` says what the receiver saw, on SQLite and PostgreSQL, and
with ``--workers 2`` (where the backlog is read by every worker and must not be summed)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.e2e import ServerProcess
from tests.http.helpers import free_port, poll, post_image
from tests.ops.session import Key, grown, key, scrape
from tests.webhooks import conftest as webhooks
from tests.webhooks.receiver import Answer, Received, Receiver

# The webhook tests' fixtures: a receiver, ``pixdrop webhooks add`` on the test's database.
cli, add_endpoint, receiver = webhooks.cli, webhooks.add_endpoint, webhooks.receiver

FAST = {"webhook_retry_base": 0.05, "webhook_refresh": 0.2}
AddEndpoint = Callable[..., dict[str, Any]]


def outcome(name: str) -> Key:
    return key("pixdrop_webhook_deliveries_total", outcome=name)


DELIVERED, RETRIED, FAILED = outcome("delivered"), outcome("retried"), outcome("failed")
ATTEMPTS = key("pixdrop_webhook_attempt_seconds_count")
LAGS = key("pixdrop_webhook_delivery_lag_seconds_count")
BACKLOG = key("pixdrop_webhook_backlog")
IN_FLIGHT = key("pixdrop_webhook_deliveries_in_flight")
IMAGE_CREATED = key("pixdrop_webhook_events_total", type="image.created")


def _metrics_when(url: str, done: Callable[[dict[Key, float]], bool]) -> dict[Key, float]:
    """Scrape *url* until *done* holds (the sender works in the background); the last scrape."""
    return poll(lambda: scrape(url), done, timeout=60)


def test_a_500_then_a_2xx_is_one_retry_and_one_delivery(
    server_factory: ServerFactory,
    receiver: Receiver,
    add_endpoint: AddEndpoint,
    photo_png: bytes,
) -> None:
    add_endpoint(receiver.url, "image.created")
    answers = iter([500])
    receiver.answer = lambda _: (next(answers, 200), None, 0.0)
    server = server_factory(**FAST)
    before = scrape(server.url + "/metrics")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        post_image(client, photo_png)
    after = _metrics_when(server.url + "/metrics", lambda m: grown(before, m, DELIVERED) >= 1)

    assert len(receiver.events()) == 2  # the 500, then the 200
    growth = {k: grown(before, after, k) for k in (IMAGE_CREATED, DELIVERED, RETRIED, FAILED)}
    assert growth == {IMAGE_CREATED: 1, DELIVERED: 1, RETRIED: 1, FAILED: 0}
    # Both attempts were timed; the one delivery's lag (from writing to delivery) too.
    assert (grown(before, after, ATTEMPTS), grown(before, after, LAGS)) == (2, 1)
    # Nothing is left to send: the next refresh of the backlog reads 0.
    assert _metrics_when(server.url + "/metrics", lambda m: m.get(BACKLOG) == 0)[BACKLOG] == 0


def test_a_delivery_given_up_is_one_failure(
    server_factory: ServerFactory,
    receiver: Receiver,
    add_endpoint: AddEndpoint,
    photo_png: bytes,
) -> None:
    add_endpoint(receiver.url, "image.created")
    receiver.answer = lambda _: (503, None, 0.0)
    server = server_factory(webhook_retry_for=0.3, **FAST)
    before = scrape(server.url + "/metrics")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        post_image(client, photo_png)
    after = _metrics_when(server.url + "/metrics", lambda m: grown(before, m, FAILED) >= 1)

    tries = len(receiver.events())  # how many retries fit in 0.3 s depends on the jitter
    assert tries >= 1
    assert (grown(before, after, FAILED), grown(before, after, DELIVERED)) == (1, 0)
    assert grown(before, after, RETRIED) == tries - 1
    assert grown(before, after, ATTEMPTS) == tries
    assert grown(before, after, LAGS) == 0
    assert _metrics_when(server.url + "/metrics", lambda m: m.get(BACKLOG) == 0)[BACKLOG] == 0


class Stalled:
    """A receiver's answer that holds every request until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def __call__(self, _: Received) -> Answer:
        self.release.wait(60)
        return 200, None, 0.0


def test_the_backlog_and_the_attempts_in_flight(
    server_factory: ServerFactory,
    receiver: Receiver,
    add_endpoint: AddEndpoint,
    photo_png: bytes,
) -> None:
    add_endpoint(receiver.url, "image.created")
    stalled = Stalled()
    receiver.answer = stalled
    server = server_factory(webhook_concurrency=1, webhook_timeout=60, **FAST)
    metrics_url = server.url + "/metrics"
    try:
        before = scrape(metrics_url)
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for _ in range(3):
                post_image(client, photo_png)
        receiver.wait_for(bool)  # the one sending slot is now held by the receiver
        # Three pending (the one being sent is pending until its answer), one in flight.
        waiting = _metrics_when(metrics_url, lambda m: m.get(BACKLOG) == 3)
        assert (waiting[BACKLOG], waiting[IN_FLIGHT]) == (3, 1)
        assert grown(before, waiting, IMAGE_CREATED) == 3
    finally:
        stalled.release.set()
    after = _metrics_when(metrics_url, lambda m: m.get(BACKLOG) == 0 and m[IN_FLIGHT] == 0)
    assert (after[BACKLOG], after[IN_FLIGHT]) == (0, 0)
    assert grown(before, after, DELIVERED) == 3


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_two_workers_report_the_backlog_once(
    tmp_path: Path,
    database_url: str,
    receiver: Receiver,
    add_endpoint: AddEndpoint,
    photo_png: bytes,
) -> None:
    """Both workers read the backlog; the metrics port must show it, not twice it."""
    add_endpoint(receiver.url, "image.created")
    stalled = Stalled()
    receiver.answer = stalled
    port = free_port()
    flags = ["--webhook-concurrency", "1", "--webhook-timeout", "60", "--webhook-refresh", "0.2"]
    server = ServerProcess(
        tmp_path,
        tmp_path / "data",
        database_url,
        ["--workers", "2", "--metrics-port", str(port), "--no-access-log", *flags],
    )
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    try:
        server.wait_healthy(timeout=120)
        try:
            with httpx.Client(
                base_url=server.url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)
            ) as client:
                for _ in range(3):
                    post_image(client, photo_png)
            receiver.wait_for(bool)
            # Every worker reads 3 within a refresh or two; a sum would be 6.
            _metrics_when(metrics_url, lambda m: m.get(BACKLOG) == 3)
            waiting = [scrape(metrics_url) for _ in range(5)]
            assert [(m[BACKLOG], m[IN_FLIGHT]) for m in waiting] == [(3, 1)] * 5
            # Written by whichever worker served each request: summed.
            assert waiting[-1][IMAGE_CREATED] == 3
        finally:
            stalled.release.set()
        after = _metrics_when(metrics_url, lambda m: m.get(DELIVERED) == 3)
        assert after[DELIVERED] == 3
        drained = _metrics_when(metrics_url, lambda m: m.get(BACKLOG) == 0)
        assert (drained[BACKLOG], drained[IN_FLIGHT]) == (0, 0)
    finally:
        server.stop()


# --- the pre-create hook ---------------------------------------------------------------------


def _decide(request: Received) -> Answer:
    """Allow ``allow.png``, refuse ``deny.png``, and answer too late for anything else."""
    name = request.json()["upload"]["filename"]
    if name == "allow.png":
        return 200, {"allow": True}, 0.0
    if name == "deny.png":
        return 200, {"allow": False, "status": 403, "message": "No."}, 0.0
    return 200, {"allow": True}, 10.0  # past --hook-timeout


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("failure", "status"), [("closed", 503), ("open", 201)])
def test_hook_calls_are_counted_by_outcome(
    server_factory: ServerFactory, receiver: Receiver, failure: str, status: int
) -> None:
    receiver.answer = _decide
    server = server_factory(hook_url=receiver.url, hook_timeout=2, hook_failure=failure)
    names = ("allow.png", "deny.png", "deny.png", "slow.png")
    before = scrape(server.url + "/metrics")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        answers = [
            client.post("/v1/uploads", json={"size": 100, "filename": name}).status_code
            for name in names
        ]
    after = scrape(server.url + "/metrics")

    assert answers == [201, 403, 403, status]
    calls = {
        name: grown(before, after, key("pixdrop_hook_calls_total", outcome=name))
        for name in ("allowed", "refused", "failed-open", "failed-closed")
    }
    assert calls == {
        "allowed": 1,
        "refused": 2,
        "failed-open": 1 if failure == "open" else 0,
        "failed-closed": 1 if failure == "closed" else 0,
    }
    assert grown(before, after, key("pixdrop_hook_duration_seconds_count")) == 4
