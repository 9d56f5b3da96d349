"""The metadata store's API keys, owners and quota accounting (the ``MetadataStore`` quota
contract in ``ports.py``), on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import anyio
import pytest

from pixdrop.errors import QuotaExceeded
from pixdrop.metadata import SqlMetadataStore, open_metadata_store
from pixdrop.metadata.copy import copy_database
from pixdrop.models import ApiKey, UploadState, new_id
from tests.contract.test_metadata_store import make_image, make_upload, run, sha, store

__all__ = ["store"]


def make_key(**overrides: object) -> ApiKey:
    values: dict[str, object] = {
        "id": new_id(),
        "name": "ci",
        "secret_hash": sha(),
        "scopes": ("upload", "read"),
        "created_at": datetime.now(UTC),
    }
    values.update(overrides)
    return ApiKey(**values)  # type: ignore[arg-type]


def usage(store: SqlMetadataStore, key_id: str) -> tuple[int, int]:
    key = run(store.get_key, key_id)
    assert key is not None
    return key.used_bytes, key.open_uploads


def test_key_round_trips_and_revokes_once(store: SqlMetadataStore) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    key = make_key(
        expires_at=now + timedelta(days=90),
        quota=10 * 1024**3,
        max_open_uploads=5,
        rate="100/minute",
        scopes=("upload", "admin"),
    )
    run(store.create_key, key)
    assert run(store.get_key, key.id) == key
    assert run(store.get_key, new_id()) is None
    assert key.id in [k.id for k in run(store.list_keys)]  # the database may hold others
    assert run(store.revoke_key, key.id, now) is True
    assert run(store.revoke_key, key.id, now + timedelta(hours=1)) is False
    revoked = run(store.get_key, key.id)
    assert revoked is not None
    assert revoked.revoked_at == now
    assert not revoked.usable(now)


def test_owner_and_private_round_trip_and_list_by_owner(store: SqlMetadataStore) -> None:
    mine, theirs = make_key(), make_key()
    run(store.create_key, mine)
    run(store.create_key, theirs)
    upload = make_upload(owner=mine.id, private=True)
    run(store.create_upload, upload)
    assert run(store.get_upload, upload.id) == upload
    base = datetime.now(UTC)
    own = [make_image(owner=mine.id, private=True, created_at=base + timedelta(seconds=i))
           for i in range(3)]  # fmt: skip
    other = make_image(owner=theirs.id, created_at=base + timedelta(seconds=10))
    for image in [*own, other]:
        run(store.create_image, image)
    assert run(store.get_image, own[0].id) == own[0]
    listed = run(store.list_images, 10, None, mine.id)
    assert [i.id for i in listed] == [i.id for i in reversed(own)]
    everyone = {i.id for i in run(store.list_images, 500, None, None)}
    assert {i.id for i in [*own, other]} <= everyone


def test_open_uploads_reserve_their_size_and_give_it_back(store: SqlMetadataStore) -> None:
    key = make_key(quota=25_000, max_open_uploads=3)
    run(store.create_key, key)
    first = make_upload(owner=key.id, size=10_000)
    second = make_upload(owner=key.id, size=10_000)
    run(store.create_upload, first)
    run(store.create_upload, second)
    assert usage(store, key.id) == (20_000, 2)
    too_big = make_upload(owner=key.id, size=6_000)
    with pytest.raises(QuotaExceeded) as refused:
        run(store.create_upload, too_big)
    assert refused.value.extra == {
        "limit": "quota",
        "allowed": 25_000,
        "usage": 20_000,
        "requested": 6_000,
    }
    with pytest.raises(Exception, match="No upload"):
        run(store.get_upload, too_big.id)
    run(store.delete_upload, first.id)  # aborted, terminated or swept alike
    assert usage(store, key.id) == (10_000, 1)
    run(store.delete_upload, first.id)  # a second delete gives nothing back twice
    assert usage(store, key.id) == (10_000, 1)


def test_max_open_uploads_is_enforced(store: SqlMetadataStore) -> None:
    key = make_key(max_open_uploads=1)
    run(store.create_key, key)
    run(store.create_upload, make_upload(owner=key.id))
    with pytest.raises(QuotaExceeded) as refused:
        run(store.create_upload, make_upload(owner=key.id))
    assert refused.value.extra["limit"] == "max_open_uploads"
    assert usage(store, key.id) == (10_000, 1)


def test_completion_turns_the_reservation_into_the_image(store: SqlMetadataStore) -> None:
    key = make_key(quota=100_000)
    run(store.create_key, key)
    upload = make_upload(owner=key.id, size=10_000, state=UploadState.COMPLETING)
    run(store.create_upload, upload)
    image = make_image(owner=key.id, size=10_000)
    run(store.complete_upload, upload.id, image)
    assert usage(store, key.id) == (10_000, 0)
    run(store.delete_upload, upload.id)  # the completed record, swept: its image holds them
    assert usage(store, key.id) == (10_000, 0)
    run(store.delete_image, image.id)
    assert usage(store, key.id) == (0, 0)


def test_images_recorded_directly_count_and_can_be_refused(store: SqlMetadataStore) -> None:
    key = make_key(quota=150_000)
    run(store.create_key, key)
    run(store.create_image, make_image(owner=key.id, size=100_000))
    with pytest.raises(QuotaExceeded):
        run(store.create_image, make_image(owner=key.id, size=60_000))
    done = make_upload(owner=key.id, state=UploadState.COMPLETED)
    image = make_image(owner=key.id, size=50_000)
    run(partial(store.create_upload, replace(done, image_id=image.id), image=image))
    assert usage(store, key.id) == (150_000, 0)


def test_a_deferred_length_reserves_when_it_is_set(store: SqlMetadataStore) -> None:
    key = make_key(quota=5_000)
    run(store.create_key, key)
    upload = make_upload(owner=key.id, size=0, length_deferred=True)
    run(store.create_upload, upload)
    assert usage(store, key.id) == (0, 1)
    with pytest.raises(QuotaExceeded):
        run(store.set_length, upload.id, 6_000)
    assert run(store.get_upload, upload.id).length_deferred  # nothing changed
    assert run(store.set_length, upload.id, 4_000) is True
    assert usage(store, key.id) == (4_000, 1)


def test_racing_creations_never_pass_the_quota(store: SqlMetadataStore) -> None:
    key = make_key(quota=50_000)
    run(store.create_key, key)
    won: list[str] = []

    async def race() -> None:
        async def create() -> None:
            upload = make_upload(owner=key.id, size=10_000)
            try:
                await store.create_upload(upload)
            except QuotaExceeded:
                return
            won.append(upload.id)

        async with anyio.create_task_group() as tasks:
            for _ in range(12):
                tasks.start_soon(create)

    run(race)
    assert len(won) == 5
    assert usage(store, key.id) == (50_000, 5)


def test_records_without_a_key_row_have_no_quota(store: SqlMetadataStore) -> None:
    run(store.create_upload, make_upload(owner=new_id(), size=10**12))
    run(store.create_upload, make_upload(owner=None, size=10**12))


def test_a_copy_counts_usage_afresh_without_the_uploads_left_behind(
    store: SqlMetadataStore, database_url: str, tmp_path: Path
) -> None:
    key = make_key(quota=10**9)
    run(store.create_key, key)
    run(store.create_upload, make_upload(owner=key.id, size=7_000))
    run(store.create_image, make_image(owner=key.id, size=5_000))
    assert usage(store, key.id) == (12_000, 1)
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    copy_database(database_url, target)
    copied = open_metadata_store(target)
    try:
        assert usage(copied, key.id) == (5_000, 0)
    finally:
        run(copied.close)
