"""tus-js-client (the tus project's JavaScript client, its Node build) against a live pixdrop.

Each case runs ``node js/upload.mjs '<options as JSON>'``: one upload, reported as one line
of JSON (status, upload URL, chunks acknowledged, every request with its status and headers).
tus-js-client comes from npm, pinned by js/package-lock.json; ``npm ci`` runs once per session
when js/node_modules is missing or stale. Without node and npm the module is skipped (a
failure when CI=true), like PostgreSQL in tests/conftest.py.
"""

from __future__ import annotations

import fcntl
import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from tests.conftest import IN_CI, LiveServer
from tests.interop.relay import Relay
from tests.interop.support import CHUNK, TUS, assert_stored, head_offset

JS = Path(__file__).parent / "js"
FILENAME = "rocket-big.png"
METADATA = {"filename": FILENAME, "filetype": "image/png"}
NODE_RUN_TIMEOUT = 60


def _unavailable(message: str) -> NoReturn:
    if IN_CI:
        pytest.fail(message + " (required when CI=true)")
    pytest.skip(message)


def _installed_matches_lock() -> bool:
    lock = json.loads((JS / "package-lock.json").read_text())
    wanted = lock["packages"]["node_modules/tus-js-client"]["version"]
    installed = JS / "node_modules" / "tus-js-client" / "package.json"
    return installed.is_file() and json.loads(installed.read_text())["version"] == wanted


@pytest.fixture(scope="session")
def node() -> str:
    """The node executable, with tus-js-client installed in js/node_modules."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("node and npm are needed for the tus-js-client tests")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    match = re.match(r"v(\d+)\.", version.stdout)
    if not match or int(match[1]) < 18:
        _unavailable(f"tus-js-client needs Node.js 18 or newer, found {version.stdout.strip()!r}")
    # One installer at a time (pytest-xdist workers, two checkouts' sessions...).
    with (JS / "package-lock.json").open("rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not _installed_matches_lock():
                done = subprocess.run(
                    [npm, "ci", "--no-audit", "--no-fund"],
                    cwd=JS,
                    capture_output=True,
                    text=True,
                    timeout=300,
                    check=False,
                )
                if done.returncode != 0:
                    _unavailable(f"npm ci failed in {JS}: {done.stderr.strip()[-2000:]}")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return node


def run_upload(node: str, **options: Any) -> dict[str, Any]:
    """Run js/upload.mjs with *options*; return its report (see the script's header)."""
    try:
        done = subprocess.run(
            [node, str(JS / "upload.mjs"), json.dumps(options)],
            cwd=JS,
            capture_output=True,
            text=True,
            timeout=NODE_RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"upload.mjs did not finish in {NODE_RUN_TIMEOUT}s: {exc.stderr!r}")
    assert done.returncode == 0, (done.returncode, done.stderr)
    lines = done.stdout.strip().splitlines()
    assert lines, ("upload.mjs printed nothing", done.stderr)
    report: dict[str, Any] = json.loads(lines[-1])
    return report


def succeeded(report: dict[str, Any]) -> dict[str, Any]:
    """*report* is a success; on failure show the error and the requests that led to it."""
    assert report["status"] == "success", json.dumps(report, indent=1)[:8000]
    return report


def requests_of(report: dict[str, Any], method: str) -> list[dict[str, Any]]:
    """The requests of one kind (a PATCH sent as POST + X-HTTP-Method-Override counts)."""
    return [
        r
        for r in report["requests"]
        if (r["headers"].get("X-HTTP-Method-Override") or r["method"]) == method
    ]


def creations(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in requests_of(report, "POST") if "X-HTTP-Method-Override" not in r["headers"]]


# --- (a) one upload, in chunks ----------------------------------------------------------


CASES = {
    "chunks": {},
    "method-override": {"overridePatchMethod": True},
    "data-during-creation": {"uploadDataDuringCreation": True},
    "deferred-length-stream": {"uploadLengthDeferred": True, "source": "stream"},
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_upload_in_chunks(
    node: str, server: LiveServer, big_image: Path, case: dict[str, Any]
) -> None:
    data = big_image.read_bytes()
    chunks = math.ceil(len(data) / CHUNK)
    assert chunks > 8

    report = succeeded(
        run_upload(
            node,
            endpoint=f"{server.url}/files/",
            file=str(big_image),
            chunkSize=CHUNK,
            metadata=METADATA,
            **case,
        )
    )

    url = report["uploadUrl"]
    assert url.startswith(f"{server.url}/files/")
    (create,) = creations(report)
    assert create["status"] == 201
    patches = requests_of(report, "PATCH")
    assert all(p["status"] == 204 for p in patches), patches
    sent_as = {p["method"] for p in patches}
    assert sent_as == ({"POST"} if case.get("overridePatchMethod") else {"PATCH"})
    if case.get("uploadDataDuringCreation"):
        assert create["headers"].get("Content-Type") == "application/offset+octet-stream"
        assert create["responseHeaders"]["upload-offset"] == str(CHUNK)
        assert len(patches) == chunks - 1
    elif case.get("uploadLengthDeferred"):
        assert create["headers"].get("Upload-Defer-Length") == "1"
        # The length is told once, by the PATCH that finds the end of the stream (which may be
        # an empty one after the last chunk, as a stream's end is only seen by reading on).
        told = [p for p in patches if "Upload-Length" in p["headers"]]
        assert [p["headers"]["Upload-Length"] for p in told] == [str(len(data))]
        assert told[0] is patches[-1]
        assert len(patches) in (chunks, chunks + 1)
    else:
        assert create["headers"].get("Upload-Length") == str(len(data))
        assert len(patches) == chunks
    assert [c[1] for c in report["chunks"]][-1] == len(data)
    # The response that brought the last byte names the image.
    assert report["lastResponse"]["status"] == 204
    assert "pixdrop-image" in report["lastResponse"]["headers"], report["lastResponse"]
    assert_stored(url, data, filename=FILENAME)


# --- (a') the same client speaking the IETF resumable-upload draft -------------------------


@pytest.mark.parametrize("protocol", ["ietf-draft-03", "ietf-draft-05"])
def test_upload_with_the_ietf_draft(
    node: str, server: LiveServer, big_image: Path, protocol: str
) -> None:
    data = big_image.read_bytes()
    report = succeeded(
        run_upload(
            node,
            endpoint=f"{server.url}/files/",
            file=str(big_image),
            chunkSize=CHUNK,
            metadata=METADATA,
            protocol=protocol,
        )
    )
    url = report["uploadUrl"]
    assert url.startswith(f"{server.url}/files/")
    sent = report["requests"]
    # Every request spoke the draft (interop version 5 or 6), none tus.
    assert all("Upload-Draft-Interop-Version" in r["headers"] for r in sent), sent
    assert not any("Tus-Resumable" in r["headers"] for r in sent), sent
    assert len(requests_of(report, "PATCH")) == math.ceil(len(data) / CHUNK)
    assert "pixdrop-image" in report["lastResponse"]["headers"], report["lastResponse"]
    assert_stored(url, data, filename=FILENAME)


# --- (b) parallel uploads: partial uploads joined by a final one --------------------------


def test_parallel_uploads_are_concatenated(node: str, server: LiveServer, big_image: Path) -> None:
    data = big_image.read_bytes()

    report = succeeded(
        run_upload(
            node,
            endpoint=f"{server.url}/files/",
            file=str(big_image),
            chunkSize=CHUNK,
            parallelUploads=3,
            metadata=METADATA,
        )
    )

    posts = creations(report)
    partials = [p for p in posts if p["headers"].get("Upload-Concat") == "partial"]
    finals = [p for p in posts if p["headers"].get("Upload-Concat", "").startswith("final;")]
    assert len(partials) == 3, posts
    assert len(finals) == 1, posts
    assert all(p["status"] == 201 for p in posts), posts
    partial_urls = [p["responseHeaders"]["location"] for p in partials]
    (final,) = finals
    # The final names the partials (in the file's order: the bytes compared below tell).
    named = final["headers"]["Upload-Concat"].removeprefix("final;").split()
    assert sorted(named) == sorted(partial_urls)
    assert "Upload-Length" not in final["headers"]

    lengths = [int(p["headers"]["Upload-Length"]) for p in partials]
    assert sum(lengths) == len(data)
    assert min(lengths) > CHUNK  # so each partial took several PATCHes
    # A partial is never an image of its own; the server may free it once it is concatenated
    # (tus allows that), else it is a complete partial upload.
    with httpx.Client(timeout=30) as http:
        for partial_url in named:
            head = http.head(partial_url, headers=TUS)
            assert head.status_code in (200, 404, 410), (partial_url, head.status_code)
            assert "Pixdrop-Image" not in head.headers, dict(head.headers)
            if head.status_code == 200:
                assert head.headers.get("Upload-Concat") == "partial", dict(head.headers)
                assert head.headers["Upload-Offset"] == head.headers["Upload-Length"]

    # Every partial was complete when the final was created: the POST stored the image.
    assert final["status"] == 201
    assert "pixdrop-image" in final["responseHeaders"], final
    url = report["uploadUrl"]
    assert url == final["responseHeaders"]["location"]
    with httpx.Client(timeout=30) as http:
        head = http.head(url, headers=TUS)
    assert head.headers.get("Upload-Concat", "").startswith("final;"), dict(head.headers)
    assert_stored(url, data, filename=FILENAME)


# --- (c) resume after an interruption ------------------------------------------------------


def test_resume_after_abort(node: str, relay: Relay, big_image: Path, tmp_path: Path) -> None:
    """Three chunks, then ``upload.abort()`` and the process ends; a second process finds the
    upload in tus-js-client's FileUrlStorage, asks for the offset and sends only the rest."""
    data = big_image.read_bytes()
    options = {
        "endpoint": f"{relay.url}/files/",
        "file": str(big_image),
        "chunkSize": CHUNK,
        "metadata": METADATA,
        "urlStorage": str(tmp_path / "tus-urls.json"),
    }

    first = run_upload(node, **options, abortAfterChunks=3)
    assert first["status"] == "aborted", first
    url = first["uploadUrl"]
    assert first["bytesAccepted"] == 3 * CHUNK
    assert head_offset(url) == 3 * CHUNK

    relay.reset()
    second = succeeded(run_upload(node, **options, resume=True))
    assert second["previousUploads"] == 1
    assert second["uploadUrl"] == url
    assert not creations(second)
    heads = requests_of(second, "HEAD")
    assert heads
    assert heads[0]["responseHeaders"]["upload-offset"] == str(3 * CHUNK)
    patches = requests_of(second, "PATCH")
    assert patches[0]["headers"]["Upload-Offset"] == str(3 * CHUNK)
    assert second["bytesAccepted"] == len(data) - 3 * CHUNK
    assert len(data) - 3 * CHUNK <= relay.sent < len(data)
    assert "pixdrop-image" in second["lastResponse"]["headers"]
    assert_stored(url, data, filename=FILENAME)


def test_retry_after_a_cut_connection(node: str, relay: Relay, big_image: Path) -> None:
    """The connection drops in the middle of a PATCH; tus-js-client retries on its own: HEAD,
    then PATCHes from the server's offset (not from zero)."""
    data = big_image.read_bytes()
    relay.cut_after(len(data) * 45 // 100 + 1000)  # in the middle of the fifth chunk

    report = succeeded(
        run_upload(
            node,
            endpoint=f"{relay.url}/files/",
            file=str(big_image),
            chunkSize=CHUNK,
            metadata=METADATA,
            retryDelays=[0, 200, 1000, 2000],
        )
    )

    assert relay.cuts == 1
    broken = [r for r in report["requests"] if r["status"] is None]
    assert [r["method"] for r in broken] == ["PATCH"], report["requests"]
    acknowledged = int(broken[0]["headers"]["Upload-Offset"])
    assert acknowledged > 0
    # The retry: HEAD (the server's offset), then PATCHes from there.
    heads = requests_of(report, "HEAD")
    assert heads
    assert all(h["status"] == 200 for h in heads), heads
    after_head = report["requests"][report["requests"].index(heads[0]) + 1]
    assert after_head["method"] == "PATCH"
    assert int(after_head["headers"]["Upload-Offset"]) >= acknowledged
    # Sent again: at most the chunk that was cut, not the file from its start.
    assert relay.sent < len(data) + CHUNK + 64 * 1024
    assert_stored(report["uploadUrl"], data, filename=FILENAME)


def test_parallel_upload_resumed(node: str, relay: Relay, big_image: Path, tmp_path: Path) -> None:
    """Three partial uploads, aborted (mid-PATCH for some) after four chunks in all; a second
    process resumes every partial from its offset, then creates the final upload."""
    data = big_image.read_bytes()
    options = {
        "endpoint": f"{relay.url}/files/",
        "file": str(big_image),
        "chunkSize": CHUNK,
        "parallelUploads": 3,
        "metadata": METADATA,
        "urlStorage": str(tmp_path / "tus-urls.json"),
    }

    first = run_upload(node, **options, abortAfterChunks=4)
    assert first["status"] == "aborted", first
    assert not [p for p in creations(first) if p["headers"].get("Upload-Concat") != "partial"]
    partial_urls = [p["responseHeaders"]["location"] for p in creations(first)]
    assert len(partial_urls) == 3
    assert sum(head_offset(u) for u in partial_urls) >= 4 * CHUNK

    relay.reset()
    second = succeeded(run_upload(node, **options, resume=True))
    assert second["previousUploads"] == 1
    posts = creations(second)
    assert [p["headers"].get("Upload-Concat", "")[:6] for p in posts] == ["final;"]
    assert sorted(posts[0]["headers"]["Upload-Concat"][6:].split()) == sorted(partial_urls)
    heads = requests_of(second, "HEAD")
    assert sorted(h["url"] for h in heads) == sorted(partial_urls)
    assert 0 < second["bytesAccepted"] <= len(data) - 4 * CHUNK
    assert relay.sent < len(data)
    assert "pixdrop-image" in second["lastResponse"]["headers"]
    assert_stored(second["uploadUrl"], data, filename=FILENAME)
