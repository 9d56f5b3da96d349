"""BlobStore contract, run on every blob store backend (today: local disk)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import anyio
import pytest

from pixdrop.models import new_id
from pixdrop.ports import BlobStore, DigestsStaging, LocalFiles
from pixdrop.storage.local import LocalBlobStore


@pytest.fixture(params=["local"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def run(fn: Callable[[], object]) -> object:
    return anyio.run(fn)  # type: ignore[arg-type]


async def blocks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def collect(it: AsyncIterator[bytes]) -> bytes:
    return b"".join([b async for b in it])


def test_chunks_written_out_of_order_land_at_their_offsets(store: BlobStore) -> None:
    uid = new_id()

    async def go() -> bytes:
        await store.create_staging(uid)
        assert await store.write_at(uid, 6, blocks(b"world")) == 5
        assert await store.write_at(uid, 0, blocks(b"hel", b"lo ")) == 6
        return await collect(store.read_staging(uid, 0, 11))

    assert run(go) == b"hello world"


def test_big_write_in_many_blocks(store: BlobStore) -> None:
    uid = new_id()
    payload = os.urandom(3 * 1024 * 1024 + 123)
    pieces = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]

    async def go() -> bytes:
        await store.create_staging(uid)
        await store.write_at(uid, 0, blocks(*pieces))
        return await collect(store.read_staging(uid, 0, len(payload)))

    assert run(go) == payload


def test_write_to_missing_staging_raises(store: BlobStore) -> None:
    async def go() -> None:
        await store.write_at(new_id(), 0, blocks(b"x"))

    with pytest.raises(FileNotFoundError):
        run(go)


def test_commit_is_idempotent_and_shares_identical_content(store: BlobStore) -> None:
    a, b = new_id(), new_id()
    data = b"same bytes"
    key = hashlib.sha256(data).hexdigest()

    async def go() -> tuple[int, bytes, bytes]:
        for uid in (a, b):
            await store.create_staging(uid)
            await store.write_at(uid, 0, blocks(data))
            await store.commit(uid, key)
            await store.commit(uid, key)  # a retried completion
            await store.discard(uid)
        await store.commit(a, key)  # staging gone, blob there: nothing to do
        return (
            await store.blob_size(key),
            await collect(store.read(key, 0, len(data))),
            await collect(store.read(key, 5, 7)),
        )

    assert run(go) == (len(data), data, b"by")


def test_delete_and_missing_blob(store: BlobStore) -> None:
    key = hashlib.sha256(b"gone").hexdigest()
    uid = new_id()

    async def go() -> None:
        await store.create_staging(uid)
        await store.write_at(uid, 0, blocks(b"gone"))
        await store.commit(uid, key)
        await store.delete(key)
        await store.delete(key)
        await store.blob_size(key)

    with pytest.raises(FileNotFoundError):
        run(go)


def test_an_aborted_stream_propagates(store: BlobStore) -> None:
    uid = new_id()

    async def broken() -> AsyncIterator[bytes]:
        yield b"part"
        raise ConnectionResetError("client went away")

    async def go() -> None:
        await store.create_staging(uid)
        await store.write_at(uid, 0, broken())

    with pytest.raises(ConnectionResetError):
        run(go)


@pytest.mark.parametrize("bad", ["../../etc/passwd", "a/b", "", "x" * 22 + "/"])
def test_keys_and_ids_cannot_escape(store: BlobStore, bad: str) -> None:
    async def go() -> None:
        await store.create_staging(bad)

    with pytest.raises(ValueError, match="not an upload id"):
        run(go)

    async def read() -> None:
        await store.blob_size(bad)

    with pytest.raises(ValueError, match="not a blob key"):
        run(read)


def test_staging_ids_lists_only_old_ones(store: BlobStore) -> None:
    uid = new_id()

    async def go() -> tuple[list[str], list[str]]:
        await store.create_staging(uid)
        return await store.staging_ids(older_than=3600), await store.staging_ids(older_than=-1)

    old, everything = run(go)  # type: ignore[misc]
    assert uid not in old
    assert uid in everything


def test_observer_sees_every_byte_in_order(store: BlobStore) -> None:
    uid = new_id()
    seen = hashlib.sha256()
    pieces = [os.urandom(70_000) for _ in range(40)]  # several write batches

    def observe(blocks: Sequence[bytes]) -> None:
        for block in blocks:
            seen.update(block)

    async def go() -> None:
        await store.create_staging(uid)
        await store.write_at(uid, 0, blocks(*pieces), observe)

    run(go)
    assert seen.hexdigest() == hashlib.sha256(b"".join(pieces)).hexdigest()


def test_digest_staging_where_supported(store: BlobStore) -> None:
    if not isinstance(store, DigestsStaging):
        pytest.skip("this store has no digest_staging capability")
    uid = new_id()
    payload = os.urandom(5 * 1024 * 1024 + 7)

    async def go() -> tuple[str, str]:
        await store.create_staging(uid)
        await store.write_at(uid, 0, blocks(payload))
        assert isinstance(store, DigestsStaging)
        return await store.digest_staging(uid, len(payload)), await store.digest_staging(uid, 7)

    assert run(go) == (hashlib.sha256(payload).hexdigest(), hashlib.sha256(payload[:7]).hexdigest())


def test_derived_blobs_live_and_die_with_their_source(store: BlobStore) -> None:
    uid, data = new_id(), b"source bytes"
    key = hashlib.sha256(data).hexdigest()
    thumb, other = f"{key}/w256-h256-contain-q80.webp", f"{key}/original-nogps.jpeg"

    async def go() -> None:
        await store.create_staging(uid)
        await store.write_at(uid, 0, blocks(data))
        await store.commit(uid, key)
        await store.put(thumb, b"first")
        await store.put(thumb, b"second rendition")  # replaced whole
        await store.put(other, b"x")
        assert await store.blob_size(thumb) == len(b"second rendition")
        assert await collect(store.read(thumb, 7, 16)) == b"rendition"
        await store.delete(key)
        for gone in (key, thumb, other):
            with pytest.raises(FileNotFoundError):
                await store.blob_size(gone)

    run(go)


@pytest.mark.parametrize(
    "bad",
    [
        "a" * 64 + "/../" + "b" * 64,
        "a" * 64 + "/..",
        "a" * 64 + "/.hidden",
        "a" * 64 + "/sub/dir",
        "a" * 64 + "/",
        "a" * 63 + "/thumb.webp",
        "a" * 64,  # a content key is not a derived one: put never overwrites an original
    ],
)
def test_derived_keys_cannot_escape(store: BlobStore, bad: str) -> None:
    async def go() -> None:
        await store.put(bad, b"x")

    with pytest.raises(ValueError, match="key"):
        run(go)


def test_local_files_capability(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path)
    assert isinstance(store, LocalFiles)
    uid = new_id()
    assert store.staging_path(uid) == tmp_path / "staging" / uid
    key = "ab" * 32
    assert store.blob_path(key) == tmp_path / "blobs" / "ab" / "ab" / key
    with pytest.raises(ValueError, match="key"):
        store.blob_path("../etc/passwd")


def test_truncate_drops_unrecorded_bytes_past_the_end(store: BlobStore) -> None:
    uid = new_id()

    async def go() -> bytes:
        await store.create_staging(uid)
        await store.write_at(uid, 0, blocks(b"0123456789abcdef"))
        await store.truncate_staging(uid, 10)
        await store.commit(uid, hashlib.sha256(b"0123456789").hexdigest())
        return await collect(store.read(hashlib.sha256(b"0123456789").hexdigest(), 0, 100))

    assert run(go) == b"0123456789"


def test_concat_joins_the_heads_of_staging_objects_in_order(store: BlobStore) -> None:
    pieces = {new_id(): data for data in (b"tus ", b"partial ", b"uploads" + b"#" * 5)}
    sizes = {uid: len(data.rstrip(b"#")) for uid, data in pieces.items()}
    target = new_id()
    big = os.urandom(3 * 1024 * 1024 + 7)
    big_id = new_id()

    async def go() -> tuple[bytes, bytes]:
        for uid, data in pieces.items():
            await store.create_staging(uid)
            await store.write_at(uid, 0, blocks(data))
        await store.create_staging(big_id)
        await store.write_at(big_id, 0, blocks(big))
        await store.create_staging(target)
        await store.write_at(target, 0, blocks(b"stale bytes that must go" * 10))
        order = list(pieces)
        await store.concat_staging(target, [(uid, sizes[uid]) for uid in order])
        joined = await collect(store.read_staging(target, 0, 10_000))
        await store.concat_staging(target, [(order[0], 4), (big_id, len(big))])
        return joined, await collect(store.read_staging(target, 0, 4 * 1024 * 1024))

    joined, with_big = run(go)  # type: ignore[misc]
    assert joined == b"tus partial uploads"
    assert with_big == b"tus " + big
