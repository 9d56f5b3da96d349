"""``pixdrop upload | status | get | rm`` as subprocesses: JSON lines, exit codes, kills.

The client runs as ``python -m pixdrop`` with its own state directory. The CLI does not care
which metadata backend the server uses (the library tests run on both), so these run on
SQLite only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from pixdrop.cli.common import format_size
from tests.client.conftest import (
    CHUNK,
    AccessLog,
    assert_sent_only,
    count,
    parse_access_lines,
    wait_quiet,
    write_png,
)
from tests.client.proxy import FaultProxy, Faults
from tests.e2e import ServerProcess, pixdrop_command, pixdrop_env
from tests.http.helpers import poll, wait_for_health


@pytest.fixture
def backend() -> str:
    return "sqlite"


def cli_env(state_dir: Path, server: str | None) -> dict[str, str]:
    extra = {"PIXDROP_CLIENT_STATE_DIR": str(state_dir)}
    if server:
        extra["PIXDROP_SERVER"] = server
    return pixdrop_env(**extra)


def run_cli(state_dir: Path, server: str | None, *args: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pixdrop_command(*map(str, args)),
        env=cli_env(state_dir, server),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def start_cli(state_dir: Path, server: str, *args: Any) -> subprocess.Popen[str]:
    """The command line, started as from a terminal: with SIGINT at its default even when
    this test run inherited it ignored (started in the background without job control). An
    ignored signal stays ignored across exec, and Python then sets up no KeyboardInterrupt;
    a handled one is reset to the default. So SIGINT is handled here while the child starts
    (this runs on the main thread, the only one that may set handlers)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(
            pixdrop_command(*map(str, args)),
            env=cli_env(state_dir, server),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
    finally:
        signal.signal(signal.SIGINT, previous)


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_upload_prints_one_json_object_per_image(chunk_server, tmp_path, photo_jpeg):
    state = tmp_path / "state"
    a = tmp_path / "a.png"
    data_a = write_png(a, 3 * CHUNK, seed=1)
    b = tmp_path / "b.jpg"
    b.write_bytes(photo_jpeg)
    bad = tmp_path / "bad.png"
    bad.write_text("not an image at all")

    mixed = run_cli(state, chunk_server.url, "upload", a, bad, b, "--json", "--chunk-size", "16KiB")
    assert mixed.returncode == 1, mixed.stderr
    lines = json_lines(mixed)
    assert [line["path"] for line in lines] == [str(a), str(bad), str(b)]
    # a.png went in chunks: its upload id is on its line, and was told as the upload began
    assert f"{a}: upload {lines[0]['upload_id']}" in mixed.stderr
    assert lines[0]["sha256"] == sha256(data_a)
    assert lines[2]["sha256"] == sha256(photo_jpeg)
    assert lines[2]["format"] == "jpeg"
    for line in (lines[0], lines[2]):
        assert line["delete_token"]
        assert line["url"].endswith(f"/v1/images/{line['id']}/original")
    assert lines[1]["error"]["status"] == 422
    assert lines[1]["error"]["type"].endswith("unprocessable-image")

    globbed = run_cli(state, chunk_server.url, "upload", tmp_path / "*.jpg", "--json")
    assert globbed.returncode == 0, globbed.stderr
    assert [line["sha256"] for line in json_lines(globbed)] == [sha256(photo_jpeg)]

    plain = run_cli(state, chunk_server.url, "upload", b)
    assert plain.returncode == 0, plain.stderr
    assert str(b) in plain.stdout
    assert "/original" in plain.stdout
    assert f"jpeg, {format_size(len(photo_jpeg))}, id " in plain.stdout
    chunked = run_cli(state, chunk_server.url, "upload", a, "--chunk-size", "16KiB", "--no-resume")
    (upload_id,) = re.findall(r"upload ([\w-]{22})\)$", chunked.stdout.strip())
    assert run_cli(state, chunk_server.url, "status", upload_id).returncode == 0


@pytest.mark.parametrize(
    ("args", "server"),
    [
        pytest.param(("upload", "missing.png"), True, id="no such file"),
        pytest.param(("upload", "*.none"), True, id="glob matches nothing"),
        pytest.param(("upload", "a.png", "--chunk-size", "lots"), True, id="bad size"),
        pytest.param(("upload", "a.png", "--parallel", "0"), True, id="bad parallel"),
        pytest.param(("rm", "I" * 22), True, id="rm without a token"),
        pytest.param(("frobnicate",), True, id="unknown command"),
    ],
)
def test_usage_errors_exit_2(tmp_path, args, server):
    (tmp_path / "a.png").write_bytes(b"x")
    with_cwd = [str(tmp_path / a) if a.endswith((".png", ".none")) else a for a in args]
    result = run_cli(tmp_path / "state", "http://127.0.0.1:9" if server else None, *with_cwd)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr


def test_status_get_and_rm(chunk_server, tmp_path):
    state, url = tmp_path / "state", chunk_server.url
    with httpx.Client(base_url=url) as http:
        created = http.post("/v1/uploads", json={"size": 3 * CHUNK + 5, "chunk_size": CHUNK})
        upload_id = created.json()["id"]
        assert http.put(f"/v1/uploads/{upload_id}/chunks/1", content=b"x" * CHUNK).is_success

    status = run_cli(state, url, "status", upload_id, "--json")
    assert status.returncode == 0, status.stderr
    assert json_lines(status)[0]["missing"] == [0, 2, 3]
    human = run_cli(state, url, "status", upload_id)
    assert "size      48 KiB, 4 chunks of 16 KiB" in human.stdout  # sizes in binary units
    assert "received  1 of 4 chunks" in human.stdout
    assert "missing   0, 2, 3 (32 KiB)" in human.stdout
    assert run_cli(state, url, "status", "A" * 22).returncode == 1

    path = tmp_path / "p.png"
    data = write_png(path, 2 * CHUNK)
    (image,) = json_lines(run_cli(state, url, "upload", path, "--json"))
    shown = run_cli(state, url, "get", image["id"], "--json")
    assert json_lines(shown)[0]["sha256"] == sha256(data)
    saved = run_cli(state, url, "get", image["id"], "-o", tmp_path / "copy.png")
    assert saved.returncode == 0, saved.stderr
    assert (tmp_path / "copy.png").read_bytes() == data

    assert run_cli(state, url, "rm", image["id"], "--token", "wrong").returncode == 1
    removed = run_cli(state, url, "rm", image["id"])  # the token kept by `upload`
    assert removed.returncode == 0, removed.stderr
    gone = run_cli(state, url, "get", image["id"])
    assert gone.returncode == 1
    assert "404" in gone.stderr
    again = run_cli(state, url, "rm", image["id"])  # its token was dropped: the server says 404
    assert (again.returncode, again.stdout) == (0, f"{image['id']} is already deleted\n")
    assert json_lines(run_cli(state, url, "rm", image["id"], "--json"))[0]["already"] is True
    other = run_cli(state, url, "rm", "B" * 22, "--token", "whatever")
    assert other.returncode == 1
    assert f"no such image: {'B' * 22}" in other.stderr
    elsewhere = run_cli(tmp_path / "other-machine", url, "rm", image["id"], "--token", "t")
    assert elsewhere.returncode == 1
    assert "no such image" in elsewhere.stderr  # this machine did not delete it


def test_help_texts_promise_resume_only_where_there_is_one(tmp_path):
    for command in ("get", "rm", "status", "ls", "uploads"):
        text = run_cli(tmp_path, None, command, "--help").stdout
        assert "resume" not in text.split("Exit codes")[1], (command, text)
        assert "http://127.0.0.1:8000" in text  # the default server
    assert "run the same command again to resume" in run_cli(tmp_path, None, "upload", "-h").stdout


def test_ls_lists_newest_first_by_pages(chunk_server, tmp_path):
    state, url = tmp_path / "state", chunk_server.url
    paths = [tmp_path / f"{n}.png" for n in "abc"]
    for seed, path in enumerate(paths):
        write_png(path, 3000, seed=seed)
    ids = [line["id"] for line in json_lines(run_cli(state, url, "upload", *paths, "--json"))]

    first = run_cli(state, url, "ls", "--limit", "2")
    assert first.returncode == 0, first.stderr
    assert [line.split()[0] for line in first.stdout.splitlines()] == ids[::-1][:2]
    assert "c.png" in first.stdout.splitlines()[0]
    assert re.search(r"\d+(\.\d)? KiB", first.stdout)
    (cursor,) = re.findall(r"pixdrop ls --limit 2 --cursor (\S+)", first.stderr)
    rest = run_cli(state, url, "ls", "--limit", "2", "--cursor", cursor)
    assert [line.split()[0] for line in rest.stdout.splitlines()] == ids[::-1][2:]
    assert "more" not in rest.stderr

    every = json_lines(run_cli(state, url, "ls", "--all", "--limit", "1", "--json"))
    assert [line["id"] for line in every] == ids[::-1]
    page = json_lines(run_cli(state, url, "ls", "--limit", "1", "--json"))
    assert page[0]["original_url"].endswith(f"/v1/images/{ids[-1]}/original")
    assert set(page[1]) == {"next_cursor"}


def remembered_upload(state: Path) -> str | None:
    records = list((state / "uploads").glob("*.json")) if (state / "uploads").exists() else []
    return json.loads(records[0].read_text())["upload_id"] if records else None


def interrupt_midway(state: Path, proxy: FaultProxy, path: Path, sig: signal.Signals):
    """Start ``pixdrop upload`` through the slow *proxy*; send *sig* once chunks are stored."""
    args = ("upload", path, "--chunk-size", "16KiB", "--parallel", "2", "--json")
    first = start_cli(state, proxy.url, *args)
    upload_id = poll(lambda: remembered_upload(state), bool, timeout=30)
    if not upload_id:
        first.kill()
        pytest.fail(f"no upload was remembered: {first.communicate()}")
    url = f"{proxy.url}/v1/uploads/{upload_id}"
    held = poll(lambda: httpx.get(url).json(), lambda s: len(s["received"]) >= 16, 30)
    assert len(held["received"]) >= 16, held
    first.send_signal(sig)
    out, err = first.communicate(timeout=30)
    return first.returncode, out, err, upload_id


def test_sigkill_mid_upload_then_resume_sends_only_missing_chunks(tmp_path, database_url):
    server = ServerProcess(tmp_path, tmp_path / "d", database_url, ["--min-chunk-size", "16KiB"])
    proxy = FaultProxy(server.port, Faults(delay=0.03))  # slow answers: time to kill it
    state, path = tmp_path / "state", tmp_path / "big.png"
    data = write_png(path, 128 * CHUNK)
    try:
        server.wait_healthy()
        code, out, _, upload_id = interrupt_midway(state, proxy, path, signal.SIGKILL)
        assert code == -signal.SIGKILL
        assert out == ""
        mark = wait_quiet(lambda: len(parse_access_lines(server.stderr())))
        missing = httpx.get(f"{server.url}/v1/uploads/{upload_id}").json()["missing"]
        assert 0 < len(missing) <= 128 - 16  # at least 16 chunks were stored before the kill

        proxy.faults = Faults()  # the second run at full speed, through the same address
        again = run_cli(state, proxy.url, "upload", path, "--chunk-size", "16KiB", "--json")
        assert again.returncode == 0, again.stderr
        (image,) = json_lines(again)
        hits = parse_access_lines(server.stderr())[mark:]
        assert_sent_only(hits, missing)
        assert count(hits, "POST", "/v1/uploads") == 0
        assert count(hits, "POST", f"/v1/uploads/{upload_id}/complete") == 1
        assert image["sha256"] == sha256(data)
        assert httpx.get(f"{server.url}/v1/images/{image['id']}/original").content == data
    finally:
        proxy.close()
        server.stop()


def test_ctrl_c_exits_130_and_leaves_the_upload_resumable(
    chunk_server, access_log: AccessLog, tmp_path
):
    port = int(chunk_server.url.rsplit(":", 1)[1])
    proxy = FaultProxy(port, Faults(delay=0.03))
    state, path = tmp_path / "state", tmp_path / "big.png"
    data = write_png(path, 64 * CHUNK)
    try:
        code, out, err, upload_id = interrupt_midway(state, proxy, path, signal.SIGINT)
        assert code == 130, err
        assert out == ""
        assert "interrupted" in err
        assert "Traceback" not in err
        assert f"{path}: upload {upload_id}" in err  # the id was told as the upload began
        mark = access_log.settle()
        missing = httpx.get(f"{chunk_server.url}/v1/uploads/{upload_id}").json()["missing"]
        assert missing

        # `pixdrop uploads` knows it, and what it misses (asked of the server)
        (known,) = json_lines(run_cli(state, proxy.url, "uploads", "--json"))
        assert (known["id"], known["path"], known["missing"]) == (upload_id, str(path), missing)
        listed = run_cli(state, proxy.url, "uploads")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.startswith(f"{upload_id}  {path}\n")
        assert f"in {len(missing)} of {known['chunk_count']} chunks" in listed.stdout
        elsewhere = run_cli(state, chunk_server.url, "uploads")  # same server, another address
        assert elsewhere.stdout == ""
        assert "and 1 to other servers" in elsewhere.stderr

        proxy.faults = Faults()
        again = run_cli(state, proxy.url, "upload", path, "--chunk-size", "16KiB", "--json")
        assert again.returncode == 0, again.stderr
        assert_sent_only(access_log.since(mark), missing)
        assert json_lines(again)[0]["sha256"] == sha256(data)
        assert run_cli(state, proxy.url, "uploads", "--json").stdout == ""  # finished: gone
    finally:
        proxy.close()


def test_an_outage_is_told_on_the_files_line_and_the_upload_carries_on(
    tmp_path, database_url, monkeypatch
):
    """The server stops mid-upload and comes back: each failed attempt is told with its wait,
    its number and its error, and the upload then completes without help."""
    args = ["--min-chunk-size", "16KiB"]
    server = ServerProcess(tmp_path, tmp_path / "d", database_url, args)
    proxy = FaultProxy(server.port, Faults(delay=0.03))  # slow answers: time to stop it
    state, path, errors = tmp_path / "state", tmp_path / "big.png", tmp_path / "cli.stderr"
    data = write_png(path, 96 * CHUNK)
    restarted: ServerProcess | None = None
    try:
        server.wait_healthy()
        with errors.open("w") as err:
            cli = subprocess.Popen(
                pixdrop_command("upload", str(path), "--chunk-size", "16KiB", "--json"),
                env=cli_env(state, proxy.url),
                stdout=subprocess.PIPE,
                stderr=err,
                stdin=subprocess.DEVNULL,
                text=True,
            )
        upload_id = poll(lambda: remembered_upload(state), bool, timeout=30)
        url = f"{server.url}/v1/uploads/{upload_id}"
        poll(lambda: httpx.get(url).json(), lambda s: len(s["received"]) >= 8, 30)
        server.stop()
        told = poll(errors.read_text, lambda text: "retrying in" in text, timeout=30)
        assert "retrying in" in told, told
        assert cli.poll() is None, "the upload gave up during the outage"

        monkeypatch.setattr("tests.e2e.free_port", lambda: server.port)  # the same address
        restarted = ServerProcess(tmp_path, tmp_path / "d", database_url, args)
        restarted.wait_healthy()
        out, _ = cli.communicate(timeout=120)
        text = errors.read_text()
        assert cli.returncode == 0, text
        notice = rf"pixdrop: {re.escape(str(path))}: .+: retrying in [0-9.]+ s \(attempt \d+\): \S"
        assert re.search(notice, text), text
        (image,) = json_lines(subprocess.CompletedProcess([], 0, out, ""))
        assert image["upload_id"] == upload_id  # the same upload, carried on
        assert httpx.get(f"{restarted.url}/v1/images/{image['id']}/original").content == data
        assert proxy.refused >= 1
    finally:
        proxy.close()
        server.stop()
        if restarted is not None:
            restarted.stop()


def test_without_server_the_commands_find_pixdrop_serve_at_its_default_address(tmp_path):
    """Neither --server nor PIXDROP_SERVER: the client commands use http://127.0.0.1:8000,
    where `pixdrop serve` listens when not told otherwise."""
    try:
        socket.create_server(("127.0.0.1", 8000)).close()
    except OSError:
        pytest.skip("port 8000 is taken on this machine")
    log = tmp_path / "serve.stderr"
    with log.open("wb") as err:
        serve = subprocess.Popen(
            pixdrop_command("serve", "--data-dir", str(tmp_path / "d")),
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
            env=pixdrop_env(),
            start_new_session=True,
        )
    try:
        wait_for_health("http://127.0.0.1:8000", 30, alive=lambda: serve.poll() is None)
        path = tmp_path / "a.png"
        data = write_png(path, 2000)
        sent = run_cli(tmp_path / "state", None, "upload", path, "--json")
        assert sent.returncode == 0, sent.stderr
        (image,) = json_lines(sent)
        assert image["original_url"].startswith("http://127.0.0.1:8000/")
        assert image["sha256"] == sha256(data)
        listed = run_cli(tmp_path / "state", None, "ls", "--limit", "1")
        assert listed.stdout.startswith(image["id"]), (listed.stdout, listed.stderr)
    finally:
        os.killpg(serve.pid, signal.SIGTERM)
        serve.wait(timeout=15)


def test_on_a_terminal_the_retry_is_told_on_the_files_progress_line(chunk_server, tmp_path):
    """stderr on a pseudo-terminal: rich draws the bars, and a retry shows on the file's bar."""
    port = int(chunk_server.url.rsplit(":", 1)[1])
    proxy = FaultProxy(port, Faults(cut_upload_after=20_000, max_cuts=3, delay=0.02))
    path = tmp_path / "big.png"
    write_png(path, 24 * CHUNK)
    leader, follower = os.openpty()
    env = {**cli_env(tmp_path / "state", proxy.url), "TERM": "xterm", "COLUMNS": "240"}
    try:
        cli = subprocess.Popen(
            pixdrop_command("upload", str(path), "--chunk-size", "16KiB", "--parallel", "2"),
            env=env,
            stdout=subprocess.PIPE,
            stderr=follower,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        os.close(follower)
        drawn = bytearray()
        while True:
            try:
                block = os.read(leader, 65536)
            except OSError:  # the terminal's other end closed: the CLI is done
                break
            if not block:
                break
            drawn += block
        out, _ = cli.communicate(timeout=60)
    finally:
        os.close(leader)
        proxy.close()
    screen = drawn.decode(errors="replace")
    assert cli.returncode == 0, screen[-3000:]
    assert proxy.cuts >= 1
    assert "\x1b[" in screen  # drawn by rich, not printed line by line
    assert f"{path}: PUT" not in screen  # the notice is on the bar, not a line of its own
    notice = r"big\.png (\x1b\[[0-9;]*m)*retrying in [0-9.]+ s \(attempt \d+\): "
    assert re.search(notice, screen), screen[-3000:]
    assert "/original" in out
