"""The ``BlobStore`` contract (``Staging`` and ``Blobs``), run on every store.

Each contract test gets a ``store`` from the fixture, parametrized over the stores (today the
local directory; an S3 param joins it with the S3 store) and uses the ports only: no file
path. The local-only tests at the end check what the ports cannot say: the layout on disk,
which old data directories rely on, and that ``sync=False`` flushes nothing.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from pixdrop.models import Part, derived_key, new_id
from pixdrop.ports import BlobStore, DigestsInPlace
from pixdrop.storage import default_blob_store_url, open_blob_store
from pixdrop.storage.local import LocalStore

T = TypeVar("T")

#: How each store under test is opened, by fixture param. (The S3 store adds its own.)
OPENERS: dict[str, Callable[[Path], BlobStore]] = {
    "local": lambda tmp_path: open_blob_store(default_blob_store_url(tmp_path / "store")),
}


@pytest.fixture(params=sorted(OPENERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    opened = OPENERS[request.param](tmp_path)
    yield opened
    anyio.run(opened.close)


def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run one coroutine function to completion from a plain test function."""
    return anyio.run(function, *args)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def stream(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def collect(blocks: AsyncIterable[bytes]) -> bytes:
    return b"".join([block async for block in blocks])


async def staged(store: BlobStore, data: bytes, *pieces: bytes) -> tuple[str, str, list[Part]]:
    """Begin an upload and put *data* as its part 1 (sent as *pieces* if given)."""
    upload_id = new_id()
    token = await store.staging.begin(upload_id)
    part = await store.staging.put_part(
        upload_id, token, number=1, offset=0, data=stream(*(pieces or (data,)))
    )
    return upload_id, token, [part]


async def finished(store: BlobStore, data: bytes) -> tuple[str, str, str]:
    """An upload of *data*, finished: (upload id, token, staged key)."""
    upload_id, token, parts = await staged(store, data)
    return upload_id, token, await store.staging.finish(upload_id, token, parts)


async def kept(store: BlobStore, data: bytes) -> str:
    """*data* stored as a content blob (and its staging aborted); its key."""
    upload_id, token, _ = await finished(store, data)
    await store.staging.keep(upload_id, token, sha(data))
    await store.staging.abort(upload_id, token)
    return sha(data)


# --- Staging


def test_parts_in_any_order_make_one_object(store: BlobStore) -> None:
    async def go() -> None:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        world = await store.staging.put_part(
            upload_id, token, number=2, offset=6, data=stream(b"wor", b"ld")
        )
        hello = await store.staging.put_part(
            upload_id, token, number=1, offset=0, data=stream(b"hello ")
        )
        assert (world.start, world.end, world.number, world.sha256) == (6, 11, 2, sha(b"world"))
        assert (hello.start, hello.end, hello.number, hello.sha256) == (0, 6, 1, sha(b"hello "))
        key = await store.staging.finish(upload_id, token, [hello, world])
        assert await store.blobs.size(key) == 11
        assert await collect(store.blobs.open_range(key, 0, 11)) == b"hello world"
        assert await collect(store.blobs.open_range(key, 4, 8)) == b"o wo"

    run(go)


def test_parts_put_in_parallel(store: BlobStore) -> None:
    payload = os.urandom(8 * 300_000 + 17)
    size = 300_000
    receipts: dict[int, Part] = {}

    async def go() -> bytes:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)

        async def put(index: int) -> None:
            piece = payload[index * size : (index + 1) * size]
            blocks = [piece[i : i + 65536] for i in range(0, len(piece), 65536)]
            receipts[index] = await store.staging.put_part(
                upload_id, token, number=index + 1, offset=index * size, data=stream(*blocks)
            )

        async with anyio.create_task_group() as group:
            for index in reversed(range(9)):
                group.start_soon(put, index)
        parts = [receipts[index] for index in range(9)]
        key = await store.staging.finish(upload_id, token, parts)
        return await collect(store.blobs.open_range(key, 0, len(payload)))

    assert run(go) == payload
    for index, part in receipts.items():
        piece = payload[index * size : (index + 1) * size]
        assert (part.start, part.length, part.sha256) == (index * size, len(piece), sha(piece))


def test_receipt_of_a_big_part_in_many_blocks(store: BlobStore) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 123)
    pieces = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]

    async def go() -> tuple[Part, bytes]:
        upload_id, token, (part,) = await staged(store, payload, *pieces)
        key = await store.staging.finish(upload_id, token, [part])
        return part, await collect(store.blobs.open_range(key, 0, len(payload)))

    part, back = run(go)
    assert (part.start, part.end, part.number, part.sha256) == (0, len(payload), 1, sha(payload))
    assert back == payload


def test_an_empty_part_and_an_empty_object(store: BlobStore) -> None:
    async def go() -> None:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        part = await store.staging.put_part(upload_id, token, number=1, offset=0, data=stream())
        assert (part.start, part.end, part.sha256) == (0, 0, sha(b""))
        key = await store.staging.finish(upload_id, token, [])
        assert await store.blobs.size(key) == 0
        await store.staging.keep(upload_id, token, sha(b""))
        assert await store.blobs.size(sha(b"")) == 0

    run(go)


def test_re_putting_a_part_replaces_it(store: BlobStore) -> None:
    async def go() -> bytes:
        upload_id, token, _ = await staged(store, b"first try")
        again = await store.staging.put_part(
            upload_id, token, number=1, offset=0, data=stream(b"second go")
        )
        assert again.sha256 == sha(b"second go")
        key = await store.staging.finish(upload_id, token, [again])
        return await collect(store.blobs.open_range(key, 0, 100))

    assert run(go) == b"second go"


def test_observer_sees_every_byte_in_order(store: BlobStore) -> None:
    seen = hashlib.sha256()
    pieces = [os.urandom(70_000) for _ in range(40)]  # several write batches

    def observe(batch: Sequence[bytes]) -> None:
        for block in batch:
            seen.update(block)

    async def go() -> Part:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        return await store.staging.put_part(
            upload_id, token, number=1, offset=0, data=stream(*pieces), observe=observe
        )

    part = run(go)
    assert seen.hexdigest() == part.sha256 == sha(b"".join(pieces))


def test_a_body_that_raises_records_nothing_and_later_puts_work(store: BlobStore) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"half of it" * 200_000  # past one write batch
        raise ConnectionResetError("client went away")

    async def go() -> None:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        with pytest.raises(ConnectionResetError):
            await store.staging.put_part(upload_id, token, number=1, offset=0, data=broken())
        good = await store.staging.put_part(
            upload_id, token, number=1, offset=0, data=stream(b"all of it")
        )
        key = await store.staging.finish(upload_id, token, [good])
        assert await collect(store.blobs.open_range(key, 0, 10**7)) == b"all of it"

    run(go)


@pytest.mark.parametrize(
    "spans",
    [
        [(0, 4), (6, 10)],  # a gap
        [(1, 4)],  # not from 0
        [(0, 6), (4, 10)],  # overlapping
    ],
)
def test_finish_refuses_parts_with_gaps(store: BlobStore, spans: list[tuple[int, int]]) -> None:
    async def go() -> None:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        parts = [
            await store.staging.put_part(
                upload_id, token, number=n, offset=start, data=stream(b"x" * (end - start))
            )
            for n, (start, end) in enumerate(spans, 1)
        ]
        with pytest.raises(ValueError, match="contiguous"):
            await store.staging.finish(upload_id, token, parts)

    run(go)


def test_finish_drops_bytes_past_the_end_and_is_idempotent(store: BlobStore) -> None:
    async def go() -> None:
        upload_id, token, parts = await staged(store, b"0123456789")
        # A refused request's bytes past the end: written, never recorded.
        await store.staging.put_part(upload_id, token, number=2, offset=10, data=stream(b"junk"))
        key = await store.staging.finish(upload_id, token, parts)
        assert await store.staging.finish(upload_id, token, parts) == key
        assert await store.blobs.size(key) == 10
        assert await collect(store.blobs.open_range(key, 0, 100)) == b"0123456789"
        await store.staging.keep(upload_id, token, sha(b"0123456789"))
        assert await store.staging.finish(upload_id, token, parts) == key  # a completion rerun
        assert await collect(store.blobs.open_range(sha(b"0123456789"), 0, 100)) == b"0123456789"

    run(go)


def test_join_concatenates_the_sources_in_order(store: BlobStore) -> None:
    big = os.urandom(3 * 1024 * 1024 + 7)

    async def source(data: bytes, junk: bytes = b"") -> tuple[str, str, list[Part]]:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        parts = []
        for number, offset in enumerate(range(0, len(data), 1024 * 1024), 1):
            piece = data[offset : offset + 1024 * 1024]
            parts.append(
                await store.staging.put_part(
                    upload_id, token, number=number, offset=offset, data=stream(piece)
                )
            )
        if junk:  # unrecorded bytes past the end are not part of the source
            await store.staging.put_part(
                upload_id, token, number=len(parts) + 1, offset=len(data), data=stream(junk)
            )
        return upload_id, token, parts

    async def go() -> None:
        sources = [
            await source(b"tus ", b"####"),
            await source(b"partial "),
            await source(big, b"!!"),
            await source(b"uploads"),
        ]
        target = new_id()
        token = await store.staging.begin(target)
        key = await store.staging.join(target, token, sources)
        expected = b"tus partial " + big + b"uploads"
        assert await store.blobs.size(key) == len(expected)
        assert await collect(store.blobs.open_range(key, 0, len(expected))) == expected
        assert await store.staging.join(target, token, sources) == key  # idempotent
        assert await collect(store.blobs.open_range(key, 0, len(expected))) == expected
        await store.staging.keep(target, token, sha(expected))
        assert await store.blobs.size(sha(expected)) == len(expected)
        # The sources stay until aborted.
        first_id, first_token, first_parts = sources[0]
        first = await store.staging.finish(first_id, first_token, first_parts)
        assert await collect(store.blobs.open_range(first, 0, 100)) == b"tus "

    run(go)


def test_keep_is_idempotent_and_shares_identical_content(store: BlobStore) -> None:
    data = b"same bytes"
    key = sha(data)

    async def go() -> None:
        for _ in range(2):
            upload_id, token, _ = await finished(store, data)
            await store.staging.keep(upload_id, token, key)
            await store.staging.keep(upload_id, token, key)  # a retried completion
            await store.staging.abort(upload_id, token)
            await store.staging.keep(upload_id, token, key)  # staging gone, blob there
        assert await store.blobs.size(key) == len(data)
        assert await collect(store.blobs.open_range(key, 0, len(data))) == data
        assert await collect(store.blobs.open_range(key, 5, 7)) == b"by"

    run(go)


def test_abort_then_put_part_raises(store: BlobStore) -> None:
    async def go() -> None:
        upload_id, token, _ = await staged(store, b"some")
        await store.staging.abort(upload_id, token)
        await store.staging.abort(upload_id, token)  # nothing there: no error
        with pytest.raises(FileNotFoundError):
            await store.staging.put_part(upload_id, token, number=1, offset=0, data=stream(b"x"))
        with pytest.raises(FileNotFoundError):  # never begun
            await store.staging.put_part(new_id(), token, number=1, offset=0, data=stream(b"x"))

    run(go)


def test_stale_lists_only_old_ones(store: BlobStore) -> None:
    async def go() -> tuple[str, list[tuple[str, str]], list[tuple[str, str]]]:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        everything = await store.staging.stale(older_than=-1)
        assert (upload_id, token) in everything
        return upload_id, await store.staging.stale(older_than=3600), everything

    upload_id, old, _ = run(go)
    assert upload_id not in [found for found, _ in old]


def test_begin_is_idempotent(store: BlobStore) -> None:
    async def go() -> bytes:
        upload_id, token, parts = await staged(store, b"kept across a second begin")
        assert await store.staging.begin(upload_id) == token
        key = await store.staging.finish(upload_id, token, parts)
        return await collect(store.blobs.open_range(key, 0, 100))

    assert run(go) == b"kept across a second begin"


def test_appends_are_numbered_by_the_store(store: BlobStore) -> None:
    """Part number 0 is an append: parts at growing offsets that the store numbers itself."""

    async def go() -> bytes:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        first = await store.staging.put_part(
            upload_id, token, number=0, offset=0, data=stream(b"appended ")
        )
        second = await store.staging.put_part(
            upload_id, token, number=0, offset=first.end, data=stream(b"in order")
        )
        key = await store.staging.finish(upload_id, token, [first, second])
        return await collect(store.blobs.open_range(key, 0, 100))

    assert run(go) == b"appended in order"


def test_negative_part_numbers_are_refused(store: BlobStore) -> None:
    async def go() -> None:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        with pytest.raises(ValueError, match="part number"):
            await store.staging.put_part(upload_id, token, number=-1, offset=0, data=stream(b"x"))

    run(go)


# --- Blobs


def test_staged_and_content_keys_read_and_materialize(store: BlobStore) -> None:
    data = os.urandom(2 * 1024 * 1024 + 5)

    async def go() -> None:
        upload_id, token, key = await finished(store, data)
        content = sha(data)
        for readable in (key, content):
            if readable == content:
                await store.staging.keep(upload_id, token, content)
                await store.staging.abort(upload_id, token)
            assert await store.blobs.size(readable) == len(data)
            got = await collect(store.blobs.open_range(readable, 1000, 1024 * 1024 + 1000))
            assert got == data[1000 : 1024 * 1024 + 1000]
            assert (
                await collect(store.blobs.open_range(readable, len(data) - 3, len(data)))
                == (data[-3:])
            )
            async with store.blobs.materialize(readable) as path:
                assert path.read_bytes() == data

    run(go)


def test_digests_in_place_where_supported(store: BlobStore) -> None:
    blobs = store.blobs
    if not isinstance(blobs, DigestsInPlace):
        pytest.skip("this store has no DigestsInPlace capability")
    data = os.urandom(5 * 1024 * 1024 + 7)

    async def go() -> None:
        upload_id, token, key = await finished(store, data)
        assert await blobs.sha256(key, len(data)) == sha(data)
        assert await blobs.sha256(key, 7) == sha(data[:7])
        await store.staging.keep(upload_id, token, sha(data))
        assert await blobs.sha256(sha(data), len(data)) == sha(data)

    run(go)


def test_derived_blobs_replace_atomically_and_die_with_their_source(store: BlobStore) -> None:
    async def go() -> None:
        key = await kept(store, b"source bytes")
        thumb = derived_key(key, "w256-h256-contain-q80.webp")
        other = derived_key(key, "original-nogps.jpeg")
        await store.blobs.put_small(thumb, b"first")
        await store.blobs.put_small(thumb, b"second rendition")  # replaced whole
        await store.blobs.put_small(other, b"x")
        assert await store.blobs.size(thumb) == len(b"second rendition")
        assert await collect(store.blobs.open_range(thumb, 7, 16)) == b"rendition"
        async with store.blobs.materialize(thumb) as path:
            assert path.read_bytes() == b"second rendition"
        await store.blobs.delete(key)
        await store.blobs.delete(key)  # absent: no error
        for gone in (key, thumb, other):
            with pytest.raises(FileNotFoundError):
                await store.blobs.size(gone)

    run(go)


def test_deleting_a_derived_blob_keeps_its_source(store: BlobStore) -> None:
    async def go() -> None:
        key = await kept(store, b"the source")
        thumb = derived_key(key, "w64-hauto-contain-q80.webp")
        await store.blobs.put_small(thumb, b"t")
        await store.blobs.delete(thumb)
        with pytest.raises(FileNotFoundError):
            await store.blobs.size(thumb)
        assert await store.blobs.size(key) == len(b"the source")

    run(go)


def test_missing_keys_raise_file_not_found(store: BlobStore) -> None:
    missing = [sha(b"never stored"), derived_key(sha(b"never stored"), "thumb.webp")]

    async def go() -> None:
        for key in missing:
            with pytest.raises(FileNotFoundError):
                await store.blobs.size(key)
            with pytest.raises(FileNotFoundError):
                await collect(store.blobs.open_range(key, 0, 10))
            with pytest.raises(FileNotFoundError):
                async with store.blobs.materialize(key):
                    pass
        upload_id, token, key = await finished(store, b"then aborted")
        await store.staging.abort(upload_id, token)
        with pytest.raises(FileNotFoundError):
            await store.blobs.size(key)
        with pytest.raises(FileNotFoundError):  # nothing staged to keep
            await store.staging.keep(upload_id, token, sha(b"then aborted"))

    run(go)


BAD_IDS = ["../../etc/passwd", "a/b", "", "x" * 22 + "/", "x" * 21, ".." + "x" * 20]
BAD_KEYS = [
    "../etc/passwd",
    "",
    "A" * 64,
    "a" * 63,
    "a" * 64 + "/../" + "b" * 64,
    "a" * 64 + "/..",
    "a" * 64 + "/.hidden",
    "a" * 64 + "/sub/dir",
    "a" * 64 + "/",
    "a" * 63 + "/thumb.webp",
    "staging/../blobs",
    "staging/" + "x" * 21,
]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_invalid_upload_ids_are_refused(store: BlobStore, bad: str) -> None:
    staging = store.staging
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: staging.begin(bad),
        lambda: staging.put_part(bad, "", number=1, offset=0, data=stream(b"x")),
        lambda: staging.finish(bad, "", []),
        lambda: staging.join(new_id(), "", [(bad, "", [])]),
        lambda: staging.keep(bad, "", sha(b"x")),
        lambda: staging.abort(bad, ""),
    ]

    async def go() -> None:
        for call in calls:
            with pytest.raises(ValueError, match="upload id"):
                await call()

    run(go)


@pytest.mark.parametrize("bad", BAD_KEYS)
def test_invalid_keys_are_refused(store: BlobStore, bad: str) -> None:
    blobs = store.blobs

    async def materialize() -> None:
        async with blobs.materialize(bad):
            pass

    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: blobs.size(bad),
        lambda: collect(blobs.open_range(bad, 0, 1)),
        lambda: blobs.delete(bad),
        lambda: blobs.put_small(bad, b"x"),
        materialize,
    ]

    async def go() -> None:
        for call in calls:
            with pytest.raises(ValueError, match="key"):
                await call()

    run(go)


def test_only_derived_keys_are_put_and_only_content_keys_kept(store: BlobStore) -> None:
    async def go() -> None:
        with pytest.raises(ValueError, match="key"):  # put_small never overwrites an original
            await store.blobs.put_small(sha(b"original"), b"x")
        upload_id, token, key = await finished(store, b"original")
        with pytest.raises(ValueError, match="key"):
            await store.blobs.put_small(key, b"x")
        for bad in (derived_key(sha(b"original"), "thumb.webp"), key, "../x"):
            with pytest.raises(ValueError, match="key"):
                await store.staging.keep(upload_id, token, bad)

    run(go)


# --- Local store only: layout on disk, durability switch, URLs, the deprecated class.


def test_an_old_data_directory_is_read_in_place(tmp_path: Path) -> None:
    data, rendition = b"stored by an older pixdrop", b"its thumbnail"
    key = sha(data)
    blob = tmp_path / "blobs" / key[:2] / key[2:4] / key
    blob.parent.mkdir(parents=True)
    blob.write_bytes(data)
    thumb = tmp_path / "derived" / key[:2] / key[2:4] / key / "w256-hauto-contain-q80.webp"
    thumb.parent.mkdir(parents=True)
    thumb.write_bytes(rendition)
    upload_id = new_id()
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / upload_id).write_bytes(b"in progress")
    store = open_blob_store(str(tmp_path))

    async def go() -> None:
        assert await collect(store.blobs.open_range(key, 0, 100)) == data
        assert await store.blobs.size(derived_key(key, thumb.name)) == len(rendition)
        async with store.blobs.materialize(key) as path:
            assert path == blob
        token = await store.staging.begin(upload_id)
        assert token == ""
        part = await store.staging.put_part(
            upload_id, token, number=2, offset=11, data=stream(b", resumed")
        )
        first = Part(0, 11, sha(b"in progress"), 1)
        staged_key = await store.staging.finish(upload_id, token, [first, part])
        assert staged_key == f"staging/{upload_id}"
        async with store.blobs.materialize(staged_key) as path:
            assert path == tmp_path / "staging" / upload_id  # in place, no copy
        whole = sha(b"in progress, resumed")
        await store.staging.keep(upload_id, token, whole)
        kept = tmp_path / "blobs" / whole[:2] / whole[2:4] / whole
        assert kept.read_bytes() == b"in progress, resumed"
        assert kept.stat().st_ino == (tmp_path / "staging" / upload_id).stat().st_ino
        assert stat.S_IMODE(kept.stat().st_mode) == 0o444
        await store.blobs.put_small(derived_key(whole, "original-nogps.jpeg"), b"g")
        assert (
            tmp_path / "derived" / whole[:2] / whole[2:4] / whole / "original-nogps.jpeg"
        ).exists()
        await store.staging.abort(upload_id, token)
        assert not (tmp_path / "staging" / upload_id).exists()
        assert kept.exists()

    run(go)


def test_stale_goes_by_modification_time(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    old, fresh = new_id(), new_id()

    async def go() -> list[tuple[str, str]]:
        await store.staging.begin(old)
        await store.staging.begin(fresh)
        hour_ago = os.stat(tmp_path / "staging" / old).st_mtime - 7200
        os.utime(tmp_path / "staging" / old, (hour_ago, hour_ago))
        (tmp_path / "staging" / ".not-an-upload").touch()
        return await store.staging.stale(older_than=3600)

    assert run(go) == [(old, "")]


def test_a_kept_upload_takes_no_more_parts(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)

    async def go() -> None:
        upload_id, token, _ = await finished(store, b"final bytes")
        await store.staging.keep(upload_id, token, sha(b"final bytes"))
        with pytest.raises(PermissionError, match="kept"):
            await store.staging.put_part(upload_id, token, number=1, offset=0, data=stream(b"X"))
        assert await collect(store.blobs.open_range(sha(b"final bytes"), 0, 99)) == b"final bytes"

    run(go)


def _full_cycle(store: BlobStore) -> Callable[[], Awaitable[None]]:
    async def go() -> None:
        upload_id, token, parts = await staged(store, b"durable bytes")
        await store.staging.put_part(upload_id, token, number=2, offset=13, data=stream(b"junk"))
        await store.staging.finish(upload_id, token, parts)  # cuts the junk
        target = new_id()
        await store.staging.join(
            target, await store.staging.begin(target), [(upload_id, "", parts)]
        )
        await store.staging.keep(upload_id, token, sha(b"durable bytes"))
        await store.blobs.put_small(derived_key(sha(b"durable bytes"), "thumb.webp"), b"t")

    return go


def _count_syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def fdatasync(fd: int) -> None:
        calls.append("fdatasync")
        real_fdatasync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    return calls


def test_sync_off_flushes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_syncs(monkeypatch)
    run(_full_cycle(open_blob_store(default_blob_store_url(tmp_path / "on"))))
    assert "fsync" in calls
    assert "fdatasync" in calls
    calls.clear()
    run(_full_cycle(open_blob_store(default_blob_store_url(tmp_path / "off"), sync=False)))
    assert calls == []


def test_begin_not_durable_skips_the_directory_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalStore(tmp_path)
    calls = _count_syncs(monkeypatch)
    run(store.staging.begin, new_id())
    assert calls == ["fsync"]
    calls.clear()

    async def begin_volatile() -> None:
        await store.staging.begin(new_id(), durable=False)

    run(begin_volatile)
    assert calls == []


def test_urls(tmp_path: Path) -> None:
    weird = tmp_path / "a dir with spaces & ü"
    url = default_blob_store_url(weird)
    assert url.startswith("file:///")
    opened = open_blob_store(url)
    assert isinstance(opened, LocalStore)
    assert opened.root == weird
    assert (weird / "staging").is_dir()
    assert isinstance(open_blob_store(str(tmp_path / "plain")), LocalStore)
    assert isinstance(open_blob_store(f"file://localhost{tmp_path}/host"), LocalStore)
    with pytest.raises(ValueError, match=r"not supported yet.*file:///"):
        open_blob_store("s3://bucket/prefix")
    for bad in ("http://example.com/x", "gs://bucket", "file://elsewhere/x", "file:relative", ""):
        with pytest.raises(ValueError, match="file:///"):
            open_blob_store(bad)
