"""The ``MetadataStore`` contract, run on every backend (SQLite file, PostgreSQL).

On PostgreSQL every test of the session shares one database, so each test makes its own
random ids and never assumes the tables are empty. Tests that need a virgin schema get one
from ``fresh_database_url`` (a new SQLite file, or a new PostgreSQL schema).
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlalchemy.exc import IntegrityError

from pixdrop.errors import ImageNotFound, UploadNotFound
from pixdrop.metadata import (
    HEAD_REVISION,
    MIGRATIONS,
    SqlMetadataStore,
    database_url,
    migrate,
    open_metadata_store,
)
from pixdrop.metadata.sql import make_engine
from pixdrop.metadata.tables import metadata
from pixdrop.models import Image, Part, Upload, UploadState, new_id

T = TypeVar("T")


RECEIVING, COMPLETING, COMPLETED = UploadState


def run(function: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run one store coroutine to completion from a plain test function."""
    return anyio.run(function, *args)


def sha() -> str:
    return secrets.token_hex(32)


def make_upload(**overrides: Any) -> Upload:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": new_id(),
        "size": 10_000,
        "chunk_size": 1_000,
        "state": RECEIVING,
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    values.update(overrides)
    return Upload(**values)


def make_image(**overrides: Any) -> Image:
    values: dict[str, Any] = {
        "id": new_id(),
        "sha256": sha(),
        "size": 123_456,
        "content_type": "image/png",
        "format": "png",
        "width": 640,
        "height": 480,
        "created_at": datetime.now(UTC),
        "delete_token_hash": sha(),
        "filename": "cat.png",
    }
    values.update(overrides)
    return Image(**values)


@pytest.fixture
def store(database_url: str) -> Iterator[SqlMetadataStore]:
    opened = open_metadata_store(database_url)
    yield opened
    run(opened.close)


@pytest.fixture
def fresh_database_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A database URL with no schema yet: a new SQLite file or a new PostgreSQL schema."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh' / 'nested' / 'pixdrop.db'}"
        return
    base: str = request.getfixturevalue("postgres_url")
    schema = "s_" + secrets.token_hex(6)
    admin = make_engine(database_url(base))
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# --- Uploads ---


def test_upload_round_trips_every_field(store: SqlMetadataStore) -> None:
    plus_two = timezone(timedelta(hours=2))
    upload = make_upload(
        size=5 * 2**40,  # beyond 32 bits
        chunk_size=64 * 2**20,
        state=COMPLETING,
        created_at=datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=plus_two),
        expires_at=datetime(2024, 5, 7, 7, 8, 9, 654321, tzinfo=plus_two),
        sha256=sha(),
        filename="Crème brûlée 🍮.png",
        content_type="image/png",
        image_id=new_id(),
        store_token="2~multipart-upload-id-of-the-store",
    )
    run(store.create_upload, upload)
    got = run(store.get_upload, upload.id)
    assert got == upload
    for moment in (got.created_at, got.expires_at):
        assert moment.utcoffset() == timedelta(0)
    assert got.created_at == datetime(2024, 5, 6, 5, 8, 9, 123456, tzinfo=UTC)
    assert isinstance(got.state, UploadState)


def test_upload_optional_fields_stay_none(store: SqlMetadataStore) -> None:
    upload = make_upload()
    run(store.create_upload, upload)
    got = run(store.get_upload, upload.id)
    assert (got.sha256, got.filename, got.content_type, got.image_id) == (None,) * 4
    assert got == upload


def test_get_missing_upload_raises(store: SqlMetadataStore) -> None:
    with pytest.raises(UploadNotFound):
        run(store.get_upload, new_id())


def test_naive_datetimes_are_refused(store: SqlMetadataStore) -> None:
    naive = make_upload(created_at=datetime(2024, 1, 1))
    with pytest.raises(Exception, match="naive datetime"):
        run(store.create_upload, naive)
    with pytest.raises(UploadNotFound):
        run(store.get_upload, naive.id)


# --- Parts ---


def test_add_part_records_once_and_keeps_the_first(store: SqlMetadataStore) -> None:
    upload = make_upload()
    run(store.create_upload, upload)
    first = Part(0, 1_000, sha())
    assert run(store.add_part, upload.id, first) is True
    assert run(store.add_part, upload.id, Part(0, 1_000, sha())) is False
    assert run(store.chunk_slot, upload.id, 0) == (upload, first)
    assert run(store.list_parts, upload.id) == [first]


def test_add_part_after_a_duplicate_still_works(store: SqlMetadataStore) -> None:
    # On PostgreSQL a failed statement would poison the transaction: prove none is left behind.
    upload = make_upload()
    run(store.create_upload, upload)
    run(store.add_part, upload.id, Part(0, 1_000, sha()))
    assert run(store.add_part, upload.id, Part(0, 1_000, sha())) is False
    assert run(store.add_part, upload.id, Part(1_000, 2_000, sha())) is True
    assert [p.start for p in run(store.list_parts, upload.id)] == [0, 1_000]


def test_add_part_to_missing_upload_raises(store: SqlMetadataStore) -> None:
    missing = new_id()
    with pytest.raises(UploadNotFound):
        run(store.add_part, missing, Part(0, 10, sha()))
    assert run(store.list_parts, missing) == []


def test_list_parts_is_ordered_by_start(store: SqlMetadataStore) -> None:
    upload = make_upload(size=10 * 2**32, chunk_size=2**32)
    run(store.create_upload, upload)
    parts = [Part(i * 2**32, (i + 1) * 2**32, sha()) for i in range(10)]
    for index in (7, 0, 9, 3, 1, 8, 2, 6, 4, 5):
        assert run(store.add_part, upload.id, parts[index])
    assert run(store.list_parts, upload.id) == parts


def test_chunk_slot_reads_the_upload_and_the_part_of_one_chunk(store: SqlMetadataStore) -> None:
    upload = make_upload(size=10_000, chunk_size=1_000)
    run(store.create_upload, upload)
    part = Part(3_000, 4_000, sha())
    run(store.add_part, upload.id, part)
    run(store.add_part, upload.id, Part(3_500, 4_000, sha()))  # not a chunk's start: unseen
    assert run(store.chunk_slot, upload.id, 3) == (upload, part)
    assert run(store.chunk_slot, upload.id, 0) == (upload, None)
    assert run(store.chunk_slot, upload.id, -1) == (upload, None)
    assert run(store.chunk_slot, upload.id, 10**6) == (upload, None)
    with pytest.raises(UploadNotFound):
        run(store.chunk_slot, new_id(), 3)


def test_parts_keep_their_staging_receipt(store: SqlMetadataStore) -> None:
    """Part number and ETag come back as recorded, from every read, so that any node can
    finish an upload whose parts other nodes put (``Staging.finish`` takes the receipts)."""
    upload = make_upload(size=3_000, chunk_size=1_000, store_token="token")
    first = Part(0, 1_000, sha(), number=1, etag='"etag-1"')
    third = Part(2_000, 3_000, sha(), number=3, etag='"etag-3"')
    anyio.run(partial(store.create_upload, upload, parts=[first]))
    run(store.add_part, upload.id, third)
    assert run(store.list_parts, upload.id) == [first, third]
    assert run(store.chunk_slot, upload.id, 2) == (upload, third)


def test_chunk_slot_past_4_gib(store: SqlMetadataStore) -> None:
    upload = make_upload(size=10 * 2**32, chunk_size=2**32)
    run(store.create_upload, upload)
    part = Part(9 * 2**32, 10 * 2**32, sha())
    run(store.add_part, upload.id, part)
    assert run(store.chunk_slot, upload.id, 9) == (upload, part)


def test_parts_belong_to_their_upload(store: SqlMetadataStore) -> None:
    one, two = make_upload(), make_upload()
    run(store.create_upload, one)
    run(store.create_upload, two)
    run(store.add_part, one.id, Part(0, 1_000, sha()))
    assert run(store.add_part, two.id, Part(0, 1_000, sha())) is True
    assert len(run(store.list_parts, one.id)) == len(run(store.list_parts, two.id)) == 1


def test_parallel_add_part_on_distinct_starts_records_all(store: SqlMetadataStore) -> None:
    upload = make_upload(size=64_000)
    run(store.create_upload, upload)
    parts = [Part(i * 1_000, (i + 1) * 1_000, sha()) for i in range(64)]
    results: list[bool] = []
    errors: list[BaseException] = []

    def add(part: Part) -> None:
        try:
            results.append(run(store.add_part, upload.id, part))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(part,)) for part in parts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [True] * len(parts)
    assert run(store.list_parts, upload.id) == parts


def test_parallel_add_part_on_one_start_records_exactly_one(store: SqlMetadataStore) -> None:
    upload = make_upload()
    run(store.create_upload, upload)
    candidates = [Part(0, 1_000, sha()) for _ in range(24)]
    results: dict[str, bool] = {}

    async def race() -> None:
        async def add(part: Part) -> None:
            results[part.sha256] = await store.add_part(upload.id, part)

        async with anyio.create_task_group() as tasks:
            for part in candidates:
                tasks.start_soon(add, part)

    run(race)
    winners = [digest for digest, added in results.items() if added]
    assert len(winners) == 1
    assert run(store.list_parts, upload.id) == [Part(0, 1_000, winners[0])]


# --- State transitions and completion ---


def test_transition_moves_only_from_allowed_states(store: SqlMetadataStore) -> None:
    upload = make_upload()
    run(store.create_upload, upload)
    assert run(store.transition, upload.id, [COMPLETING], COMPLETED) is False
    assert run(store.get_upload, upload.id).state is RECEIVING
    assert run(store.transition, upload.id, [RECEIVING], COMPLETING) is True
    assert run(store.get_upload, upload.id).state is COMPLETING
    assert run(store.transition, upload.id, {RECEIVING}, COMPLETING) is False
    assert run(store.transition, upload.id, (RECEIVING, COMPLETING), RECEIVING) is True
    assert run(store.get_upload, upload.id).state is RECEIVING


def test_transition_of_missing_upload_is_false(store: SqlMetadataStore) -> None:
    assert run(store.transition, new_id(), [RECEIVING], COMPLETING) is False


def test_concurrent_transitions_have_one_winner(store: SqlMetadataStore) -> None:
    upload = make_upload()
    run(store.create_upload, upload)
    outcomes: list[bool] = []

    async def race() -> None:
        async def move() -> None:
            outcomes.append(await store.transition(upload.id, [RECEIVING], COMPLETING))

        async with anyio.create_task_group() as tasks:
            for _ in range(16):
                tasks.start_soon(move)

    run(race)
    assert sorted(outcomes) == [False] * 15 + [True]


def test_complete_upload_records_image_and_completes(store: SqlMetadataStore) -> None:
    upload = make_upload(state=COMPLETING)
    run(store.create_upload, upload)
    image = make_image()
    run(store.complete_upload, upload.id, image)
    assert run(store.get_image, image.id) == image
    done = run(store.get_upload, upload.id)
    assert (done.state, done.image_id) == (COMPLETED, image.id)
    assert done == replace(upload, state=COMPLETED, image_id=image.id)


def test_complete_missing_upload_records_nothing(store: SqlMetadataStore) -> None:
    image = make_image()
    with pytest.raises(UploadNotFound):
        run(store.complete_upload, new_id(), image)
    with pytest.raises(ImageNotFound):
        run(store.get_image, image.id)


def test_complete_upload_with_taken_image_id_changes_nothing(store: SqlMetadataStore) -> None:
    upload = make_upload(state=COMPLETING)
    run(store.create_upload, upload)
    taken = make_image()
    run(store.create_image, taken)
    with pytest.raises(IntegrityError):
        run(store.complete_upload, upload.id, make_image(id=taken.id))
    assert run(store.get_upload, upload.id) == upload
    assert run(store.get_image, taken.id) == taken


def test_create_upload_with_its_part_and_image_in_one_transaction(
    store: SqlMetadataStore,
) -> None:
    image = make_image()
    upload = make_upload(size=1_000, state=COMPLETED, image_id=image.id)
    part = Part(0, 1_000, sha())
    run(partial(store.create_upload, upload, parts=[part], image=image))
    assert run(store.get_upload, upload.id) == upload
    assert run(store.list_parts, upload.id) == [part]
    assert run(store.get_image, image.id) == image


def test_create_upload_with_taken_image_id_records_nothing(store: SqlMetadataStore) -> None:
    taken = make_image()
    run(store.create_image, taken)
    upload = make_upload(size=1_000, state=COMPLETED, image_id=taken.id)
    with pytest.raises(IntegrityError):
        run(partial(store.create_upload, upload, parts=[Part(0, 1_000, sha())], image=taken))
    with pytest.raises(UploadNotFound):
        run(store.get_upload, upload.id)
    assert run(store.list_parts, upload.id) == []
    assert run(store.get_image, taken.id) == taken


# --- Deletion and expiry ---


def test_delete_upload_cascades_to_parts(store: SqlMetadataStore) -> None:
    upload = make_upload()
    run(store.create_upload, upload)
    for start in (0, 1_000, 2_000):
        run(store.add_part, upload.id, Part(start, start + 1_000, sha()))
    run(store.delete_upload, upload.id)
    with pytest.raises(UploadNotFound):
        run(store.get_upload, upload.id)
    assert run(store.list_parts, upload.id) == []
    run(store.delete_upload, upload.id)  # absent: no error


def test_add_part_after_delete_raises(store: SqlMetadataStore) -> None:
    upload = make_upload()
    run(store.create_upload, upload)
    run(store.delete_upload, upload.id)
    with pytest.raises(UploadNotFound):
        run(store.add_part, upload.id, Part(0, 1_000, sha()))


def test_expired_uploads_oldest_first_limited_strictly_before(store: SqlMetadataStore) -> None:
    # Deep in the past, so that uploads of other tests sharing the database never qualify.
    base = datetime(1901, 1, 1, tzinfo=UTC) + timedelta(seconds=secrets.randbelow(10**6))
    first, second, third = (make_upload(expires_at=base + timedelta(seconds=s)) for s in (1, 2, 3))
    later = make_upload(expires_at=base + timedelta(days=1))
    for upload in (third, later, first, second):
        run(store.create_upload, upload)
    cutoff = base + timedelta(seconds=10)
    assert run(store.expired_uploads, cutoff, 10) == [first, second, third]
    assert run(store.expired_uploads, cutoff, 2) == [first, second]
    assert run(store.expired_uploads, base + timedelta(seconds=2), 10) == [first]
    assert run(store.expired_uploads, base, 10) == []
    eastern = base.astimezone(timezone(timedelta(hours=-5))) + timedelta(seconds=10)
    assert run(store.expired_uploads, eastern, 10) == [first, second, third]


def test_expired_uploads_skips_live_ones(store: SqlMetadataStore) -> None:
    live = make_upload(expires_at=datetime.now(UTC) + timedelta(days=365))
    run(store.create_upload, live)
    expired = run(store.expired_uploads, datetime.now(UTC), 10_000)
    assert live.id not in {u.id for u in expired}
    assert all(u.expires_at < datetime.now(UTC) for u in expired)


# --- Images ---


def test_image_round_trip_and_delete(store: SqlMetadataStore) -> None:
    image = make_image(
        created_at=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=9)))
    )
    run(store.create_image, image)
    got = run(store.get_image, image.id)
    assert got == image
    assert got.created_at.utcoffset() == timedelta(0)
    run(store.delete_image, image.id)
    with pytest.raises(ImageNotFound):
        run(store.get_image, image.id)
    run(store.delete_image, image.id)  # absent: no error


def test_image_without_filename(store: SqlMetadataStore) -> None:
    image = make_image(filename=None)
    run(store.create_image, image)
    assert run(store.get_image, image.id).filename is None


def test_image_details_round_trip(store: SqlMetadataStore) -> None:
    image = make_image(
        frames=12,
        orientation=6,
        has_alpha=True,
        placeholder="3OcRJYB4d3h/iIeHeEh3eIhw+j3A",
        has_gps=True,
    )
    run(store.create_image, image)
    assert run(store.get_image, image.id) == image


def test_image_details_default_for_old_rows(fresh_database_url: str) -> None:
    """Rows written before migration 0002 read back with the documented defaults."""
    migrate(fresh_database_url)
    store = open_metadata_store(fresh_database_url)
    try:
        image = make_image()
        columns = "id, sha256, size, content_type, format, width, height, created_at, "
        columns += "delete_token_hash, filename"
        with store.engine.begin() as conn:
            conn.execute(
                text(
                    f"INSERT INTO images ({columns}) VALUES (:id, :sha256, :size, "
                    ":content_type, :format, :width, :height, :created_at, "
                    ":delete_token_hash, :filename)"
                ),
                {
                    **{c.strip(): getattr(image, c.strip()) for c in columns.split(",")},
                    "created_at": image.created_at.replace(tzinfo=None),
                },
            )
        got = run(store.get_image, image.id)
        assert (got.frames, got.orientation, got.has_alpha, got.placeholder, got.has_gps) == (
            1,
            1,
            False,
            None,
            False,
        )
    finally:
        run(store.close)


def test_get_missing_image_raises(store: SqlMetadataStore) -> None:
    with pytest.raises(ImageNotFound):
        run(store.get_image, new_id())


def test_count_images_with_sha256(store: SqlMetadataStore) -> None:
    digest = sha()
    assert run(store.count_images_with_sha256, digest) == 0
    one, two = make_image(sha256=digest), make_image(sha256=digest)
    run(store.create_image, one)
    run(store.create_image, two)
    run(store.create_image, make_image())
    assert run(store.count_images_with_sha256, digest) == 2
    run(store.delete_image, one.id)
    assert run(store.count_images_with_sha256, digest) == 1


def test_list_images_pages_newest_first_without_overlap(fresh_database_url: str) -> None:
    """Newest first; ties on created_at by id; each page continues after the last one's key,
    also when images are added (newer: not seen) or deleted (gone) between pages."""
    store = open_metadata_store(fresh_database_url)
    try:
        assert run(store.list_images, 10) == []
        base = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
        made = [make_image(created_at=base + timedelta(seconds=i)) for i in range(5)]
        # Three images at one instant: the id decides their order.
        made += [make_image(created_at=base + timedelta(seconds=10)) for _ in range(3)]
        for image in made:
            run(store.create_image, image)
        expected = sorted(made, key=lambda i: (i.created_at, i.id), reverse=True)

        seen: list[Image] = []
        after: tuple[datetime, str] | None = None
        while page := run(partial(store.list_images, 3, after)):
            assert len(page) <= 3
            seen += page
            after = (page[-1].created_at, page[-1].id)
            if len(seen) == 3:  # between pages: a newer image appears, an unseen one goes
                run(store.create_image, make_image(created_at=base + timedelta(days=1)))
                run(store.delete_image, expected[5].id)
        assert [i.id for i in seen] == [i.id for i in expected if i.id != expected[5].id]
        assert seen[0] == expected[0]  # whole rows, not just ids
        assert run(store.list_images, 2) != seen[:2]  # the newer one now comes first
    finally:
        run(store.close)


# --- Lifecycle: migrations, restarts, health ---


def test_ping(store: SqlMetadataStore) -> None:
    run(store.ping)


def test_reopened_store_sees_the_data(database_url: str) -> None:
    upload, image = make_upload(), make_image()
    first = open_metadata_store(database_url)
    run(first.create_upload, upload)
    run(first.add_part, upload.id, Part(0, 1_000, sha()))
    run(first.create_image, image)
    run(first.close)

    second = open_metadata_store(database_url)
    try:
        assert run(second.get_upload, upload.id) == upload
        assert len(run(second.list_parts, upload.id)) == 1
        assert run(second.get_image, image.id) == image
    finally:
        run(second.close)


def test_migrate_twice_is_a_no_op(fresh_database_url: str) -> None:
    migrate(fresh_database_url)
    store = open_metadata_store(fresh_database_url)
    try:
        upload = make_upload()
        run(store.create_upload, upload)
        migrate(fresh_database_url)
        assert run(store.get_upload, upload.id) == upload
        with store.engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        assert [v for (v,) in versions] == [HEAD_REVISION]
    finally:
        run(store.close)


def test_head_revision_is_alembics_head() -> None:
    # A new migration must move HEAD_REVISION too, or servers would skip it.
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_a_migrated_database_is_opened_without_alembic(fresh_database_url: str) -> None:
    # Alembic is imported only where there is something to migrate: a server started on a
    # migrated database does without its memory and import time.
    script = (
        "import sys; from pixdrop.metadata import open_metadata_store; "
        "open_metadata_store(sys.argv[1]).engine.dispose(); print('alembic' in sys.modules)"
    )

    def opened() -> str:
        command = [sys.executable, "-c", script, fresh_database_url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True)
        return done.stdout.strip()

    assert opened() == "True"  # a new database: migrated
    assert opened() == "False"  # at head: Alembic not needed
    assert_schema_usable(fresh_database_url)


def assert_schema_usable(url: str) -> None:
    store = open_metadata_store(url)
    try:
        upload = make_upload()
        run(store.create_upload, upload)
        assert run(store.get_upload, upload.id) == upload
    finally:
        run(store.close)


def test_processes_starting_together_migrate_once(fresh_database_url: str) -> None:
    # Several server processes opening a new database at once: one migrates, the others wait
    # on the database lock (SQLite write lock / PostgreSQL advisory lock) and find it done.
    script = "import sys; from pixdrop.metadata import migrate; migrate(sys.argv[1])"
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", script, fresh_database_url],
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    failures = []
    for starter in starters:
        _, stderr = starter.communicate(timeout=60)
        if starter.returncode != 0:
            failures.append(stderr)
    assert failures == []
    assert_schema_usable(fresh_database_url)


def test_threads_opening_stores_together_migrate_once(fresh_database_url: str) -> None:
    errors: list[BaseException] = []

    def start() -> None:
        try:
            run(open_metadata_store(fresh_database_url).close)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert_schema_usable(fresh_database_url)


THREADED_MIGRATIONS = """
import sys, threading
from pixdrop.metadata import migrate
errors = []
def start(url):
    try:
        migrate(url)
    except BaseException as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=start, args=(url,)) for url in sys.argv[1:]]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
sys.exit("\\n".join(errors) or None)
"""


def test_threads_migrating_different_databases_at_once(tmp_path: Path) -> None:
    # Alembic's ``context`` is process-global: unserialised, this crashes the interpreter
    # (two threads end up on one sqlite3 connection), hence a child process.
    urls = [f"sqlite:///{tmp_path / f'db{i}.sqlite'}" for i in range(8)]
    child = subprocess.run(
        [sys.executable, "-c", THREADED_MIGRATIONS, *urls],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (child.returncode, child.stderr) == (0, "")
    for url in urls:
        assert_schema_usable(url)


def test_migrations_build_exactly_the_declared_schema(fresh_database_url: str) -> None:
    store = open_metadata_store(fresh_database_url)
    try:
        with store.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, metadata) == []
    finally:
        run(store.close)


def test_datetimes_come_back_in_utc_whatever_the_session_zone(
    backend: str, database_url: str
) -> None:
    url = database_url
    if backend == "postgres":
        url += "?options=" + quote("-ctimezone=Pacific/Kiritimati")
    store = open_metadata_store(url)
    try:
        upload = make_upload(created_at=datetime(2020, 1, 1, 12, tzinfo=UTC))
        run(store.create_upload, upload)
        got = run(store.get_upload, upload.id)
        assert got.created_at == upload.created_at
        assert got.created_at.tzinfo is UTC
    finally:
        run(store.close)


# --- URLs (no database needed) ---


def test_sqlite_parent_directory_is_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "meta.db"
    store = open_metadata_store(f"sqlite:///{path}")
    run(store.close)
    assert path.is_file()


@pytest.mark.parametrize(
    ("url", "driver"),
    [
        ("postgres://u:p%40ss@db.example:5433/pix", "postgresql+psycopg"),
        ("postgresql://u@db.example/pix", "postgresql+psycopg"),
        ("postgresql+psycopg://u@db.example/pix", "postgresql+psycopg"),
        ("sqlite:///relative/pixdrop.db", "sqlite"),
    ],
)
def test_database_url_normalises_the_driver(url: str, driver: str) -> None:
    parsed = database_url(url)
    assert parsed.drivername == driver
    if driver != "sqlite":
        assert (parsed.host, parsed.database) == ("db.example", "pix")
    assert parsed.password in (None, "p@ss")


@pytest.mark.parametrize(
    "url",
    ["mysql://u@h/db", "postgresql+psycopg2://u@h/db", "redis://h", "not a url", "file:///x.db"],
)
def test_unknown_schemes_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///PATH.*postgresql://"):
        open_metadata_store(url)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="in-memory"):
        database_url(url)


# --- Resumable (tus / IETF) uploads: migration 0003 ---


def test_resumable_upload_fields_round_trip(store: SqlMetadataStore) -> None:
    upload = make_upload(
        size=0,
        protocol="tus",
        length_deferred=True,
        upload_metadata="filename cm9ja2V0LmpwZw==,private",
        concat="partial",
    )
    run(store.create_upload, upload)
    assert run(store.get_upload, upload.id) == upload


def test_received_end_is_the_end_of_the_last_part(store: SqlMetadataStore) -> None:
    upload = make_upload(protocol="tus")
    run(store.create_upload, upload)
    assert run(store.received_end, upload.id) == 0
    run(store.add_part, upload.id, Part(0, 300, sha()))
    run(store.add_part, upload.id, Part(300, 1000, sha()))
    assert run(store.received_end, upload.id) == 1000
    assert run(store.received_end, new_id()) == 0


def test_set_length_only_once_and_only_when_deferred(store: SqlMetadataStore) -> None:
    deferred = make_upload(size=0, protocol="tus", length_deferred=True)
    known = make_upload(protocol="tus")
    run(store.create_upload, deferred)
    run(store.create_upload, known)
    assert run(store.set_length, deferred.id, 4321) is True
    got = run(store.get_upload, deferred.id)
    assert (got.size, got.length_deferred) == (4321, False)
    assert run(store.set_length, deferred.id, 9999) is False
    assert run(store.get_upload, deferred.id).size == 4321
    assert run(store.set_length, known.id, 5) is False
    assert run(store.get_upload, known.id).size == known.size


def test_final_upload_lists_its_partials_in_order(store: SqlMetadataStore) -> None:
    pieces = [make_upload(protocol="tus", concat="partial") for _ in range(3)]
    for piece in pieces:
        run(store.create_upload, piece)
    order = [pieces[2].id, pieces[0].id, pieces[1].id]
    final = make_upload(protocol="tus", concat="final;" + " ".join(order))
    run(store.create_final, final, order)
    assert run(store.get_upload, final.id) == final
    assert run(store.concat_partials, final.id) == order
    assert run(store.finals_waiting_for, pieces[0].id) == [final.id]
    # A completed final upload no longer waits for anything.
    run(store.transition, final.id, {RECEIVING}, COMPLETED)
    assert run(store.finals_waiting_for, pieces[0].id) == []
    # Deleting the final upload takes its list with it.
    run(store.delete_upload, final.id)
    assert run(store.concat_partials, final.id) == []


def test_concurrent_writes_keep_their_own_outcomes(store: SqlMetadataStore) -> None:
    # On SQLite these are committed in groups (metadata/batching.py): one write's failure must
    # reach its own caller only, and roll back nothing but itself.
    upload = make_upload(size=40_000)
    run(store.create_upload, upload)
    first = Part(0, 1_000, sha())
    run(store.add_part, upload.id, first)
    good = [Part(i * 1_000, (i + 1) * 1_000, sha()) for i in range(1, 40)]
    outcomes: dict[str, Any] = {}

    async def attempt(key: str, write: Awaitable[Any]) -> None:
        try:
            outcomes[key] = await write
        except Exception as exc:
            outcomes[key] = exc

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            for part in good:
                tasks.start_soon(attempt, f"part {part.start}", store.add_part(upload.id, part))
            tasks.start_soon(attempt, "missing", store.add_part(new_id(), Part(0, 10, sha())))
            tasks.start_soon(attempt, "duplicate", store.add_part(upload.id, Part(0, 1_000, sha())))
            tasks.start_soon(attempt, "taken id", store.create_upload(upload))

    anyio.run(main)
    assert isinstance(outcomes.pop("missing"), UploadNotFound)
    assert outcomes.pop("duplicate") is False
    assert isinstance(outcomes.pop("taken id"), IntegrityError)
    assert outcomes == {f"part {part.start}": True for part in good}
    assert run(store.list_parts, upload.id) == [first, *good]


def test_sqlite_lookups_keep_their_connection_and_close_gives_all_back(tmp_path: Path) -> None:
    """A thread's lookups share one connection (no pool checkout each), seeing each commit;
    close() gives back the lookup connections and the group commit's."""
    opened = open_metadata_store(f"sqlite:///{tmp_path / 'held.db'}")
    lookups, engine = opened._lookups, opened.engine
    assert lookups is not None
    checkouts: list[int] = []
    event.listen(lookups, "checkout", lambda *args: checkouts.append(1))

    async def go() -> None:
        for _ in range(3):
            upload = make_upload()
            await opened.create_upload(upload)
            assert (await opened.get_upload(upload.id)).id == upload.id  # the write is seen
        with pytest.raises(UploadNotFound):
            await opened.get_upload("u" * 26)
        assert (await opened.chunk_slot(upload.id, 0))[0].id == upload.id
        assert len(checkouts) == 1
        held = list(opened._held)
        await opened.close()
        assert len(held) == 1
        assert held[0].closed

    run(go)
    assert engine.pool.checkedout() == 0
