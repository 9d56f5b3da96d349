"""Uploads and downloads through a proxy that cuts connections and delays answers.

Each test checks that faults did happen (the proxy's cut count, the server's log) and that
the stored bytes are still exactly the file's.
"""

from __future__ import annotations

import asyncio
import hashlib
import io

import httpx
import pytest

from pixdrop.client import AsyncClient, Client, TransferError
from tests.client.conftest import CHUNK, FAST_RETRY, chunk_puts, count, fake_png
from tests.client.proxy import FaultProxy, Faults
from tests.conftest import LiveServer
from tests.http.helpers import free_port


def through(server: LiveServer, faults: Faults) -> FaultProxy:
    return FaultProxy(int(server.url.rsplit(":", 1)[1]), faults)


def stored_bytes(server: LiveServer, image_id: str) -> bytes:
    return httpx.get(f"{server.url}/v1/images/{image_id}/original").content


@pytest.mark.parametrize(
    "faults",
    [
        # mid-request: the chunk never fully arrives, so it is simply still missing
        pytest.param(Faults(cut_upload_after=40_000, max_cuts=4, delay=0.005), id="requests-cut"),
        # mid-response: the chunk was stored, the answer lost; the re-send gets 200
        pytest.param(Faults(cut_download_after=60, max_cuts=4, delay=0.005), id="answers-cut"),
    ],
)
def test_upload_completes_through_cut_connections(chunk_server, access_log, tmp_path, faults):
    data = fake_png(12 * CHUNK, seed=3)
    proxy = through(chunk_server, faults)
    try:
        with Client(proxy.url, state_dir=tmp_path, retry=FAST_RETRY) as client:
            image = client.upload(data, chunk_size=CHUNK, parallel=3)
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert stored_bytes(chunk_server, image.id) == data
    stored = chunk_puts(access_log.hits, statuses={201})
    assert sorted(stored) == list(range(-(-len(data) // CHUNK)))  # each chunk stored once
    if faults.cut_download_after:
        assert chunk_puts(access_log.hits, statuses={200}), "no identical re-send was seen"


def test_async_upload_completes_through_cut_connections(chunk_server, tmp_path):
    data = fake_png(10 * CHUNK, seed=4)
    proxy = through(chunk_server, Faults(cut_upload_after=30_000, max_cuts=3, delay=0.005))

    async def scenario() -> str:
        async with AsyncClient(proxy.url, state_dir=tmp_path, retry=FAST_RETRY) as client:
            image = await client.upload(data, chunk_size=CHUNK, parallel=3)
            return image.id

    try:
        image_id = asyncio.run(scenario())
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert stored_bytes(chunk_server, image_id) == data


def test_download_resumes_with_range_after_a_cut(chunk_server, access_log, tmp_path):
    data = fake_png(6 * CHUNK, seed=5)
    with Client(chunk_server.url, state_dir=tmp_path) as direct:
        image = direct.upload(data)
    proxy = through(chunk_server, Faults(cut_download_after=40_000, max_cuts=2, delay=0.005))
    out = io.BytesIO()
    try:
        with Client(proxy.url, state_dir=tmp_path, retry=FAST_RETRY) as client:
            written = client.download(image.id, out)
            client.download(image.id, tmp_path / "copy.png")
    finally:
        proxy.close()
    assert proxy.cuts >= 1
    assert written == len(data)
    assert out.getvalue() == data
    assert (tmp_path / "copy.png").read_bytes() == data
    original = f"/v1/images/{image.id}/original"
    ranged = [h for h in access_log.hits if h.path == original and h.status == 206]
    assert ranged, "the download did not continue with a Range request"


def test_retries_run_out_on_a_dead_server(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: every connection is refused
    with (
        Client(url, state_dir=tmp_path, retry=FAST_RETRY) as client,
        pytest.raises(TransferError) as failed,
    ):
        client.get("A" * 22)
    assert isinstance(failed.value.last_error, httpx.ConnectError)
    assert "10 times" in str(failed.value)


def test_simple_upload_is_retried_after_a_cut(chunk_server, access_log, tmp_path, photo_png):
    proxy = through(chunk_server, Faults(cut_upload_after=100_000, max_cuts=1))
    try:
        with Client(proxy.url, state_dir=tmp_path, retry=FAST_RETRY) as client:
            image = client.upload(photo_png)
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert stored_bytes(chunk_server, image.id) == photo_png
    assert count(access_log.hits, "POST", "/v1/images") >= 1
