"""The client's pure parts: retry policy, models, state files, download sink, CLI parsing.

Retries are also driven through ``httpx.MockTransport`` (the injectable transport): scripted
answers, counted calls, no network.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import click
import httpx
import pytest

import pixdrop.client
from pixdrop.cli.common import format_size
from pixdrop.cli.transfer import expand_paths, parse_size
from pixdrop.client import (
    BadRequestError,
    Client,
    ConflictError,
    Image,
    IntegrityError,
    ResumeStore,
    RetryPolicy,
    ServerError,
    TokenStore,
    TransferError,
    UploadStatus,
)
from pixdrop.client.download import Sink
from pixdrop.client.retry import parse_retry_after
from pixdrop.client.source import Fingerprint, Source
from pixdrop.client.state import ResumeRecord
from tests.client.conftest import FAST_RETRY

UPLOAD = {
    "id": "U" * 22, "url": "http://x/v1/uploads/" + "U" * 22, "size": 10, "chunk_size": 4,
    "chunk_count": 3, "received": [1], "missing": [0, 2], "state": "receiving",
}  # fmt: skip


def test_exports_are_exact() -> None:
    assert set(pixdrop.client.__all__) == {
        name for name in dir(pixdrop.client) if not name.startswith("_") and name[0].isupper()
    } | {"default_state_dir"}
    for name in pixdrop.client.__all__:
        assert hasattr(pixdrop.client, name), name


def test_retry_delays_grow_with_jitter_and_honour_retry_after() -> None:
    policy = RetryPolicy(attempts=5, backoff=1.0, max_backoff=4.0, max_retry_after=30.0)
    rng = random.Random(7)
    for failures, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 4.0)]:
        delays = [policy.delay(failures, None, rng) for _ in range(200)]
        assert all(d is not None and 0 <= d <= ceiling for d in delays), (failures, delays)
        assert len(set(delays)) > 100  # jittered, not a fixed wait
    assert policy.delay(5, None, rng) is None  # out of attempts
    assert policy.delay(1, 10.0, rng) == 10.0  # Retry-After is a floor
    assert policy.delay(1, 999.0, rng) == 30.0  # ... within reason


def test_retry_after_parses_seconds_and_dates() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def scripted(answers: list[Callable[[], httpx.Response]]) -> tuple[Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answers[min(len(seen), len(answers)) - 1]()

    return Client(
        "http://pixdrop.test", transport=httpx.MockTransport(handle), retry=FAST_RETRY
    ), seen


def problem(status: int, slug: str, headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"type": f"/problems/{slug}", "title": slug, "status": status, "detail": slug}
    return httpx.Response(status, json=body, headers=headers)


def refused() -> httpx.Response:
    raise httpx.ConnectError("refused")


def test_transient_failures_are_retried_until_an_answer() -> None:
    client, seen = scripted([
        refused,
        lambda: problem(503, "unavailable"),
        lambda: problem(429, "slow-down", {"Retry-After": "0"}),
        lambda: problem(409, "chunk-busy", {"Retry-After": "0"}),
        lambda: httpx.Response(200, json=UPLOAD),
    ])  # fmt: skip
    status = client.status("U" * 22)
    assert len(seen) == 5
    assert status.missing == (0, 2)


@pytest.mark.parametrize(("status", "slug", "error"), [
    (400, "bad-request", BadRequestError), (409, "chunk-conflict", ConflictError),
])  # fmt: skip
def test_other_client_errors_are_final(status, slug, error) -> None:
    client, seen = scripted([lambda: problem(status, slug)])
    with pytest.raises(error) as raised:
        client.status("U" * 22)
    assert len(seen) == 1
    assert raised.value.slug == slug


def test_exhausted_retries_carry_the_last_error() -> None:
    client, seen = scripted([lambda: httpx.Response(502, text="<html>bad gateway</html>")])
    with pytest.raises(TransferError) as raised:
        client.get("I" * 22)
    assert len(seen) == FAST_RETRY.attempts
    last = raised.value.last_error
    assert isinstance(last, ServerError)
    assert last.status == 502
    assert "bad gateway" in last.detail  # a non-problem body is kept as text


def test_ids_cannot_escape_their_path_segment() -> None:
    client, seen = scripted([lambda: problem(404, "image-not-found")])
    with pytest.raises(pixdrop.client.NotFoundError):
        client.get("../uploads/x?y")
    assert seen[0].url.raw_path == b"/v1/images/..%2Fuploads%2Fx%3Fy"


def test_models_keep_unknown_fields() -> None:
    body = {
        "id": "I" * 22, "url": "u", "sha256": "s", "size": 3, "width": 2, "height": 1,
        "created_at": "2026-11-29T06:36:48+00:00", "placeholder": "abc", "format": "png",
    }  # fmt: skip
    image = Image.from_json(body)
    assert image.raw["placeholder"] == "abc"
    assert image.created_at == datetime(2026, 11, 29, 6, 36, 48, tzinfo=UTC)
    assert (image.filename, image.delete_token, image.content_type) == (None, None, None)
    status = UploadStatus.from_json({**UPLOAD, "new_field": 1})
    assert status.chunk_range(2) == (8, 10)
    assert status.raw["new_field"] == 1


def test_resume_records_round_trip_and_survive_garbage(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path)
    record = ResumeRecord("http://s", "U" * 22, "http://s/v1/uploads/x", Fingerprint(5, 7, "ab"))
    store.save("k", record)
    assert store.load("k") == record
    assert [p.name for p in (tmp_path / "uploads").iterdir()] == ["k.json"]  # no temp left
    assert stat.S_IMODE((tmp_path / "uploads" / "k.json").stat().st_mode) == 0o600
    (tmp_path / "uploads" / "k.json").write_text("{not json")
    assert store.load("k") is None
    assert not (tmp_path / "uploads" / "k.json").exists()


def test_resume_keys_follow_server_and_path(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    path.write_bytes(b"12345")
    with Source(path) as source:
        fp = source.fingerprint()
        assert fp.size == 5
        assert fp.mtime_ns == path.stat().st_mtime_ns
        key = ResumeStore.key("http://s", source, fp)
        assert key != ResumeStore.key("http://t", source, fp)
    with Source(b"12345") as data:
        assert data.fingerprint() == Fingerprint(5, None, fp.sha256)
        assert ResumeStore.key("http://s", data, data.fingerprint()) != key


def test_token_store_keeps_secrets_private(tmp_path: Path) -> None:
    tokens = TokenStore(tmp_path)
    tokens.save("http://s", "I" * 22, "secret")
    assert tokens.load("http://s", "I" * 22) == "secret"
    assert tokens.load("http://other", "I" * 22) is None
    (path,) = [p for p in (tmp_path / "tokens").rglob("*") if p.is_file()]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with pytest.raises(ValueError, match="not an image id"):
        tokens.save("http://s", "../../etc/passwd", "x")
    assert tokens.load("http://s", "../x") is None
    tokens.discard("http://s", "I" * 22)
    assert tokens.load("http://s", "I" * 22) is None


def test_sink_continues_a_cut_download_and_verifies_it(tmp_path: Path) -> None:
    data = b"0123456789" * 100
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    sink = Sink(tmp_path / "out.bin")
    sink.begin(200, etag)
    sink.write(data[:300])
    assert sink.request_headers() == {"Range": "bytes=300-", "If-Range": etag}
    sink.begin(200, etag)  # the server ignored the Range: the first 300 bytes come again
    sink.write(data[:500])
    sink.begin(206, etag)
    sink.write(data[500:])
    assert sink.finish() == len(data)
    assert (tmp_path / "out.bin").read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_sink_refuses_damaged_bytes_and_leaves_nothing(tmp_path: Path) -> None:
    sink = Sink(tmp_path / "out.bin")
    sink.begin(200, '"' + "0" * 64 + '"')
    sink.write(b"not those bytes")
    with pytest.raises(IntegrityError):
        sink.finish()
    sink.close()
    assert list(tmp_path.iterdir()) == []
    stream = io.BytesIO()
    plain = Sink(stream)
    plain.begin(200, None)  # no sha256 ETag: nothing to check against
    plain.write(b"abc")
    assert plain.finish() == 3
    assert stream.getvalue() == b"abc"


@pytest.mark.parametrize(("text", "size"), [
    ("16384", 16384), ("64KiB", 65536), ("8MiB", 8 << 20), ("8M", 8 << 20), ("8mb", 8_000_000),
    ("1GiB", 1 << 30), (" 2 k ", 2048),
])  # fmt: skip
def test_sizes_parse(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-5", "lots", "8XB", "1.5MiB"])
def test_bad_sizes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(text)


def test_paths_expand_from_files_directories_and_globs(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ("d/b.PNG", "d/a.jpg", "d/sub/c.webp", "d/notes.txt", "x.gif", "y.bin"):
        (tmp_path / name).write_bytes(b"x")
    found = expand_paths([str(tmp_path / "d"), str(tmp_path / "*.gif"), str(tmp_path / "y.bin")])
    names = [p.relative_to(tmp_path).as_posix() for p in found]
    assert names == ["d/a.jpg", "d/b.PNG", "d/sub/c.webp", "x.gif", "y.bin"]
    assert expand_paths([str(tmp_path / "x.gif")] * 2) == [tmp_path / "x.gif"]
    for missing in (tmp_path / "nope.png", tmp_path / "*.tiff"):
        with pytest.raises(click.UsageError):
            expand_paths([str(missing)])


def test_state_files_are_json(tmp_path: Path) -> None:
    store = ResumeStore(tmp_path)
    store.save("k", ResumeRecord("http://s", "U", "http://s/u", Fingerprint(1, None, "ab")))
    raw = json.loads((tmp_path / "uploads" / "k.json").read_text())
    assert raw["fingerprint"] == {"size": 1, "mtime_ns": None, "sha256": "ab"}


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (1536, "1.5 KiB"), (49289, "48.1 KiB"),
        (8 * 1024**2, "8 MiB"), (4 * 1024**3, "4 GiB"), (5 * 1024**5, "5 PiB"),
    ],
)  # fmt: skip
def test_sizes_are_printed_in_binary_units_that_parse_back(count: int, text: str) -> None:
    assert format_size(count) == text
    if count and float(text.split()[0]).is_integer() and not text.endswith("PiB"):
        assert parse_size(text.replace(" ", "")) == count  # what --chunk-size takes
