"""schemathesis against a real server: what ``/openapi.json`` says is what the server does.

Every check is on (``--checks all``): undocumented statuses and content types, bodies and
headers against their schemas, schema-valid requests refused, schema-breaking ones accepted,
``Allow`` on 405, resources that outlive their DELETE, ... ``schemathesis.toml`` beside this
file widens what two checks accept where a request that fits the description can still be
refused for a reason no OpenAPI schema states (each entry says which); ``schemathesis_hooks.py``
keeps its HTTP client away from the one answer it cannot read (a 104 interim response).

Bounded: a fixed seed, a few examples per operation, one worker, no shrinking (a failure's
``curl`` line is printed either way). The description does not depend on the metadata store
(the smallest chunk on S3 does: ``tests/http/test_openapi.py``), so this runs on SQLite only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFIG = Path(__file__).with_name("schemathesis.toml")
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
#: Fixed, so a run is repeatable. Other seeds, more examples, by hand (docs/api.md):
#: ``ST_SEED=7 ST_EXAMPLES=30 pytest tests/http/...``.
SEED = int(os.environ.get("ST_SEED", "20261206"))
EXAMPLES = int(os.environ.get("ST_EXAMPLES", "10"))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_server_does_what_its_description_says(server_factory, tmp_path: Path) -> None:
    # Small chunks: the stateful phase creates uploads and sends them chunk by chunk.
    live = server_factory(min_chunk_size=1024, image_workers=1)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(CONFIG),
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
    }
    # cwd: schemathesis and hypothesis keep their state beside it, not in the checkout.
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280, check=False
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report
    assert "31 selected / 31 total" in report, report  # the tus / IETF operations included
