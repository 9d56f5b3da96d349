"""``/metrics`` over HTTP after a scripted session (``session.py``) says what happened: in one
process (the test's server, on SQLite and PostgreSQL) and with ``--workers 2`` (a real
``pixdrop serve``), where any worker may have served each request and the metrics port of the
supervisor answers for all of them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import ServerFactory
from tests.e2e import ServerProcess
from tests.http.helpers import create_upload, free_port, poll
from tests.ops.session import Key, expected_growth, grown, key, run_session, scrape


def _mismatches(
    before: dict[Key, float], after: dict[Key, float], expected: dict[Key, float]
) -> dict[Key, tuple[float, float]]:
    return {
        wanted: (grown(before, after, wanted), count)
        for wanted, count in expected.items()
        if grown(before, after, wanted) != count
    }


def test_a_session_shows_in_the_metrics(server_factory: ServerFactory) -> None:
    live = server_factory()
    # Metrics are per process and the test process may have served others before: compare
    # a scrape before the session with one after.
    before = scrape(live.url + "/metrics")
    done = run_session(live.url)
    after = scrape(live.url + "/metrics")
    assert _mismatches(before, after, expected_growth(done)) == {}
    # The first scrape was counted (it ended before the second began).
    metrics_ok = key("pixdrop_http_requests_total", route="/metrics", method="GET", status="200")
    assert grown(before, after, metrics_ok) >= 1


def test_the_sweeper_counts_its_runs_and_the_uploads_it_removed(
    server_factory: ServerFactory,
) -> None:
    live = server_factory(upload_ttl=1, sweep_interval=0.2)
    before = scrape(live.url + "/metrics")
    with httpx.Client(base_url=live.url) as client:
        create_upload(client, 1000)
    expired, swept = key("pixdrop_uploads_expired_total"), key("pixdrop_sweeps_total", outcome="ok")
    after = poll(
        lambda: scrape(live.url + "/metrics"),
        lambda now: grown(before, now, expired) >= 1,
        timeout=60,
    )
    assert grown(before, after, expired) == 1
    assert grown(before, after, swept) >= 1
    assert grown(before, after, key("pixdrop_sweeps_total", outcome="failed")) == 0


def test_routes_are_templates_and_unknown_paths_one_label(server_factory: ServerFactory) -> None:
    live = server_factory()
    before = scrape(live.url + "/metrics")
    for n in range(3):
        assert httpx.get(f"{live.url}/nothing/here/{n}").status_code == 404
        assert httpx.get(f"{live.url}/v1/images/{'A' * 21}{n}").status_code == 404
    after = scrape(live.url + "/metrics")
    unmatched = key("pixdrop_http_requests_total", route="<unmatched>", method="GET", status="404")
    image = key(
        "pixdrop_http_requests_total", route="/v1/images/{image_id}", method="GET", status="404"
    )
    assert (grown(before, after, unmatched), grown(before, after, image)) == (3, 3)
    assert not [k for k in after if any("nothing" in value for _, value in k[1])]


def test_with_a_metrics_port_the_main_port_has_none(server_factory: ServerFactory) -> None:
    live = server_factory(metrics_port=free_port())
    assert httpx.get(live.url + "/metrics").status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_two_workers_add_up_on_the_metrics_port(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    server = ServerProcess(
        tmp_path,
        tmp_path / "data",
        database_url,
        ["--workers", "2", "--metrics-port", str(port), "--no-access-log"],
    )
    try:
        server.wait_healthy(timeout=120)
        done = run_session(server.url)
        after = scrape(f"http://127.0.0.1:{port}/metrics")
        # A fresh server: every count is the session's (health checks aside).
        assert _mismatches({}, after, expected_growth(done)) == {}
        # The workers shared their metrics through files, one set per process.
        files = list((tmp_path / "data" / "tmp" / "metrics").glob("*.db"))
        assert len({f.stem.rpartition("_")[2] for f in files}) >= 2, files
        assert httpx.get(server.url + "/metrics").status_code == 404
        # Either worker, asked on the main port of a server without --metrics-port, would
        # answer the same sums: the supervisor's scrape read the same files.
    finally:
        server.stop()


def test_a_tus_method_override_is_labelled_by_its_route(server_factory: ServerFactory) -> None:
    live = server_factory()
    before = scrape(live.url + "/metrics")
    created = httpx.post(
        live.url + "/files", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"}
    )
    assert created.status_code == 201, created.text
    overridden = httpx.post(
        created.headers["location"],
        content=b"0123",
        headers={
            "Tus-Resumable": "1.0.0",
            "X-HTTP-Method-Override": "PATCH",
            "Upload-Offset": "0",
            "Content-Type": "application/offset+octet-stream",
        },
    )
    assert overridden.status_code == 204, overridden.text
    after = scrape(live.url + "/metrics")
    wanted = key(
        "pixdrop_http_requests_total", route="/files/{upload_id}", method="POST", status="204"
    )
    assert grown(before, after, wanted) == 1
    received = key("pixdrop_http_received_bytes_total", route="/files/{upload_id}")
    assert grown(before, after, received) == 4
