"""A real nginx in front of pixdrop nodes: a round-robin upstream on a free loopback port.

``Nginx.start(upstreams, directory)`` writes a config of its own under *directory* and runs
``nginx`` as a child process (``daemon off; master_process off;``: stopping it by pid leaves no
worker), with its error log, access log, pid file and temp paths in that directory (the
team's notes on starting real servers). The proxy settings are those uploads need: no request or
response buffering, no body size limit, HTTP/1.1 to the nodes, ``Host`` passed on. With request
buffering off, a request in flight on a node that dies answers 502 (nginx fails over only the
requests whose connection was refused): clients retry.

``nginx_binary()`` is ``None`` when nginx is not installed (``apt-get install -y nginx-light``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.http.helpers import free_port

CONFIG = """\
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/error.log info;
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream pixdrop {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location / {{
            proxy_pass http://pixdrop;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_request_buffering off;
            proxy_buffering off;
            proxy_read_timeout 120s;
            proxy_send_timeout 120s;
        }}
    }}
}}
"""


def nginx_binary() -> str | None:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    return found


@dataclass
class Nginx:
    process: subprocess.Popen[bytes]
    directory: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, upstreams: Sequence[str], directory: Path, timeout: float = 10.0) -> Nginx:
        """Proxy round-robin to *upstreams* (``host:port``); wait until it answers."""
        binary = nginx_binary()
        if binary is None:
            raise FileNotFoundError("no nginx binary: apt-get install -y nginx-light")
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        servers = "\n".join(f"        server {u};" for u in upstreams)
        config = directory / "nginx.conf"
        config.write_text(CONFIG.format(dir=directory, servers=servers, port=port))
        with (directory / "stderr.log").open("wb") as err:
            process = subprocess.Popen(
                [
                    binary,
                    "-p",
                    str(directory),
                    "-c",
                    str(config),
                    "-e",
                    str(directory / "error.log"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        server = cls(process, directory, port)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"nginx exited: {server.errors()}")
            try:
                httpx.get(server.url + "/healthz", timeout=1.0)
                return server
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    server.stop()
                    raise RuntimeError(f"nginx not answering: {server.errors()}") from None
                time.sleep(0.05)

    def errors(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.directory / "stderr.log",
                 self.directory / "error.log") if p.exists()]  # fmt: skip
        return "\n".join(parts)[-3000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
