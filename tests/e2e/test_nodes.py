"""Three ``pixdrop serve`` nodes behind a real nginx, on one PostgreSQL schema and one S3 prefix
(issue 14). All traffic goes to nginx's port; its round-robin upstream spreads the requests.

Each node has a data directory of its own (nodes are stateless: bytes are in the bucket,
records and leases in PostgreSQL). Which node served a request is read from the nodes' access
logs (one line per request on stderr, kept in a file by ``ServerProcess``).

* chunks of one native upload and the PATCHes of one tus upload land on several nodes, and the
  image is the bytes sent;
* concurrent first requests for one variant, over all nodes, render it once (one derived
  object in the bucket) and answer the same bytes;
* a node SIGKILLed while a chunk is in flight through it: nginx answers 502 (request buffering
  off), the client retries and finishes through the others;
* the sweeper (its own trio: a short ``--upload-ttl``) aborts an expired upload's multipart
  upload once, on one node.

The trio of ``cluster`` loses a node in the kill test, which is therefore the last one to use
it. PostgreSQL, SeaweedFS and nginx are required when ``CI=true``; elsewhere the module skips.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from PIL import Image as PILImage
from sqlalchemy import text

from pixdrop.metadata import database_url as parse_database_url
from pixdrop.metadata.sql import make_engine
from tests.conftest import IN_CI
from tests.e2e import ServerProcess
from tests.e2e.nginx import Nginx, nginx_binary
from tests.http.helpers import create_upload, noise_png, put_chunk, split_chunks
from tests.tus.wire import sf_strings

pytestmark = [pytest.mark.postgres, pytest.mark.s3]

MiB = 1024 * 1024
CHUNK = 5 * MiB
TUS = {"Tus-Resumable": "1.0.0"}
OCTETS = "application/offset+octet-stream"
NODE_ARGS = ["--min-chunk-size", "5MiB", "--image-workers", "1", "--no-fsync"]


@dataclass
class Cluster:
    nodes: list[ServerProcess]
    nginx: Nginx
    s3: Any  # a boto3 S3 client
    bucket: str
    prefix: str  # the key prefix of this cluster's objects, no trailing slash
    database_url: str

    @property
    def url(self) -> str:
        return self.nginx.url

    def client(self, timeout: float = 60) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def nodes_logging(self, pattern: str) -> list[ServerProcess]:
        """The nodes whose stderr has a line matching *pattern* (a regular expression)."""
        found = re.compile(pattern, re.MULTILINE)
        return [node for node in self.nodes if found.search(node.stderr())]

    def keys(self, under: str) -> list[str]:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}")
        return [item["Key"] for item in listed.get("Contents", [])]

    def versions(self, under: str) -> list[str]:
        """The key of every version of every object under *under* (a versioned bucket)."""
        listed = self.s3.list_object_versions(Bucket=self.bucket, Prefix=f"{self.prefix}/{under}")
        return [item["Key"] for item in listed.get("Versions", [])]

    def multipart_keys(self) -> list[str]:
        listed = self.s3.list_multipart_uploads(Bucket=self.bucket, Prefix=f"{self.prefix}/")
        return [item["Key"] for item in listed.get("Uploads", [])]

    def logs(self) -> str:
        return "\n".join(f"--- node {n.port} ---\n{n.stderr()[-2000:]}" for n in self.nodes)


@pytest.fixture(scope="module")
def big_png() -> bytes:
    """A PNG of random pixels (incompressible): about 12 MiB, three 5 MiB chunks."""
    data = noise_png(2000, seed=1414)
    assert len(data) > 2 * CHUNK
    return data


@pytest.fixture(scope="module")
def nginx_available() -> None:
    if nginx_binary() is None:
        message = "nginx not installed (apt-get install -y nginx-light)"
        if IN_CI:
            pytest.fail(message + " (required when CI=true)")
        pytest.skip(message)


def start_cluster(
    directory: Path, postgres_url: str, s3_url: str, extra_args: list[str], *, versioned: bool
) -> Iterator[Cluster]:
    """Three nodes on a new schema and a new S3 prefix, and nginx in front; torn down after.

    *versioned*: the prefix is in a new bucket with versioning on, so that every write of an
    object is seen (a rendition written twice has two versions); else in the session's bucket.
    """
    import boto3

    schema = "nodes_" + secrets.token_hex(6)
    admin = make_engine(parse_database_url(postgres_url))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    database_url = f"{postgres_url}?options={quote(f'-csearch_path={schema}')}"

    base, _, query = s3_url.partition("?")
    options = {k: v[0] for k, v in parse_qs(query).items()}
    s3 = boto3.client("s3", endpoint_url=options["endpoint_url"], region_name=options.get("region"))
    if versioned:
        bucket = schema.replace("_", "-")
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        blob_store = f"s3://{bucket}/objects?{query}"
    else:
        blob_store = f"{base}/{schema}?{query}"
    parts = urlsplit(blob_store)

    nodes: list[ServerProcess] = []
    nginx: Nginx | None = None
    try:
        args = [*NODE_ARGS, "--blob-store", blob_store, *extra_args]
        for number in range(3):  # started at once: they migrate the fresh schema together
            data_dir = directory / f"node{number}"
            nodes.append(ServerProcess(directory, data_dir, database_url, args))
        for node in nodes:
            node.wait_healthy(timeout=60)
        nginx = Nginx.start([f"127.0.0.1:{n.port}" for n in nodes], directory / "nginx")
        yield Cluster(nodes, nginx, s3, parts.netloc, parts.path.strip("/"), database_url)
    finally:
        if nginx is not None:
            nginx.stop()
        for node in nodes:
            node.stop()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(scope="module")
def cluster(
    nginx_available: None,
    postgres_url: str,
    s3_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """The trio of most tests: its prefix in a versioned bucket of its own."""
    directory = tmp_path_factory.mktemp("nodes")
    yield from start_cluster(directory, postgres_url, s3_url, [], versioned=True)


@pytest.fixture(scope="module")
def sweeping_cluster(
    nginx_available: None,
    postgres_url: str,
    s3_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    """A trio of its own: uploads expire after 3 s, and the sweeper looks every second."""
    args = ["--upload-ttl", "3", "--sweep-interval", "1"]
    directory = tmp_path_factory.mktemp("sweep")
    yield from start_cluster(directory, postgres_url, s3_url, args, versioned=False)


def chunk_put_line(upload_id: str) -> str:
    return rf"PUT /v1/uploads/{upload_id}/chunks/\d+ 201 "


def assert_original(client: httpx.Client, image_id: str, data: bytes) -> None:
    original = client.get(f"/v1/images/{image_id}/original")
    assert original.status_code == 200, original.text
    assert hashlib.sha256(original.content).hexdigest() == hashlib.sha256(data).hexdigest()
    assert original.content == data


def test_chunks_of_one_upload_spread_over_the_nodes(cluster: Cluster, big_png: bytes) -> None:
    with cluster.client() as client:
        upload = create_upload(
            client, len(big_png), chunk_size=CHUNK, sha256=hashlib.sha256(big_png).hexdigest()
        )
        chunks = split_chunks(big_png, CHUNK)
        assert len(chunks) == 3
        with ThreadPoolExecutor(3) as pool:
            replies = list(
                pool.map(lambda i: put_chunk(client, upload["id"], i, chunks[i]), range(3))
            )
        assert [r.status_code for r in replies] == [201, 201, 201], [r.text for r in replies]
        done = client.post(f"/v1/uploads/{upload['id']}/complete")
        assert done.status_code == 201, done.text
        assert_original(client, done.json()["id"], big_png)

    served = cluster.nodes_logging(chunk_put_line(upload["id"]))
    assert len(served) >= 2, cluster.logs()


def test_tus_patches_alternate_nodes(cluster: Cluster, big_png: bytes) -> None:
    pieces = split_chunks(big_png, 4 * MiB)  # 4 PATCHes; the server cuts its own parts
    with cluster.client() as client:
        created = client.post("/files/", headers={**TUS, "Upload-Length": str(len(big_png))})
        assert created.status_code == 201, created.text
        path = httpx.URL(created.headers["location"]).path
        offset = 0
        for piece in pieces:
            reply = client.patch(
                path,
                content=piece,
                headers={**TUS, "Upload-Offset": str(offset), "Content-Type": OCTETS},
            )
            assert reply.status_code == 204, reply.text
            offset += len(piece)
            assert int(reply.headers["upload-offset"]) == offset
        image_url = sf_strings(reply.headers["pixdrop-image"])["url"]
        image_id = httpx.URL(image_url).path.rstrip("/").rsplit("/", 1)[1]
        assert_original(client, image_id, big_png)

    served = cluster.nodes_logging(rf"PATCH {re.escape(path)} 204 ")
    assert len(served) >= 2, cluster.logs()


def test_concurrent_first_requests_render_a_variant_once(cluster: Cluster, big_png: bytes) -> None:
    # Another image than the other tests' (one pixel changed): its variants are not made yet.
    image = PILImage.open(io.BytesIO(big_png))
    image.putpixel((0, 0), (1, 2, 3))
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=0)
    data = out.getvalue()
    sha256 = hashlib.sha256(data).hexdigest()

    with cluster.client() as client:
        posted = client.post(
            "/v1/images", content=data, headers={"Content-Type": "application/octet-stream"}
        )
        assert posted.status_code == 201, posted.text
        image_id = posted.json()["id"]
        assert cluster.keys(f"derived/{sha256}/") == []

        count = 6
        barrier = threading.Barrier(count)

        def fetch(_: int) -> httpx.Response:
            barrier.wait()
            return client.get(f"/v1/images/{image_id}/thumb")

        with ThreadPoolExecutor(count) as pool:
            replies = list(pool.map(fetch, range(count)))

    assert [r.status_code for r in replies] == [200] * count, [r.text for r in replies]
    bodies = {r.content for r in replies}
    assert len(bodies) == 1
    assert PILImage.open(io.BytesIO(replies[0].content)).size == (256, 256)
    assert len(cluster.keys(f"derived/{sha256}/")) == 1
    # Written once: a second render would have left a second version (the bucket keeps all).
    assert len(cluster.versions(f"derived/{sha256}/")) == 1
    served = cluster.nodes_logging(rf"GET /v1/images/{image_id}/thumb 200 ")
    assert len(served) >= 2, cluster.logs()  # the requests did reach several nodes


def established(port: int) -> int:
    """How many TCP connections to 127.0.0.1:*port* are established (from /proc/net/tcp)."""
    local = f"0100007F:{port:04X}"
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for line in lines if line.split()[1] == local and line.split()[3] == "01")


def test_a_node_killed_mid_upload_the_others_finish_it(cluster: Cluster, big_png: bytes) -> None:
    """Last test on ``cluster``: it loses a node."""
    chunks = split_chunks(big_png, CHUNK)
    release = threading.Event()

    def stalled_body() -> Iterator[bytes]:
        yield chunks[0][:MiB]
        release.wait(30)
        yield chunks[0][MiB:]

    with cluster.client() as client:
        upload = create_upload(client, len(big_png), chunk_size=CHUNK)
        busy_before = {n.port: established(n.port) for n in cluster.nodes}
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(
                lambda: put_chunk(client, upload["id"], 0, stalled_body()),
            )
            # Which node has the request in flight: the one nginx holds a connection to.
            deadline = time.monotonic() + 10
            while True:
                busy = [n for n in cluster.nodes if established(n.port) > busy_before[n.port]]
                if busy or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert len(busy) == 1, busy
            victim = busy[0]
            time.sleep(0.3)  # the node is reading the body now
            victim.kill()
            release.set()
            try:
                failed: httpx.Response | Exception = first.result()
            except httpx.TransportError as exc:
                failed = exc
        # nginx cannot fail over a request whose body it has streamed: 502 (or the connection
        # closes under the client while it still sends): the client retries.
        if isinstance(failed, httpx.Response):
            assert failed.status_code == 502, failed.text

        for index, chunk in enumerate(chunks):
            for _attempt in range(3):
                reply = put_chunk(client, upload["id"], index, chunk)
                if reply.status_code != 502:
                    break
            assert reply.status_code == 201, (index, reply.status_code, reply.text)
        done = client.post(f"/v1/uploads/{upload['id']}/complete")
        assert done.status_code == 201, done.text
        assert_original(client, done.json()["id"], big_png)

    assert not victim.alive()
    survivors = [n for n in cluster.nodes if n is not victim]
    assert all(n.alive() for n in survivors)


def test_the_sweeper_aborts_an_expired_upload_once(
    sweeping_cluster: Cluster, big_png: bytes
) -> None:
    cluster = sweeping_cluster
    with cluster.client() as client:
        upload = create_upload(client, len(big_png), chunk_size=CHUNK)
        stored = put_chunk(client, upload["id"], 0, big_png[:CHUNK])
        assert stored.status_code == 201, stored.text
        key = f"{cluster.prefix}/staging/{upload['id']}"
        assert key in cluster.multipart_keys()

        deadline = time.monotonic() + 15
        while key in cluster.multipart_keys() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert key not in cluster.multipart_keys(), cluster.logs()
        gone = client.get(f"/v1/uploads/{upload['id']}")
        assert gone.status_code in (404, 410), gone.text

    swept = r"^swept (\d+) expired or orphaned uploads$"
    deadline = time.monotonic() + 5
    while not cluster.nodes_logging(swept) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2.5)  # two more sweeps, should any node find something left to remove
    sweepers = cluster.nodes_logging(swept)
    assert len(sweepers) == 1, cluster.logs()
    counts = [int(n) for n in re.findall(swept, sweepers[0].stderr(), re.MULTILINE)]
    assert counts == [1], cluster.logs()
    assert cluster.keys(f"staging/{upload['id']}") == []
