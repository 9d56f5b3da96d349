"""Drive tuspy (``tusclient``) against a tus server for pixdrop's benchmark; print one JSON line.

    PYTHON tuspy_client.py JOB.json

Runs in the peers' own virtual environment. JOB is the same as for ``node/tus_client.mjs``:
``endpoint``, ``files``, ``chunk_size`` (null: one PATCH per file), ``parallel`` and
``concurrency``. tuspy sends every request on a new connection (``requests.patch``, no
session) and has neither creation-with-upload nor parallel uploads; for ``parallel`` > 1 this
driver splits the file into that many parts, uploads each as a partial upload with tuspy
(``Upload-Concat: partial``, the concatenation extension) on its own thread, then creates
the final upload from them with one POST. Prints {"seconds", "latencies", "requests",
"bytes", "urls", "images"}, the last being the [id, delete token] of each image a pixdrop
server named in its final answer (``Pixdrop-Image``, ``Pixdrop-Delete-Token``), so the harness
can delete them afterwards. Retries are off (tuspy's default): a failure ends the run with
status 1.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests
from tusclient.client import TusClient

MAXSIZE = sys.maxsize
TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".tif": "image/tiff", ".png": "image/png"}


class Slice:
    """A read-only file object over bytes [start, start + length) of a file."""

    def __init__(self, path: str, start: int, length: int) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._start, self._length, self._pos = start, length, 0

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._pos
        size = left if size is None or size < 0 else min(size, left)
        self._file.seek(self._start + self._pos)
        data = self._file.read(size)
        self._pos += len(data)
        return data

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Slice:
        return self

    def __exit__(self, *exc: object) -> None:
        pass  # tuspy uses the stream in "with" blocks and then again: keep it open


def pixdrop_image(headers: Any) -> list[str] | None:
    """[id, delete token] from a pixdrop answer's headers, if it names a new image."""
    lowered = {key.lower(): value for key, value in dict(headers or {}).items()}
    token = lowered.get("pixdrop-delete-token")
    found = re.search(r'id="([^"]+)"', lowered.get("pixdrop-image", ""))
    return [found.group(1), token] if token and found else None


def metadata(path: str) -> dict[str, str]:
    return {"filename": Path(path).name, "filetype": TYPES.get(Path(path).suffix, "image/jpeg")}


def upload(endpoint: str, path: str, chunk_size: int, parallel: int) -> tuple[str, Any]:
    """Upload *path*; its URL and the headers of the server's last answer."""
    if parallel <= 1:
        uploader = TusClient(endpoint).uploader(
            file_path=path, chunk_size=chunk_size, metadata=metadata(path)
        )
        uploader.upload()
        last = uploader.request.response_headers if uploader.request else {}
        return str(uploader.url), last
    size = os.path.getsize(path)
    step = -(-size // parallel)
    parts = [(start, min(step, size - start)) for start in range(0, size, step)]

    def partial(part: tuple[int, int]) -> str:
        stream = Slice(path, *part)
        try:
            client = TusClient(endpoint, headers={"Upload-Concat": "partial"})
            uploader = client.uploader(file_stream=stream, chunk_size=chunk_size)
            uploader.upload()
            return str(uploader.url)
        finally:
            stream.close()

    with ThreadPoolExecutor(len(parts)) as pool:
        urls = list(pool.map(partial, parts))
    encoded = ",".join(
        f"{key} {base64.b64encode(value.encode()).decode()}"
        for key, value in metadata(path).items()
    )
    response = requests.post(
        endpoint,
        headers={
            "Tus-Resumable": "1.0.0",
            "Upload-Concat": "final;" + " ".join(urls),
            "Upload-Metadata": encoded,
        },
        timeout=600,
    )
    if response.status_code != 201:
        raise RuntimeError(f"final concatenation: HTTP {response.status_code} {response.text}")
    return str(response.headers["Location"]), response.headers


def main() -> None:
    job: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text())
    if job.get("creation_with_upload"):
        raise SystemExit("tuspy has no creation-with-upload")
    files: list[str] = job["files"]
    chunk_size = job.get("chunk_size") or MAXSIZE
    parallel = int(job.get("parallel") or 1)
    latencies = [0.0] * len(files)
    urls = [""] * len(files)
    images: list[list[str] | None] = [None] * len(files)

    def one(index: int) -> None:
        started = time.perf_counter()
        urls[index], last = upload(job["endpoint"], files[index], chunk_size, parallel)
        latencies[index] = time.perf_counter() - started
        images[index] = pixdrop_image(last)

    sizes = [os.path.getsize(path) for path in files]
    requests_sent = sum(max(1, -(-size // chunk_size)) for size in sizes)
    started = time.perf_counter()
    concurrency = min(int(job.get("concurrency") or 1), len(files))
    if concurrency <= 1:
        for index in range(len(files)):
            one(index)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, range(len(files))))
    seconds = time.perf_counter() - started
    result = {
        "seconds": seconds,
        "latencies": latencies,
        "requests": requests_sent,
        "bytes": sum(sizes),
        "urls": urls,
        "images": [image for image in images if image],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    try:
        main()
    except Exception as exc:  # one line for the harness, not a traceback
        print(f"tuspy: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
