"""schemathesis against a real server: what ``/openapi.json`` says is what the server does.

Every check is on (``--checks all``): undocumented statuses and content types, bodies and
headers against their schemas, schema-valid requests refused, schema-breaking ones accepted,
``Allow`` on 405, resources that outlive their DELETE, ... ``schemathesis.toml`` beside this
file widens what two checks accept where a request that fits the description can still be
refused for a reason no OpenAPI schema states (each entry says which); ``schemathesis_hooks.py``
keeps its HTTP client away from the one answer it cannot read (a 104 interim response).

Two runs: the open server (``--auth none``), and ``--auth keys`` with an admin key that
schemathesis sends as the description's bearer scheme (``[auth.openapi.apiKey]``) to the
operations that list it under ``security``, so the keys admin API and the scope checks are
fuzzed too: its ``ignored_auth`` check sends each of them without the key (and with a wrong
one) too, and ``missing_required_header`` wants 401 without it.

Bounded: a fixed seed, a few examples per operation, one worker, no shrinking (a failure's
``curl`` line is printed either way). The description does not depend on the metadata store
(the smallest chunk on S3 does: ``tests/http/test_openapi.py``), so this runs on SQLite only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.auth.conftest import SIGNING_KEY, bearer, direct_key
from tests.conftest import LiveServer

CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
#: Fixed, so a run is repeatable. Other seeds, more examples, by hand (docs/api.md):
#: ``ST_SEED=7 ST_EXAMPLES=30 pytest tests/http/...``.
SEED = int(os.environ.get("ST_SEED", "20261206"))
EXAMPLES = int(os.environ.get("ST_EXAMPLES", "10"))


#: Every operation: the tus / IETF ones and the keys admin API included.
OPERATIONS = 36


def run_schemathesis(
    live: LiveServer,
    tmp_path: Path,
    *,
    config: Path = CONFIG,
    env: dict[str, str] | None = None,
) -> str:
    """Run schemathesis against *live* with every check on; its report, if it passed."""
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{live.url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--no-shrink",
        "--request-timeout",
        "30",
        "--no-color",
    ]
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": str(HOOKS),
        "SCHEMATHESIS_TELEMETRY": "false",
        "NO_COLOR": "1",
        **(env or {}),
    }
    # cwd: schemathesis and hypothesis keep their state beside it, not in the checkout.
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280, check=False
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert f"{OPERATIONS} selected / {OPERATIONS} total" in report, report
    return report


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_server_does_what_its_description_says(server_factory, tmp_path: Path) -> None:
    # Small chunks: the stateful phase creates uploads and sends them chunk by chunk.
    live = server_factory(min_chunk_size=1024, image_workers=1)
    run_schemathesis(live, tmp_path)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_keyed_server_does_what_its_description_says(server_factory, tmp_path: Path) -> None:
    live = server_factory(
        min_chunk_size=1024, image_workers=1, auth="keys", signing_key=SIGNING_KEY
    )
    admin = direct_key(live.settings.resolved_database_url, name="schemathesis", scopes=["admin"])
    # The key as the description's bearer scheme: schemathesis sends it where an operation
    # lists it under ``security``, and leaves it out where a check wants it missing.
    config = tmp_path / "schemathesis.toml"
    config.write_text(f'{CONFIG.read_text()}\n[auth.openapi.apiKey]\nbearer = "{admin}"\n')
    run_schemathesis(live, tmp_path, config=config, env={"PIXDROP_ST_KEPT_KEY": admin[4:26]})
    # The key was sent, and reached what needs it: schemathesis made keys with it.
    listed = httpx.get(f"{live.url}/v1/keys", headers=bearer(admin), timeout=30)
    assert listed.status_code == 200, listed.text
    assert len(listed.json()["keys"]) > 1
