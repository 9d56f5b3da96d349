"""docs/deploy.md, followed as written: a one-machine site moves to nodes behind nginx.

The test takes its commands and its nginx configuration from the page itself, and changes only
what belongs to the machine it runs on:

* the ``pixdrop serve`` block: every flag as written, with this machine's values for the
  addresses, the database, the bucket and the data directory (``--workers 2`` and
  ``--trust-forwarded`` stay as they are);
* the nginx block: the ``upstream`` and ``server`` blocks as written, with the nodes' addresses
  in the upstream and a loopback port without TLS in place of ``listen 443 ssl`` and the
  certificate lines (a test has no certificate for img.example.com); nginx needs a few
  top-level lines around them (pid, logs, temp paths), which the page leaves to the distro;
* "From one machine to many": the steps in their order, with the commands the page names
  (``pixdrop store migrate``, ``pixdrop db copy``), on a site that has images already;
* the bucket lifecycle rule: the JSON as written is a valid
  ``PutBucketLifecycleConfiguration`` request (checked against botocore's model of the API).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import IN_CI
from tests.e2e import ServerProcess, pixdrop_command, pixdrop_env
from tests.e2e.nginx import nginx_binary
from tests.http.helpers import free_port, noise_png, post_image, upload_in_chunks

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

DOC = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"
MiB = 1024 * 1024


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), re.DOTALL)


def serve_flags() -> list[str]:
    """The flags of the page's ``pixdrop serve`` command, as written."""
    (block,) = [b for b in blocks("sh") if "pixdrop serve" in b]
    command = block[block.index("pixdrop serve") :].replace("\\\n", " ")
    words = shlex.split(command)
    assert words[:2] == ["pixdrop", "serve"]
    return words[2:]


def with_values(flags: list[str], values: dict[str, str]) -> list[str]:
    """*flags* with the values of those named in *values* replaced; every one must be there."""
    out, missing = list(flags), set(values)
    for index, word in enumerate(out):
        if word in values:
            out[index + 1] = values[word]
            missing.discard(word)
    assert not missing, f"deploy.md's command lacks {sorted(missing)}"
    return out


def nginx_config(directory: Path, nodes: list[str], port: int) -> Path:
    (block,) = blocks("nginx")
    assert "proxy_request_buffering off;" in block
    assert "client_max_body_size 0;" in block
    upstream = re.sub(r"(?m)^    server \S+;\n", "", block)
    servers = "".join(f"    server {node};\n" for node in nodes)
    upstream = upstream.replace("upstream pixdrop {\n", "upstream pixdrop {\n" + servers, 1)
    local = upstream.replace("listen 443 ssl;", f"listen 127.0.0.1:{port};")
    local = re.sub(r"(?m)^\s*(http2 on|ssl_certificate|ssl_certificate_key)\b.*\n", "", local)
    assert "ssl" not in local.replace("ssl_", "")
    config = directory / "nginx.conf"
    config.write_text(
        "daemon off;\nmaster_process off;\nworker_processes 1;\n"
        f"error_log {directory}/error.log;\npid {directory}/nginx.pid;\n"
        "events { worker_connections 256; }\nhttp {\n"
        "log_format upstreams '$request $status $upstream_addr';\n"
        f"access_log {directory}/access.log upstreams;\n"
        + "".join(
            f"{kind}_temp_path {directory}/{kind};\n"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + local
        + "}\n"
    )
    return config


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        pixdrop_command(*args), env=pixdrop_env(), capture_output=True, text=True, timeout=300
    )


def test_the_lifecycle_rule_is_a_valid_request() -> None:
    import boto3
    from botocore.validate import validate_parameters

    (rule,) = [b for b in blocks("json") if '"Rules"' in b]
    model = boto3.session.Session(region_name="us-east-1").client("s3").meta.service_model
    shape = model.operation_model("PutBucketLifecycleConfiguration").input_shape
    validate_parameters(
        {"Bucket": "images", "LifecycleConfiguration": json.loads(rule)}, shape
    )  # raises ParamValidationError naming what is wrong


def test_one_machine_to_many_as_deploy_md_says(
    tmp_path: Path, s3_url: str, empty_postgres_url: str
) -> None:
    if nginx_binary() is None:
        message = "nginx is not installed (apt-get install -y nginx-light)"
        if IN_CI:
            pytest.fail(message + " (required when CI=true)")
        pytest.skip(message)
    text = DOC.read_text()
    blob_store = s3_url  # this test's own prefix of the session's bucket
    site = tmp_path / "site"
    photo, chunked = noise_png(280, seed=11), noise_png(420, seed=12)

    # A one-machine site with images in it.
    old = ServerProcess(tmp_path, site, f"sqlite:///{site / 'pixdrop.db'}")
    try:
        old.wait_healthy()
        with httpx.Client(base_url=old.url, timeout=60) as client:
            first = post_image(client, photo, "image/png")
            # Step 2: move the bytes while the old server keeps serving.
            step2 = "pixdrop store migrate --data-dir"
            assert step2 in " ".join(text.split())
            moved = run("store", "migrate", "--data-dir", str(site), "--from",
                        f"file://{site}", "--to", blob_store)  # fmt: skip
            assert moved.returncode == 0, moved.stderr
            # An image that arrives meanwhile is moved by the last run of step 3.
            _, reply = upload_in_chunks(client, chunked, 64 * 1024)
            assert reply.status_code == 201, reply.text
            second = reply.json()
    finally:
        old.stop()

    # Step 3: the old server stopped, the last bytes, then the metadata.
    again = run("store", "migrate", "--data-dir", str(site), "--from", f"file://{site}",
                "--to", blob_store)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert "pixdrop db copy --data-dir" in " ".join(text.split())
    copied = run("db", "copy", "--data-dir", str(site), "--to", empty_postgres_url)
    assert copied.returncode == 0, copied.stderr

    # Step 4: the nodes, with the page's command, and nginx with the page's configuration.
    proxy_port = free_port()
    public = f"http://127.0.0.1:{proxy_port}"
    nodes: list[ServerProcess] = []
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for index in range(2):
            flags = with_values(
                serve_flags(),
                {
                    "--host": "127.0.0.1",
                    "--database-url": empty_postgres_url,
                    "--blob-store": blob_store,
                    "--public-url": public,
                    "--data-dir": str(tmp_path / f"node-{index}"),
                },
            )
            # ServerProcess adds this machine's --port and --data-dir and --database-url last.
            flags = [f for i, f in enumerate(flags) if f != "--port" and flags[i - 1] != "--port"]
            assert "--workers" in flags
            assert "--trust-forwarded" in flags
            nodes.append(
                ServerProcess(tmp_path, tmp_path / f"node-{index}", empty_postgres_url, flags)
            )
        for node in nodes:
            node.wait_healthy(60)
        directory = tmp_path / "nginx"
        directory.mkdir()
        config = nginx_config(directory, [n.url.removeprefix("http://") for n in nodes], proxy_port)
        binary = nginx_binary()
        assert binary is not None
        nginx = subprocess.Popen(
            [binary, "-p", str(directory), "-c", str(config), "-e", str(directory / "error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        with httpx.Client(base_url=public, timeout=60) as client:
            for _ in range(100):
                try:
                    if client.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                nginx.poll()
                assert nginx.returncode is None, (directory / "error.log").read_text()
                time.sleep(0.1)
            # What the one machine held is served by the nodes, through the proxy.
            for image, data in ((first, photo), (second, chunked)):
                for _ in range(4):  # round-robin: more than one node answers
                    got = client.get(f"/v1/images/{image['id']}/original")
                    assert got.status_code == 200
                    assert got.content == data
            # Which node answered each request: nginx's access log names the upstream.
            log = (directory / "access.log").read_text()
            pattern = rf"GET /v1/images/{first['id']}/original \S+ 200 (\S+)"
            answered = set(re.findall(pattern, log))
            assert answered == {n.url.removeprefix("http://") for n in nodes}, log
            # New uploads work through the proxy; links use --public-url.
            fresh = client.post(
                "/v1/images", content=noise_png(200, seed=13), headers={"Content-Type": "image/png"}
            )
            assert fresh.status_code == 201, fresh.text
            assert fresh.json()["image_url"].startswith(public + "/v1/images/")
            tus = client.post(
                "/files/",
                headers={"Tus-Resumable": "1.0.0", "Upload-Length": str(len(photo))},
            )
            assert tus.status_code == 201
            assert tus.headers["Location"].startswith(public)
            done = client.patch(
                tus.headers["Location"],
                content=photo,
                headers={
                    "Tus-Resumable": "1.0.0",
                    "Upload-Offset": "0",
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            assert done.status_code == 204, done.text
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        for node in nodes:
            node.stop()
