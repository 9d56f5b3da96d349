"""The ``BlobStore`` contract (``Staging`` and ``Blobs``), run on every store.

Each contract test gets a ``store`` from the fixture, parametrized over the stores (the local
directory, and an S3 bucket on a SeaweedFS the session starts: ``s3_url``, a fresh prefix per
test) and uses the ports only: no file path. Parts other than an upload's last are at least the
store's ``min_part_size`` (5 MiB on S3, as S3 demands). The local-only tests check what the
ports cannot say: the layout on disk, which old data directories rely on, and that
``sync=False`` flushes nothing; the S3-only tests the bucket's side (part sizes, tails, receipts
that another node finishes from).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
import shutil
import stat
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from pixdrop.models import Part, derived_key, new_id
from pixdrop.ports import BlobStore, DigestsInPlace, KeptContent
from pixdrop.storage import default_blob_store_url, open_blob_store
from pixdrop.storage.local import LocalStore
from pixdrop.storage.s3 import S3Location, S3Store
from pixdrop.storage.s3_client import part_size_for

T = TypeVar("T")

MiB = 1024 * 1024


def fresh_prefix(s3_url: str) -> str:
    """*s3_url* with a prefix of its own (one per test: nothing seen from other tests)."""
    base, _, query = s3_url.partition("?")
    return f"{base}/{secrets.token_hex(6)}?{query}"


#: How each store under test is opened, by fixture param, from (tmp_path, request).
OPENERS: dict[str, Callable[[Path, pytest.FixtureRequest], BlobStore]] = {
    "local": lambda tmp_path, _: open_blob_store(default_blob_store_url(tmp_path / "store")),
    "s3": lambda tmp_path, request: open_blob_store(
        fresh_prefix(request.getfixturevalue("s3_url")), scratch=tmp_path / "scratch"
    ),
}


@pytest.fixture(params=sorted(OPENERS))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BlobStore]:
    opened = OPENERS[request.param](tmp_path, request)
    yield opened
    anyio.run(opened.close)


def chunk(store: BlobStore, at_least: int) -> int:
    """A part size the store takes for a part that is not the last: *at_least* bytes, or the
    store's minimum if that is more (5 MiB on S3)."""
    return max(at_least, int(getattr(store.staging, "min_part_size", 1)))


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
        size = chunk(store, 6)
        first = b"hello ".rjust(size, b".")
        world = await store.staging.put_part(
            upload_id, token, number=2, offset=size, data=stream(b"wor", b"ld")
        )
        hello = await store.staging.put_part(
            upload_id, token, number=1, offset=0, data=stream(first)
        )
        assert (world.start, world.end, world.number, world.sha256) == (
            size,
            size + 5,
            2,
            sha(b"world"),
        )
        assert (hello.start, hello.end, hello.number, hello.sha256) == (0, size, 1, sha(first))
        key = await store.staging.finish(upload_id, token, [hello, world])
        assert await store.blobs.size(key) == size + 5
        assert await collect(store.blobs.open_range(key, 0, size + 5)) == first + b"world"
        assert await collect(store.blobs.open_range(key, size - 2, size + 2)) == b"o wo"

    run(go)


def test_parts_put_in_parallel(store: BlobStore) -> None:
    size = 300_000
    receipts: dict[int, Part] = {}

    size = chunk(store, size)
    payload = os.urandom(8 * size + 17)

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
    """Receipts that leave a gap or overlap are refused before the store is asked anything
    (the receipts here are made up: S3 would refuse such parts when they are put)."""

    async def go() -> None:
        upload_id, token, _ = await staged(store, b"x" * 4)
        parts = [
            Part(start, end, sha(b"x" * (end - start)), n)
            for n, (start, end) in enumerate(spans, 1)
        ]
        with pytest.raises(ValueError, match="contiguous"):
            await store.staging.finish(upload_id, token, parts)

    run(go)


def test_finish_drops_bytes_past_the_end_and_is_idempotent(store: BlobStore) -> None:
    data = (b"0123456789" * chunk(store, 10))[: chunk(store, 10)]

    async def go() -> None:
        upload_id, token, parts = await staged(store, data)
        # A refused request's bytes past the end: written, never recorded.
        await store.staging.put_part(
            upload_id, token, number=2, offset=len(data), data=stream(b"junk")
        )
        key = await store.staging.finish(upload_id, token, parts)
        assert await store.staging.finish(upload_id, token, parts) == key
        assert await store.blobs.size(key) == len(data)
        assert await collect(store.blobs.open_range(key, 0, len(data) + 100)) == data
        await store.staging.keep(upload_id, token, sha(data))
        assert await store.staging.finish(upload_id, token, parts) == key  # a completion rerun
        assert await collect(store.blobs.open_range(sha(data), 0, len(data) + 100)) == data

    run(go)


def test_join_concatenates_the_sources_in_order(store: BlobStore) -> None:
    size = chunk(store, MiB)
    big = os.urandom(3 * size + 7)

    async def source(data: bytes, junk: bytes = b"") -> tuple[str, str, list[Part]]:
        upload_id = new_id()
        token = await store.staging.begin(upload_id)
        parts = []
        for number, offset in enumerate(range(0, len(data), size), 1):
            piece = data[offset : offset + size]
            parts.append(
                await store.staging.put_part(
                    upload_id, token, number=number, offset=offset, data=stream(piece)
                )
            )
        # Unrecorded bytes past the end are not part of the source: a chunk past the last,
        # or (one part) a refused append.
        if junk and len(parts) > 1:
            await store.staging.put_part(
                upload_id, token, number=len(parts) + 1, offset=len(parts) * size,
                data=stream(junk),
            )  # fmt: skip
        elif junk:
            await store.staging.put_part(
                upload_id, token, number=0, offset=len(data), data=stream(junk)
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


def test_kept_as_names_the_blob_a_keep_made(store: BlobStore) -> None:
    """What freeing an upload whose completion died after ``keep`` relies on (KeptContent)."""
    assert isinstance(store.staging, KeptContent)
    data = b"kept, then the process died"

    async def go() -> None:
        upload_id, token, _ = await finished(store, data)
        assert await store.staging.kept_as(upload_id, token) is None  # finished, not kept
        await store.staging.keep(upload_id, token, sha(data))
        assert await store.staging.kept_as(upload_id, token) == sha(data)
        await store.blobs.delete(sha(data))  # the blob went (no image named it)
        assert await store.staging.kept_as(upload_id, token) is None
        await store.staging.abort(upload_id, token)
        assert await store.staging.kept_as(upload_id, token) is None
        assert await store.staging.kept_as(new_id(), token) is None  # nothing staged

    run(go)


def test_keep_is_idempotent_and_shares_identical_content(store: BlobStore) -> None:
    data = b"same bytes"
    key = sha(data)

    async def go() -> list[bool]:
        stored = []  # whether each keep stored the blob: only the very first
        for _ in range(2):
            upload_id, token, _ = await finished(store, data)
            stored.append(await store.staging.keep(upload_id, token, key))
            stored.append(await store.staging.keep(upload_id, token, key))  # a retried completion
            await store.staging.abort(upload_id, token)
            # staging gone, blob there
            stored.append(await store.staging.keep(upload_id, token, key))
        assert await store.blobs.size(key) == len(data)
        assert await collect(store.blobs.open_range(key, 0, len(data))) == data
        assert await collect(store.blobs.open_range(key, 5, 7)) == b"by"
        return stored

    assert run(go) == [True, False, False, False, False, False]


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


# --- Readiness


def test_ping_answers_while_the_store_does(store: BlobStore) -> None:
    run(store.ping)
    run(kept, store, b"still answering")
    run(store.ping)


def _unreachable(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> BlobStore:
    """A store of *kind* that cannot answer: its directory removed; a bucket that is not
    there (opened without ``open_blob_store``'s check, as if it went away after start)."""
    if kind == "local":
        local = LocalStore(tmp_path / "gone")
        shutil.rmtree(tmp_path / "gone")
        return local
    url = str(request.getfixturevalue("s3_url"))
    rest = url.removeprefix("s3://").partition("/")[2]
    return S3Store(S3Location.parse(f"s3://missing-{secrets.token_hex(4)}/{rest}"))


@pytest.mark.parametrize("kind", sorted(OPENERS))
def test_ping_raises_os_error_when_the_store_cannot_answer(
    kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    broken = _unreachable(kind, tmp_path, request)
    try:
        with pytest.raises(OSError, match="blob store"):
            run(broken.ping)
    finally:
        run(broken.close)


# --- Local store only (not parametrized): layout on disk, durability switch, URLs.


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


def test_appends_in_order_get_prefix_receipts_chunks_their_own(tmp_path: Path) -> None:
    """On local disk an append that continues the upload's bytes in order is hashed once: its
    receipt is the sha256 of the upload's bytes up to its end. A chunk keeps the sha256 of
    its own bytes (its client is told it), and the whole hash is known either way."""
    store = LocalStore(tmp_path)
    data = os.urandom(3000)

    async def go() -> None:
        appended = new_id()
        token = await store.staging.begin(appended)
        parts = []
        for start in range(0, 3000, 1000):
            parts.append(
                await store.staging.put_part(
                    appended, token, number=0, offset=start, data=stream(data[start : start + 1000])
                )
            )
        assert [p.sha256 for p in parts] == [sha(data[:end]) for end in (1000, 2000, 3000)]
        assert store.staging.known_sha256(appended, parts) == sha(data)

        chunked = new_id()
        token = await store.staging.begin(chunked)
        parts = []
        for number, start in enumerate(range(0, 3000, 1000), start=1):
            parts.append(
                await store.staging.put_part(
                    chunked,
                    token,
                    number=number,
                    offset=start,
                    data=stream(data[start : start + 1000]),
                )
            )
        assert [p.sha256 for p in parts] == [sha(data[s : s + 1000]) for s in (0, 1000, 2000)]
        assert store.staging.known_sha256(chunked, parts) == sha(data)

        gap = new_id()  # not in order: no running hash to continue, the part's own sha256
        token = await store.staging.begin(gap)
        late = await store.staging.put_part(
            gap, token, number=0, offset=1000, data=stream(data[1000:2000])
        )
        assert late.sha256 == sha(data[1000:2000])

    run(go)


def test_begin_not_durable_leaves_the_file_to_the_first_write(tmp_path: Path) -> None:
    """A volatile begin creates nothing (the first write does, in the hop that writes); an
    abort before any write leaves nothing to resurrect; a durable begin creates the file."""
    store = LocalStore(tmp_path)
    staging = tmp_path / "staging"

    async def go() -> None:
        first = new_id()
        await store.staging.begin(first, durable=False)
        assert not (staging / first).exists()
        part = await store.staging.put_part(first, "", number=0, offset=0, data=stream(b"abc"))
        assert (staging / first).read_bytes() == b"abc"
        assert await store.staging.finish(first, "", [part]) == f"staging/{first}"

        empty = new_id()  # an empty body: the last write still creates the file
        await store.staging.begin(empty, durable=False)
        part = await store.staging.put_part(empty, "", number=0, offset=0, data=stream(b""))
        assert part.length == 0
        assert (staging / empty).exists()

        gone = new_id()
        await store.staging.begin(gone, durable=False)
        await store.staging.abort(gone, "")
        with pytest.raises(FileNotFoundError):
            await store.staging.put_part(gone, "", number=0, offset=0, data=stream(b"late"))
        assert not (staging / gone).exists()

        kept = new_id()  # a body cut short is kept after all: begun again, durably
        await store.staging.begin(kept, durable=False)
        await store.staging.begin(kept)
        assert (staging / kept).exists()
        await store.staging.abort(kept, "")
        with pytest.raises(FileNotFoundError):
            await store.staging.put_part(kept, "", number=0, offset=0, data=stream(b"late"))

    run(go)


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
    for bad in ("http://example.com/x", "gs://bucket", "file://elsewhere/x", "file:relative", ""):
        with pytest.raises(ValueError, match="file:///"):
            open_blob_store(bad)


# --- S3 store only: part sizes, tails, receipts another node finishes from, URLs.


@pytest.fixture
def s3(s3_url: str, tmp_path: Path) -> Iterator[S3Store]:
    """An S3 store whose appends are cut into parts of 5 MiB (S3's minimum)."""
    opened = S3Store.open(fresh_prefix(s3_url) + "&part_size=5MiB", scratch=tmp_path / "scratch")
    yield opened
    anyio.run(opened.close)


def another_node(s3: S3Store, tmp_path: Path) -> S3Store:
    """A second store on the same bucket and prefix: another process or node."""
    return S3Store(s3.location, scratch=tmp_path / "other")


async def never_read() -> AsyncIterator[bytes]:
    raise AssertionError("the body was read")
    yield b""  # pragma: no cover


async def parts_of(s3: S3Store, upload_id: str, token: str) -> list[tuple[int, int]]:
    """(number, size) of the parts S3 holds for the upload (a test may ask; finish never)."""
    answer = await s3.bucket.call(
        s3.bucket.client.list_parts,
        Key=s3.bucket.key(f"staging/{upload_id}"),
        UploadId=token.rsplit(":", 1)[1],
    )
    return [(part["PartNumber"], part["Size"]) for part in answer.get("Parts", [])]


def test_s3_small_chunks_are_refused_before_a_byte_is_read(s3: S3Store) -> None:
    assert s3.staging.min_part_size == 5 * MiB

    async def go() -> None:
        upload_id = new_id()
        token = await s3.staging.begin(upload_id)
        for number, offset in [(2, MiB), (3, 8 * MiB), (2, 5 * MiB + 1 - 2)]:
            with pytest.raises(ValueError, match=r"at least 5242880 bytes \(5 MiB\)"):
                await s3.staging.put_part(
                    upload_id, token, number=number, offset=offset, data=never_read()
                )
        with pytest.raises(ValueError, match="part number 1 is at offset 0"):
            await s3.staging.put_part(upload_id, token, number=1, offset=9, data=never_read())
        # A last part under 5 MiB is fine; so is a single small part.
        first = await s3.staging.put_part(
            upload_id, token, number=1, offset=0, data=stream(b"a" * 5 * MiB)
        )
        last = await s3.staging.put_part(
            upload_id, token, number=2, offset=5 * MiB, data=stream(b"end")
        )
        key = await s3.staging.finish(upload_id, token, [first, last])
        assert await s3.blobs.size(key) == 5 * MiB + 3
        # Receipts claiming a small part that is not the last are refused at finish.
        forged = [Part(0, 10, sha(b"x"), 1, ""), Part(10, 20, sha(b"y"), 2, "2:abc")]
        with pytest.raises(ValueError, match="at least 5242880"):
            await s3.staging.finish(new_id(), token, forged)

    run(go)


def test_local_staging_takes_parts_of_any_size(tmp_path: Path) -> None:
    assert LocalStore(tmp_path).local_staging.min_part_size == 1


def test_s3_part_size_bounds_the_number_of_parts() -> None:
    assert part_size_for(0) == 5 * MiB
    assert part_size_for(4 * 1024 * MiB) == 5 * MiB
    for size in (50 * 1024 * MiB, 100 * 1024 * MiB + 1, 5 * 1024**4):
        part = part_size_for(size)
        assert part % MiB == 0
        assert part * 10_000 >= size > (part - MiB) * 10_000
    url = "s3://bucket/p?endpoint_url=http://127.0.0.1:1&max_size=100GiB"
    assert S3Location.parse(url).part_size == part_size_for(100 * 1024 * MiB) > 8 * MiB
    assert S3Location.parse("s3://bucket").part_size == 8 * MiB


def test_s3_appends_make_equal_parts_and_stop_at_10000(s3: S3Store) -> None:
    data = os.urandom(23 * MiB + 11)
    cuts = [0, 3 * MiB, 3 * MiB + 1, 9 * MiB, 16 * MiB - 5, 16 * MiB - 5, 23 * MiB + 11]

    async def go() -> None:
        upload_id = new_id()
        token = await s3.staging.begin(upload_id)
        receipts = []
        for start, end in itertools.pairwise(cuts):
            part = await s3.staging.put_part(
                upload_id, token, number=0, offset=start, data=stream(data[start:end])
            )
            assert (part.start, part.end, part.sha256) == (start, end, sha(data[start:end]))
            if part.length:
                receipts.append(part)
        # Four full parts of 5 MiB went up as the bytes came; 3 MiB + 11 wait in a tail.
        assert await parts_of(s3, upload_id, token) == [(n, 5 * MiB) for n in range(1, 5)]
        key = await s3.staging.finish(upload_id, token, receipts)
        assert await collect(s3.blobs.open_range(key, 0, len(data))) == data
        # Part 10,001 would be past S3's limit: refused (not a byte recorded).
        beyond = new_id()
        beyond_token = await s3.staging.begin(beyond)
        with pytest.raises(ValueError, match="10000 parts"):
            await s3.staging.put_part(
                beyond, beyond_token, number=0, offset=10_000 * 5 * MiB,
                data=stream(b"z" * 5 * MiB),
            )  # fmt: skip
        with pytest.raises(ValueError, match="10000"):
            await s3.staging.put_part(
                beyond, beyond_token, number=10_001, offset=10_000 * 5 * MiB, data=never_read()
            )

    run(go)


def test_s3_a_deferred_length_upload_under_5_mib_completes_whole(s3: S3Store) -> None:
    pieces = [os.urandom(n) for n in (100_000, 1, 700_000, 2 * MiB, 33)]

    async def go() -> None:
        upload_id = new_id()
        token = await s3.staging.begin(upload_id)
        receipts, offset = [], 0
        for piece in pieces:
            receipts.append(
                await s3.staging.put_part(
                    upload_id, token, number=0, offset=offset, data=stream(piece)
                )
            )
            offset += len(piece)
        key = await s3.staging.finish(upload_id, token, receipts)
        assert await s3.blobs.size(key) == offset
        assert await collect(s3.blobs.open_range(key, 0, offset)) == b"".join(pieces)
        assert await parts_of(s3, upload_id, token) == []  # no part: one tail, one copy

    run(go)


def test_s3_another_node_goes_on_and_finishes_from_receipts(s3: S3Store, tmp_path: Path) -> None:
    """A creation carrying 7 MiB (part 1, cut short), appends on two nodes, an append whose
    receipt was never recorded (its bytes must not leak in), and a finish on the other node
    from the receipts alone."""
    data = os.urandom(19 * MiB + 3)
    other = another_node(s3, tmp_path)

    async def go() -> None:
        upload_id = new_id()
        token = await s3.staging.begin(upload_id, durable=False)
        assert await other.staging.begin(upload_id) == token  # durable now, same token
        first = await s3.staging.put_part(
            upload_id, token, number=1, offset=0, data=stream(data[: 7 * MiB])
        )
        second = await other.staging.put_part(
            upload_id, token, number=0, offset=first.end, data=stream(data[7 * MiB : 12 * MiB])
        )
        # A request that wrote past a part's end and was refused (say, a bad checksum).
        await s3.staging.put_part(
            upload_id, token, number=0, offset=second.end, data=stream(b"\0" * 6 * MiB)
        )
        third = await s3.staging.put_part(
            upload_id, token, number=0, offset=second.end, data=stream(data[12 * MiB :])
        )
        receipts = [first, second, third]
        for receipt in receipts:
            assert receipt.sha256 == sha(data[receipt.start : receipt.end])
        key = await other.staging.finish(upload_id, token, receipts)
        assert key == await s3.staging.finish(upload_id, token, receipts)  # idempotent
        assert await collect(s3.blobs.open_range(key, 0, len(data) + 1)) == data
        await other.staging.keep(upload_id, token, sha(data))
        await s3.staging.abort(upload_id, token)
        assert await collect(other.blobs.open_range(sha(data), 0, len(data))) == data

    try:
        run(go)
    finally:
        run(other.close)


def test_s3_abort_removes_tails_and_the_staged_object(s3: S3Store) -> None:
    async def go() -> None:
        upload_id = new_id()
        token = await s3.staging.begin(upload_id)
        part = await s3.staging.put_part(
            upload_id, token, number=0, offset=0, data=stream(b"t" * (6 * MiB))
        )
        part2 = await s3.staging.put_part(
            upload_id, token, number=0, offset=part.end, data=stream(b"u" * 10)
        )
        tails = await s3.bucket.list_keys(f"tails/{upload_id}/")
        assert [name for name, _ in tails] == [
            f"tails/{upload_id}/{part.end}",
            f"tails/{upload_id}/{part2.end}",
        ]
        key = await s3.staging.finish(upload_id, token, [part, part2])
        await s3.staging.abort(upload_id, token)
        assert await s3.bucket.list_keys(f"tails/{upload_id}/") == []
        assert await s3.bucket.list_keys("staging/") == []
        with pytest.raises(FileNotFoundError):
            await s3.blobs.size(key)
        with pytest.raises(FileNotFoundError):
            await s3.staging.put_part(
                upload_id, token, number=0, offset=part2.end, data=stream(b"late")
            )

    run(go)


def test_s3_stale_finds_orphan_uploads_and_tails(s3: S3Store) -> None:
    async def go() -> None:
        begun = new_id()
        token = await s3.staging.begin(begun)
        # A multipart upload and a tail whose puts crashed before any record or token.
        orphan, lone_tail = new_id(), new_id()
        await s3.bucket.call(
            s3.bucket.client.create_multipart_upload, Key=s3.bucket.key(f"staging/{orphan}")
        )
        await s3.bucket.call(
            s3.bucket.client.put_object, Key=s3.bucket.key(f"tails/{lone_tail}/3"), Body=b"abc"
        )
        found = dict(await s3.staging.stale(older_than=-60))
        assert found[begun] == token
        assert found[orphan].startswith("s3:")
        assert found[lone_tail] == ""
        assert await s3.staging.stale(older_than=3600) == []
        for upload_id, stale_token in found.items():
            await s3.staging.abort(upload_id, stale_token)
        await s3.staging.abort(orphan, "")  # twice, without a token: NoSuchUpload tolerated
        assert await s3.staging.stale(older_than=-60) == []

    run(go)


def test_s3_large_parts_spool_to_the_scratch_dir(s3_url: str, tmp_path: Path) -> None:
    # Without node-local copies (local_copies=0): materialize streams the object from the bucket.
    s3 = S3Store.open(
        fresh_prefix(s3_url) + "&part_size=5MiB&local_copies=0", scratch=tmp_path / "scratch"
    )
    data = os.urandom(12 * MiB + 1)
    blocks = [data[i : i + 65536] for i in range(0, len(data), 65536)]

    async def go() -> None:
        upload_id = new_id()
        token = await s3.staging.begin(upload_id)
        one = await s3.staging.put_part(
            upload_id, token, number=1, offset=0, data=stream(*blocks[: 12 * 16])
        )
        two = await s3.staging.put_part(
            upload_id, token, number=2, offset=12 * MiB, data=stream(*blocks[12 * 16 :])
        )
        key = await s3.staging.finish(upload_id, token, [one, two])
        async with s3.blobs.materialize(key) as path:
            assert path.parent == tmp_path / "scratch"
            assert path.read_bytes() == data
        assert list((tmp_path / "scratch").iterdir()) == []  # spools and copies are gone
        # keep in parts (as past 5 GiB), equal ones but the last
        s3.s3_staging.copy_limit = s3.s3_staging.copy_part_size = 5 * MiB
        await s3.staging.keep(upload_id, token, sha(data))
        assert await collect(s3.blobs.open_range(sha(data), 0, len(data))) == data
        await s3.close()

    run(go)


def test_s3_presigned_get(s3: S3Store) -> None:
    import httpx

    async def go() -> str:
        return await kept(s3, b"presigned bytes")

    key = run(go)
    url = s3.s3_blobs.presign(key, expires=60)
    assert "Signature" in url or "X-Amz-Signature" in url
    assert httpx.get(url).content == b"presigned bytes"


def test_s3_urls(s3_url: str) -> None:
    with pytest.raises(ValueError, match="credentials do not belong"):
        open_blob_store("s3://AKIA:secret@bucket/prefix")
    for bad, message in [
        ("s3://bucket/p?colour=red", "unknown parameters"),
        ("s3://bucket/p?part_size=1MiB", "part_size"),
        ("s3://bucket/a//b", "prefix"),
        ("s3://b/p", "expected s3://BUCKET"),
    ]:
        with pytest.raises(ValueError, match=message):
            open_blob_store(bad)
    endpoint = s3_url.split("endpoint_url=")[1].split("&")[0]
    with pytest.raises(ValueError, match=r"'no-such-bucket' at .* does not exist"):
        open_blob_store(f"s3://no-such-bucket/p?endpoint_url={endpoint}&region=us-east-1")
    opened = open_blob_store(s3_url)
    assert isinstance(opened, S3Store)
    run(opened.close)
