"""The client commands against a ``--auth keys`` server: ``--api-key`` or ``PIXDROP_API_KEY``
(which the server's settings loader must not refuse as an unknown setting)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pixdrop.client import Client
from pixdrop.config import load_settings
from tests.auth.conftest import Keys
from tests.e2e import pixdrop_command, pixdrop_env
from tests.http.helpers import tiny_image


@pytest.fixture
def backend() -> str:
    return "sqlite"


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = pixdrop_env(PIXDROP_CLIENT_STATE_DIR=str(tmp_path / "state"), **env)
    return subprocess.run(
        pixdrop_command(*args), env=environment, capture_output=True, text=True,
        timeout=120, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip


def test_cli_sends_the_key_from_the_flag_or_the_environment(keys: Keys, tmp_path: Path) -> None:
    secret = keys.make("upload", "read", "delete")
    photo = tmp_path / "dot.png"
    photo.write_bytes(tiny_image())
    server = keys.server.url
    refused = run(tmp_path, "upload", str(photo), "--server", server)
    assert refused.returncode == 1
    assert "API key" in refused.stdout + refused.stderr
    sent = run(tmp_path, "upload", str(photo), "--server", server, "--api-key", secret, "--json")
    assert sent.returncode == 0, sent.stderr
    image_id = json.loads(sent.stdout.splitlines()[-1])["id"]
    listed = run(tmp_path, "ls", "--server", server, "--json", PIXDROP_API_KEY=secret)
    assert listed.returncode == 0, listed.stderr
    assert image_id in listed.stdout
    removed = run(tmp_path, "rm", image_id, "--server", server, PIXDROP_API_KEY=secret)
    assert removed.returncode == 0, removed.stderr


def test_the_library_sends_its_key_and_deletes_by_token(keys: Keys) -> None:
    secret = keys.make("upload", "read")
    with Client(keys.server.url, token=secret) as client:
        image = client.upload(tiny_image(seed=3))
        assert image.delete_token
        client.delete(image.id, image.delete_token)  # the token beside the key


def test_the_client_variable_is_not_an_unknown_setting() -> None:
    assert load_settings({"PIXDROP_API_KEY": "pxk_x"}).auth_mode == "none"
