"""What completing a large upload costs the S3 store, step by step, and whether the store
takes conditional writes (issue 18).

Uploads ``--size-mib`` (default 512) as one multipart upload of 8 MiB parts, 4 in flight, to a
throwaway SeaweedFS (started here, as the tests do), then times, in each of ``--rounds``
rounds: CompleteMultipartUpload; a GET of the whole object into a scratch file (what
completing did before node-local copies: ``storage/s3_local.py``); the server-side copy of
the object to another key (``keep``: ``blobs/<sha256>``), as one CopyObject and as
UploadPartCopy of 64 MiB ranges, 8 in flight. Each is also given as a ratio to the parts'
upload in the same round. Then it asks the store whether ``If-None-Match: *`` keeps an
existing object on PutObject and on CompleteMultipartUpload (what completing an upload
straight at its content key would rely on).

Run: ``PYTHONPATH=src python -m bench.s3_steps [--size-mib 512] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.seaweed import Seaweed  # noqa: E402

MiB = 1024 * 1024
PART = 8 * MiB
IN_FLIGHT = 4
BUCKET = "bench-s3-steps"
REGION = "us-east-1"


def client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(request_checksum_calculation="when_required", max_pool_connections=16)
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint,
        config=config,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    )


def upload(s3: Any, key: str, data: bytes) -> tuple[str, list[dict[str, Any]]]:
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]

    def put(number: int) -> dict[str, Any]:
        body = data[(number - 1) * PART : number * PART]
        answer = s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": answer["ETag"]}

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        parts = list(pool.map(put, range(1, -(-len(data) // PART) + 1)))
    return upload_id, parts


def part_copy(s3: Any, source: str, target: str, size: int, part: int = 64 * MiB) -> None:
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=target)["UploadId"]

    def copy(index: int) -> dict[str, Any]:
        start = index * part
        answer = s3.upload_part_copy(
            Bucket=BUCKET,
            Key=target,
            UploadId=upload_id,
            PartNumber=index + 1,
            CopySource={"Bucket": BUCKET, "Key": source},
            CopySourceRange=f"bytes={start}-{min(size, start + part) - 1}",
        )
        return {"PartNumber": index + 1, "ETag": answer["CopyPartResult"]["ETag"]}

    with ThreadPoolExecutor(8) as pool:
        parts = list(pool.map(copy, range(-(-size // part))))
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=target, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )


def one_round(s3: Any, size: int, scratch: Path) -> dict[str, float]:
    """Seconds of each step for one object of *size* random bytes."""
    data = os.urandom(size)
    key = f"staging/{secrets.token_hex(6)}"
    clock = time.perf_counter
    seconds: dict[str, float] = {}
    started = clock()
    upload_id, parts = upload(s3, key, data)
    seconds["parts"], started = clock() - started, clock()
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
    )
    seconds["CompleteMultipartUpload"], started = clock() - started, clock()
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"]
    with (scratch / "object").open("wb") as out:
        while block := body.read(MiB):
            out.write(block)
    seconds["GET"], started = clock() - started, clock()
    (scratch / "object").unlink()
    s3.copy_object(Bucket=BUCKET, Key=key + ".copy", CopySource={"Bucket": BUCKET, "Key": key})
    seconds["CopyObject"], started = clock() - started, clock()
    part_copy(s3, key, key + ".parts", size)
    seconds["UploadPartCopy 64 MiB x 8 in flight"] = clock() - started
    s3.delete_objects(
        Bucket=BUCKET,
        Delete={"Objects": [{"Key": k} for k in (key, key + ".copy", key + ".parts")]},
    )
    return seconds


def steps(s3: Any, size: int, rounds: int, scratch: Path) -> None:
    for round_ in range(rounds):
        seconds = one_round(s3, size, scratch)
        parts = seconds.pop("parts")
        told = "; ".join(f"{step} {t:.2f} s ({t / parts:.2f}x)" for step, t in seconds.items())
        print(f"round {round_ + 1}: parts {parts:.2f} s; {told}", flush=True)


def conditional_writes(s3: Any) -> None:
    from botocore.exceptions import ClientError

    def answer(call: Callable[[], object]) -> str:
        try:
            call()
        except ClientError as exc:
            error, meta = exc.response["Error"], exc.response["ResponseMetadata"]
            return f"{error['Code']} {meta['HTTPStatusCode']}"
        return "accepted"

    s3.put_object(Bucket=BUCKET, Key="cond/one", Body=b"first")
    put = answer(
        lambda: s3.put_object(Bucket=BUCKET, Key="cond/one", Body=b"second", IfNoneMatch="*")
    )
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="cond/one")["UploadId"]
    etag = s3.upload_part(
        Bucket=BUCKET, Key="cond/one", UploadId=upload_id, PartNumber=1, Body=b"third"
    )["ETag"]
    completed = answer(
        lambda: s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key="cond/one",
            UploadId=upload_id,
            IfNoneMatch="*",
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]},
        )
    )
    kept = s3.get_object(Bucket=BUCKET, Key="cond/one")["Body"].read()
    print(
        f"If-None-Match: * on an existing key: PutObject {put}, CompleteMultipartUpload "
        f"{completed}; the object holds {kept!r}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    weed = Seaweed.start(BUCKET)
    try:
        s3 = client(weed.endpoint)
        with tempfile.TemporaryDirectory(prefix="pixdrop-bench-s3-steps-") as scratch:
            steps(s3, args.size_mib * MiB, args.rounds, Path(scratch))
        conditional_writes(s3)
    finally:
        weed.stop()


if __name__ == "__main__":
    main()
