"""README.md's shell blocks, run as written against a real ``pixdrop serve``.

Every fenced block of README.md that opens with ```` ```sh ```` runs, in the order of the file,
in one bash session (``set -euo pipefail``), so a block may use the variables and functions an
earlier block set, exactly as a reader pasting them into one shell would. A block that is not
meant to run (``scripts/serve`` itself, a flag shown as an example) is marked by the line
``<!-- not run -->`` right before its opening fence; GitHub does not render the comment.

The blocks run from the repository's root (the tour reads ``samples/``) with the live server's
URL put in place of ``http://127.0.0.1:8000``. Besides bash and curl they use ``python3``,
``sha256sum`` and ``openssl``, as README says.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e import ServerProcess, pixdrop_env

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
README_URL = "http://127.0.0.1:8000"
NOT_RUN = "<!-- not run -->"
IN_CI = os.environ.get("CI", "").lower() == "true"
#: Variables that would send curl elsewhere than the local server.
PROXY_VARIABLES = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}


@dataclass(frozen=True)
class Block:
    line: int  # of the opening fence, 1-based
    source: str


def shell_blocks(text: str) -> tuple[list[Block], list[Block]]:
    """README's ```sh blocks: (those to run, those marked not to run), in file order."""
    run: list[Block] = []
    skipped: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```sh":
            start = i
            body: list[str] = []
            i += 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            assert i < len(lines), f"README.md:{start + 1}: the ```sh block is not closed"
            marked = start > 0 and lines[start - 1].strip() == NOT_RUN
            (skipped if marked else run).append(Block(start + 1, "\n".join(body)))
        i += 1
    return run, skipped


def marker(number: int) -> str:
    return f"@@readme-block-{number}-done@@"


def script(blocks: list[Block], url: str) -> str:
    parts = ["set -euo pipefail", f"cd '{ROOT}'"]
    for number, block in enumerate(blocks):
        parts.append(f"# README.md line {block.line}")
        parts.append(block.source.replace(README_URL, url))
        parts.append(f"printf '\\n%s\\n' '{marker(number)}'")
    return "\n".join(parts) + "\n"


def tools_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in pixdrop_env().items() if k.lower() not in PROXY_VARIABLES}
    env["CURL_HOME"] = str(tmp_path)  # no ~/.curlrc
    if shutil.which("python3", path=env.get("PATH")) is None:
        env["PATH"] = os.pathsep.join([env.get("PATH", ""), str(Path(sys.executable).parent)])
    missing = [
        tool
        for tool in ("bash", "curl", "python3", "sha256sum", "openssl")
        if shutil.which(tool, path=env["PATH"]) is None
    ]
    if missing:
        message = f"README's tour needs {', '.join(missing)}"
        if IN_CI:
            pytest.fail(message + " (required when CI=true)")
        pytest.skip(message)
    return env


def run_bash(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """bash *path* from the repository's root, in a process group of its own that is killed
    afterwards, so that nothing a block started outlives the test."""
    with subprocess.Popen(
        ["bash", str(path)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, _ = process.communicate(timeout=100)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, _ = process.communicate()
            pytest.fail(f"README's blocks did not finish within 100 s:\n{stdout[-3000:]}")
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, "")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path, tmp_path / "data", f"sqlite:///{tmp_path / 'pixdrop.db'}")
    try:
        process.wait_healthy()
        yield process
    finally:
        process.stop()


def sha256_of(path: str) -> str:
    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()


def json_lines(output: str) -> list[dict[str, Any]]:
    found = []
    for line in output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def commands(block: Block) -> str:
    """The block without its comments (the expected outputs shown after ``#``)."""
    return "\n".join(line.split("#")[0] for line in block.source.splitlines())


def check_blocks(run: list[Block], skipped: list[Block]) -> None:
    assert len(run) >= 6, "the tour's blocks were not found in README.md"
    assert any("scripts/serve" in block.source for block in skipped)
    for block in run:
        # A block that starts a server or installs would outlive the test: mark it not run.
        assert "scripts/" not in commands(block), f"README.md:{block.line}: mark it {NOT_RUN}"
        # No placeholder ids left over from hand-written examples.
        assert "..." not in commands(block), f"README.md:{block.line} has a placeholder"


def test_readme_marks_blocks() -> None:
    check_blocks(*shell_blocks(README.read_text()))


def test_readme_tour_runs_as_written(server: ServerProcess, tmp_path: Path) -> None:
    blocks, skipped = shell_blocks(README.read_text())
    check_blocks(blocks, skipped)
    env = tools_env(tmp_path)
    before = sorted(os.listdir(ROOT))
    path = tmp_path / "tour.sh"
    path.write_text(script(blocks, server.url))
    result = run_bash(path, env)
    outputs: list[str] = []
    rest = result.stdout
    for number, block in enumerate(blocks):
        head, sep, rest = rest.partition(marker(number))
        if not sep:
            pytest.fail(
                f"README.md's block at line {block.line} failed (bash exit {result.returncode})"
                f"\n--- block ---\n{block.source}\n--- output ---\n{head[-4000:]}"
                f"\n--- server stderr ---\n{server.stderr()[-3000:]}"
            )
        outputs.append(head)
    assert result.returncode == 0, result.stdout[-3000:]
    assert sorted(os.listdir(ROOT)) == before, "the tour left files in the repository"

    def output_of(command: str) -> str:
        """The output of the (first) block whose commands contain *command*."""
        for block, output in zip(blocks, outputs, strict=True):
            if command in block.source:
                return output
        raise AssertionError(f"no README block runs {command!r}")

    rocket, chelsea = sha256_of("samples/rocket.jpg"), sha256_of("samples/chelsea.png")

    # One request, raw body and multipart: image objects with their delete tokens.
    images = json_lines(output_of("/v1/images?filename="))
    assert [(i["sha256"], i["filename"]) for i in images] == [
        (rocket, "rocket.jpg"),
        (chelsea, "chelsea.png"),
    ]
    assert all(i["id"] and i["delete_token"] for i in images)

    # Chunked: created with several chunks, every chunk but 2 stored with its digest checked.
    sent = json_lines(output_of("send_chunk()"))
    created = sent[0]
    assert created["chunk_count"] == 4, created
    assert created["missing"] == [0, 1, 2, 3], created
    assert [receipt["index"] for receipt in sent[1:]] == [0, 1, 3]

    # Completing too early is a 409 naming chunk 2; after sending it, complete answers 201.
    finish = output_of("/complete")
    problems = [p for p in json_lines(finish) if "type" in p]
    assert problems, finish
    assert problems[0]["status"] == 409
    assert problems[0]["missing"] == [2]
    assert "missing: 2\n" in finish
    assert re.search(r"^HTTP/1\.1 201 Created\r?$", finish, re.M), finish
    image = json_lines(finish)[-1]
    assert image["sha256"] == chelsea
    assert image["size"] == 240512
    assert image["delete_token"]
    assert httpx.get(f"{server.url}/v1/images/{image['id']}").json()["sha256"] == chelsea

    # tus: 50000 bytes, HEAD says 50000, the rest from there stores the image.
    tus = output_of("Tus-Resumable")
    assert re.search(r"^upload-offset: 50000\r?$", tus, re.M | re.I), tus
    assert "offset: 50000\n" in tus
    stored = re.search(r'^pixdrop-image: id="([^"]+)"', tus, re.M | re.I)
    assert stored, tus
    tus_image = httpx.get(f"{server.url}/v1/images/{stored.group(1)}").json()
    assert tus_image["sha256"] == rocket
    assert tus_image["filename"] == "rocket.jpg"

    # Serving: HEAD with the strong ETag, a 100-byte range, DELETE, then 404.
    serving = output_of("Range: bytes=0-99")
    assert re.search(rf'^etag: "{rocket}"\r?$', serving, re.M | re.I), serving
    assert re.search(r"^\s*100$", serving, re.M), serving
    assert re.search(r"^HTTP/1\.1 204 No Content\r?$", serving, re.M), serving
    assert '"status":404' in serving
    assert httpx.get(f"{server.url}/v1/images/{images[0]['id']}").status_code == 404
