"""``pixdrop keys`` against running server processes: created and revoked while they serve,
effective on the next request on every node; secrets never in the servers' logs."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import bearer
from tests.e2e import ServerProcess, pixdrop_command, pixdrop_env
from tests.http.helpers import tiny_image


def keys_cli(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = pixdrop_command(
        "keys", *args, "--database-url", database_url, "--data-dir", str(data_dir)
    )
    return subprocess.run(
        command, capture_output=True, text=True, env=pixdrop_env(), timeout=120, check=False
    )


@pytest.fixture
def nodes(tmp_path: Path, database_url: str) -> Iterator[list[ServerProcess]]:
    """Two server processes sharing one database and data directory, in --auth keys."""
    started = [
        ServerProcess(tmp_path, tmp_path / "data", database_url, ["--auth", "keys"])
        for _ in range(2)
    ]
    try:
        for node in started:
            node.wait_healthy()
        yield started
    finally:
        for node in started:
            node.stop()


def test_keys_made_and_revoked_by_the_cli_hold_on_every_node_at_once(
    nodes: list[ServerProcess], database_url: str, tmp_path: Path
) -> None:
    made = keys_cli(database_url, tmp_path / "data", "create", "--name", "ci",
                    "--scopes", "upload,read", "--quota", "1GiB", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    secret = created["secret"]
    assert secret.startswith("pxk_")
    assert created["quota"] == 1024**3
    assert created["scopes"] == ["upload", "read"]
    for node in nodes:
        assert httpx.get(node.url + "/v1/images", headers=bearer(secret)).status_code == 200

    listed = keys_cli(database_url, tmp_path / "data", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    assert created["id"] in listed.stdout
    assert "secret" not in listed.stdout

    revoked = keys_cli(database_url, tmp_path / "data", "revoke", created["id"])
    assert revoked.returncode == 0, revoked.stderr
    for node in nodes:  # the very next request, on each node
        response = httpx.get(node.url + "/v1/images", headers=bearer(secret))
        assert response.status_code == 401, response.text
    again = keys_cli(database_url, tmp_path / "data", "revoke", "no-such-key")
    assert again.returncode == 1


def test_secrets_never_reach_the_logs(
    nodes: list[ServerProcess], database_url: str, tmp_path: Path
) -> None:
    made = keys_cli(database_url, tmp_path / "data", "create", "--name", "ci",
                    "--scopes", "upload,read,delete")  # fmt: skip
    secret = made.stdout.strip()
    assert secret.startswith("pxk_")
    node = nodes[0]
    forged = secret[:-4] + "AAAA"
    with httpx.Client(base_url=node.url, headers=bearer(secret)) as client:
        created = client.post("/v1/images", content=tiny_image()).json()
        token = created["delete_token"]
        client.get("/v1/images", params={"cursor": "junk"})
        client.delete(f"/v1/images/{created['id']}", headers={"Pixdrop-Delete-Token": "wrong"})
        client.get("/v1/images", headers=bearer(forged))
        client.delete(f"/v1/images/{created['id']}", headers=bearer(token))
    node.stop()
    logs = node.stderr()
    assert "GET /v1/images" in logs  # the access log was on: requests were logged
    for needle in (secret, forged, secret[26:], token):
        assert needle not in logs
