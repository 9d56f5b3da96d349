"""Rate limits over real HTTP: per client address in memory, per key, shared across server
processes through Redis, the IETF draft's headers, and what is exempt.

Each test counts under client addresses of its own (``--trust-forwarded`` and
``Forwarded: for=`` / ``X-Forwarded-For``), so runs never share a budget in Redis.
Redis is at ``REDIS_URL`` (default 127.0.0.1:6379): when ``CI=true`` its absence fails the
run; elsewhere the Redis tests are skipped with the reason.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixdrop.config import ConfigError, load_settings
from pixdrop.protocols.forwarded import forwarded_for
from tests.auth.conftest import SIGNING_KEY, direct_key
from tests.conftest import IN_CI, ServerFactory
from tests.e2e import ServerProcess
from tests.http.helpers import assert_problem

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
_POLICY = re.compile(r'^"(?P<name>[a-z]+)";q=(?P<q>\d+);w=(?P<w>\d+)$')
_STATE = re.compile(r'^"(?P<name>[a-z]+)";r=(?P<r>\d+);t=(?P<t>\d+)$')


def fresh_address() -> str:
    """An address no other test (or earlier run) counts under."""
    return "10." + ".".join(str(secrets.randbelow(250) + 1) for _ in range(3))


def remaining(response: httpx.Response) -> int:
    match = _STATE.fullmatch(response.headers["ratelimit"])
    assert match, response.headers["ratelimit"]
    return int(match["r"])


@pytest.fixture(scope="module")
def redis_url() -> str:
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:
        message = f"Redis not reachable at {REDIS_URL}: {exc}"
        if IN_CI:
            pytest.fail(message + " (required when CI=true)")
        pytest.skip(message)
    return REDIS_URL


def test_a_bad_rate_stops_the_server_at_start_up() -> None:
    with pytest.raises(ConfigError, match="rate_limit"):
        load_settings({}, rate_limit="lots")
    assert load_settings({}, rate_limit="600/minute").rate_limit == "600/minute"


def test_forwarded_for_reads_addresses_only() -> None:
    assert forwarded_for({"forwarded": "for=192.0.2.60;proto=http, for=10.0.0.1"}) == "192.0.2.60"
    assert forwarded_for({"forwarded": 'for="[2001:db8:cafe::17]:4711"'}) == "2001:db8:cafe::17"
    assert forwarded_for({"forwarded": "for=unknown"}) is None
    assert forwarded_for({"forwarded": "for=_hidden"}) is None
    assert forwarded_for({}) is None


def test_over_the_limit_answers_429_with_the_draft_headers(server_factory: ServerFactory) -> None:
    live = server_factory(rate_limit="3/minute", trust_forwarded=True)
    here = {"Forwarded": f"for={fresh_address()}"}
    with httpx.Client(base_url=live.url, timeout=30) as client:
        answers = [client.get("/v1/limits", headers=here) for _ in range(3)]
        for answer in answers:
            assert answer.status_code == 200, answer.text
            policy = _POLICY.fullmatch(answer.headers["ratelimit-policy"])
            assert policy, answer.headers["ratelimit-policy"]
            assert (policy["name"], policy["q"], policy["w"]) == ("address", "3", "60")
        assert [remaining(a) for a in answers] == [2, 1, 0]
        refused = client.get("/v1/limits", headers=here)
        body = assert_problem(refused, 429, "rate-limited", limit=3, window=60)
        retry = int(refused.headers["retry-after"])
        assert 1 <= retry <= 60
        assert body["retry_after"] == retry
        state = _STATE.fullmatch(refused.headers["ratelimit"])
        assert state, refused.headers["ratelimit"]
        assert state["r"] == "0"
        assert 1 <= int(state["t"]) <= 60
        assert refused.headers["ratelimit-policy"] == '"address";q=3;w=60'
        # Another address has its own budget.
        other = client.get("/v1/limits", headers={"Forwarded": f"for={fresh_address()}"})
        assert other.status_code == 200
        assert remaining(other) == 2


def test_health_checks_and_the_page_are_not_counted(server_factory: ServerFactory) -> None:
    live = server_factory(rate_limit="1/minute", trust_forwarded=True)
    here = {"X-Forwarded-For": fresh_address()}
    with httpx.Client(base_url=live.url, timeout=30) as client:
        assert client.get("/v1/limits", headers=here).status_code == 200
        assert_problem(client.get("/v1/limits", headers=here), 429, "rate-limited")
        for path in ("/healthz", "/readyz", "/metrics", "/", "/web/app.js", "/healthz", "/"):
            answer = client.get(path, headers=here)
            assert answer.status_code == 200, (path, answer.text)
            assert "ratelimit" not in answer.headers


def test_without_trust_forwarded_the_proxy_headers_are_ignored(
    server_factory: ServerFactory,
) -> None:
    live = server_factory(rate_limit="2/minute")
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for _ in range(2):
            answer = client.get("/v1/limits", headers={"Forwarded": f"for={fresh_address()}"})
            assert answer.status_code == 200
        spoofed = client.get("/v1/limits", headers={"Forwarded": f"for={fresh_address()}"})
        assert_problem(spoofed, 429, "rate-limited")


def test_grant_uploads_count_against_the_address(
    server_factory: ServerFactory, photo_png: bytes
) -> None:
    live = server_factory(rate_limit="3/minute", trust_forwarded=True)
    here = {"X-Forwarded-For": fresh_address()}
    with httpx.Client(base_url=live.url, timeout=60) as client:
        grant = client.post("/v1/direct-uploads", json={}).json()
        auth = {"Authorization": f"Bearer {grant['token']}", **here}
        made = client.post("/v1/images", content=photo_png, headers=auth)
        assert made.status_code == 201, made.text
        assert remaining(made) == 2
        assert client.get("/v1/limits", headers=auth).status_code == 200
        assert client.get("/v1/limits", headers=here).status_code == 200
        assert_problem(client.get("/v1/limits", headers=auth), 429, "rate-limited")


def test_a_key_is_limited_by_its_own_rate_not_by_address(
    server_factory: ServerFactory, database_url: str
) -> None:
    live = server_factory(
        auth="keys", signing_key=SIGNING_KEY, rate_limit="4/minute", trust_forwarded=True
    )
    slow_key = direct_key(database_url, scopes=("read",), rate="2/minute")
    plain_key = direct_key(database_url, scopes=("read",))
    here = {"X-Forwarded-For": fresh_address()}
    slow = {**here, "Authorization": f"Bearer {slow_key}"}
    plain = {**here, "Authorization": f"Bearer {plain_key}"}
    with httpx.Client(base_url=live.url, timeout=30) as client:
        first = client.get("/v1/limits", headers=slow)
        assert first.headers["ratelimit-policy"] == '"key";q=2;w=60'
        assert client.get("/v1/limits", headers=slow).status_code == 200
        assert_problem(client.get("/v1/limits", headers=slow), 429, "rate-limited")
        # The same address with another key, or with none, has budgets of its own.
        keyed = client.get("/v1/limits", headers=plain)
        assert keyed.headers["ratelimit-policy"] == '"key";q=4;w=60'
        assert client.get("/healthz", headers=here).status_code == 200  # not counted
        anonymous = client.get("/v1/direct-uploads/AAAAAAAAAAAAAAAAAAAAAA", headers=here)
        assert anonymous.headers["ratelimit-policy"] == '"address";q=4;w=60'


def test_in_memory_each_process_counts_on_its_own(server_factory: ServerFactory) -> None:
    first = server_factory(rate_limit="2/minute", trust_forwarded=True)
    second = server_factory(rate_limit="2/minute", trust_forwarded=True)
    here = {"X-Forwarded-For": fresh_address()}
    for live in (first, second):
        with httpx.Client(base_url=live.url, timeout=30) as client:
            assert [client.get("/v1/limits", headers=here).status_code for _ in range(2)] == [
                200,
                200,
            ]
            assert_problem(client.get("/v1/limits", headers=here), 429, "rate-limited")


@pytest.fixture
def nodes(tmp_path: Path, redis_url: str) -> Iterator[list[ServerProcess]]:
    """Two ``pixdrop serve`` processes on one SQLite file and one Redis."""
    database = f"sqlite:///{tmp_path / 'pixdrop.db'}"
    args = ["--rate-limit", "5/minute", "--redis-url", redis_url, "--trust-forwarded"]
    started: list[ServerProcess] = []
    try:
        for _ in range(2):
            node = ServerProcess(tmp_path, tmp_path / "data", database, [*args, "--no-access-log"])
            started.append(node)
            node.wait_healthy()
        yield started
    finally:
        for node in started:
            node.stop()


def test_two_processes_on_one_redis_share_a_budget(nodes: list[ServerProcess]) -> None:
    here = {"X-Forwarded-For": fresh_address()}
    seen: list[Any] = []
    with httpx.Client(timeout=30) as client:
        for index in range(5):
            answer = client.get(f"{nodes[index % 2].url}/v1/limits", headers=here)
            assert answer.status_code == 200, answer.text
            seen.append(remaining(answer))
        assert seen == [4, 3, 2, 1, 0]
        for node in nodes:
            assert_problem(client.get(f"{node.url}/v1/limits", headers=here), 429, "rate-limited")


def test_unreachable_redis_serves_requests_uncounted(
    server_factory: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    live = server_factory(rate_limit="1/minute", redis_url="redis://127.0.0.1:1/0")
    with httpx.Client(base_url=live.url, timeout=30) as client:
        answers = [client.get("/v1/limits") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert not any("ratelimit" in a.headers for a in answers)
    assert any(r.name == "pixdrop.ratelimit" for r in caplog.records)
