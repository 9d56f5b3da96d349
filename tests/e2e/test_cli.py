"""``python -m pixdrop serve``: help, refusal of bad settings, workers, access log."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.e2e import ServerProcess, pixdrop_command, pixdrop_env
from tests.http.helpers import free_port, poll, post_image, tiny_image

#: The ``pixdrop`` console script installed next to this Python (``[project.scripts]``).
SCRIPT = Path(sys.executable).parent / "pixdrop"


def run_pixdrop(
    *args: str, env: dict[str, str] | None = None, script: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion; a server that starts when it should refuse times out here."""
    return subprocess.run(
        [str(SCRIPT), *args] if script else pixdrop_command(*args),
        capture_output=True,
        text=True,
        timeout=30,
        env=pixdrop_env(**(env or {})),
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.fixture
def spawn(tmp_path: Path, database_url: str) -> Iterator:
    started: list[ServerProcess] = []

    def start(*extra_args: str) -> ServerProcess:
        server = ServerProcess(tmp_path, tmp_path / "d", database_url, extra_args)
        started.append(server)
        server.wait_healthy()
        return server

    yield start
    for server in started:
        server.stop()


def test_serve_help() -> None:
    result = run_pixdrop("serve", "--help")
    assert result.returncode == 0, result.stderr
    for option in ("--data-dir", "--database-url", "--workers", "--max-image-size"):
        assert option in result.stdout, option


@dataclass(frozen=True)
class BadConfig:
    """A ``serve`` run that must stop at once with a readable message naming ``needles``."""

    name: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    needles: tuple[str, ...] = ()
    script: bool = False  # run the ``pixdrop`` console script instead of ``python -m pixdrop``


BAD_CONFIGS = [
    BadConfig("port not a number", ("--port", "notanumber"), needles=("port",)),
    BadConfig(
        "port not a number (script)", ("--port", "notanumber"), needles=("port",), script=True
    ),
    BadConfig("port out of range", ("--port", "70000"), needles=("port",)),
    BadConfig(
        "negative max chunk size (env)",
        env={"PIXDROP_MAX_CHUNK_SIZE": "-5"},
        needles=("max_chunk_size",),
    ),
    BadConfig("unknown variable", env={"PIXDROP_BOGUS": "1"}, needles=("pixdrop_bogus",)),
    BadConfig("workers zero", ("--workers", "0"), needles=("workers",)),
    BadConfig("max image size nonsense", ("--max-image-size", "lots"), needles=("max_image_size",)),
]


def test_bad_settings_are_refused(tmp_path: Path, subtests) -> None:
    for case in BAD_CONFIGS:
        with subtests.test(case.name):
            port = () if "--port" in case.args else ("--port", str(free_port()))
            args = ("serve", *port, "--data-dir", str(tmp_path / "d"), *case.args)
            result = run_pixdrop(*args, env=case.env, script=case.script)
            assert result.returncode != 0, result.stderr
            assert "Traceback" not in result.stderr, result.stderr
            normalized = result.stderr.lower().replace("-", "_")
            for needle in case.needles:
                assert needle in normalized, result.stderr


def test_two_workers_serve_uploads(spawn) -> None:
    server = spawn("--workers", "2")
    data = tiny_image("PNG", 6, 4)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        images = [post_image(client, data) for _ in range(4)]
        for image in images:
            # every worker must see every image (the state is in the shared stores)
            for _ in range(3):
                with httpx.Client(base_url=server.url, timeout=10) as fresh:
                    served = fresh.get(f"/v1/images/{image['id']}/original")
                assert served.status_code == 200
                assert served.content == data


def log_lines(server: ServerProcess, method: str, path: str, status: int) -> list[str]:
    """Lines of the server's stderr naming *method*, exactly *path* and *status*."""
    path_re = re.compile(r"(?<![\w/])" + re.escape(path) + r"(?=[\s\"?]|$)")
    status_re = re.compile(rf"(?<!\d){status}(?!\d)")
    return [
        line
        for line in server.stderr().splitlines()
        if re.search(rf"\b{method}\b", line) and path_re.search(line) and status_re.search(line)
    ]


def test_one_access_log_line_per_request(spawn) -> None:
    server = spawn()
    data = tiny_image("PNG", 3, 3)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        image = post_image(client, data)
        assert client.get(f"/v1/images/{image['id']}").status_code == 200
        assert client.get("/v1/nothing-here").status_code == 404

    expected = [
        ("POST", "/v1/images", 201),
        ("GET", f"/v1/images/{image['id']}", 200),
        ("GET", "/v1/nothing-here", 404),
    ]
    for method, path, status in expected:
        lines = poll(lambda m=method, p=path, s=status: log_lines(server, m, p, s), bool, 3.0)
        assert len(lines) == 1, (method, path, status, server.stderr()[-2000:])


def test_a_busy_port_is_one_line_and_exit_1_before_any_announcement(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run_pixdrop("serve", "--port", str(port), "--data-dir", str(tmp_path / "d"))
    assert result.returncode == 1, result.stderr
    assert "serving on" not in result.stderr
    assert "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in result.stderr
    assert len([line for line in result.stderr.splitlines() if "pixdrop:" in line]) == 1


def test_serving_is_announced_once_the_port_is_bound(spawn) -> None:
    server = spawn()
    announced = [line for line in server.stderr().splitlines() if "serving on" in line]
    assert announced == [line for line in announced if server.url in line], announced
    assert len(announced) == 1


def test_the_scripts_pixdrop_wrapper_runs_the_cli_from_where_it_is_called(
    spawn, tmp_path: Path
) -> None:
    """``scripts/pixdrop`` (README, "The command line") runs the installed ``pixdrop`` with the
    caller's working directory, so relative paths work. Its venv is this test run's own
    (installed: the stamp is there, so nothing is installed again)."""
    server = spawn()
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(sys.executable)
    (venv / "bin" / "pixdrop").symlink_to(Path(sys.executable).with_name("pixdrop"))
    (venv / ".pixdrop-installed-serve").touch()
    work = tmp_path / "work"
    work.mkdir()
    (work / "a.png").write_bytes(tiny_image(seed=7))
    wrapper = Path(__file__).resolve().parents[2] / "scripts" / "pixdrop"
    done = subprocess.run(
        [str(wrapper), "upload", "a.png", "--server", server.url, "--json"],
        cwd=work,
        env=pixdrop_env(VENV_DIR=str(venv)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert '"id"' in done.stdout
    assert "installing" not in done.stderr  # the stamp said it was installed
