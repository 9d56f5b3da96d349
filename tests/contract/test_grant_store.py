"""The ``MetadataStore`` contract for direct-upload grants and who opened an upload, on every
metadata backend (SQLite file, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from pixdrop.errors import GrantNotFound
from pixdrop.metadata import SqlMetadataStore, open_metadata_store
from pixdrop.models import Grant, UploadState, new_id
from tests.contract.test_metadata_store import make_upload, run, sha


@pytest.fixture
def store(database_url: str) -> Iterator[SqlMetadataStore]:
    opened = open_metadata_store(database_url)
    yield opened
    run(opened.close)


def make_grant(**overrides: Any) -> Grant:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": new_id(),
        "token_hash": sha(),
        "created_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    values.update(overrides)
    return Grant(**values)


def test_grant_round_trips_every_field(store: SqlMetadataStore) -> None:
    grant = make_grant(
        owner="key-1",
        max_size=5 * 2**40,
        formats=("png", "webp"),
        metadata='{"user":"ünï"}',
        private=True,
    )
    run(store.create_grant, grant)
    assert run(store.get_grant, grant.id) == grant
    bare = make_grant()
    run(store.create_grant, bare)
    assert run(store.get_grant, bare.id) == bare


def test_get_missing_grant_raises(store: SqlMetadataStore) -> None:
    with pytest.raises(GrantNotFound):
        run(store.get_grant, new_id())


def test_a_grant_is_claimed_once_and_released_only_by_its_claimer(
    store: SqlMetadataStore,
) -> None:
    grant = make_grant()
    run(store.create_grant, grant)
    now = datetime.now(UTC)
    first, second = new_id(), new_id()
    assert run(store.claim_grant, grant.id, first, now) is True
    assert run(store.claim_grant, grant.id, second, now) is False
    run(store.release_grant, grant.id, second)  # not its claimer: nothing changes
    assert run(store.get_grant, grant.id).image_id == first
    run(store.release_grant, grant.id, first)
    assert run(store.get_grant, grant.id).image_id is None
    assert run(store.claim_grant, grant.id, second, now) is True
    got = run(store.get_grant, grant.id)
    assert got.image_id == second
    assert got.used_at == now
    assert run(store.claim_grant, new_id(), first, now) is False  # no such grant


def test_concurrent_claims_of_one_grant_have_one_winner(store: SqlMetadataStore) -> None:
    grant = make_grant()
    run(store.create_grant, grant)
    outcomes: list[bool] = []

    async def race() -> None:
        async def claim() -> None:
            outcomes.append(await store.claim_grant(grant.id, new_id(), datetime.now(UTC)))

        async with anyio.create_task_group() as tasks:
            for _ in range(16):
                tasks.start_soon(claim)

    run(race)
    assert sorted(outcomes) == [False] * 15 + [True]


def test_open_uploads_are_counted_per_client(store: SqlMetadataStore) -> None:
    client, other = f"192.0.2.{new_id()}", f"192.0.2.{new_id()}"
    now = datetime.now(UTC)
    grant_id = new_id()
    live = make_upload(client=client, grant_id=grant_id)
    run(store.create_upload, live)
    assert run(store.get_upload, live.id) == live
    run(store.create_upload, make_upload(client=client))
    run(store.create_upload, make_upload(client=client, state=UploadState.COMPLETED))
    run(store.create_upload, make_upload(client=client, expires_at=now - timedelta(seconds=1)))
    run(store.create_upload, make_upload(client=other))
    run(store.create_upload, make_upload())
    assert run(store.count_open_uploads, client, now) == 2
    assert run(store.count_open_uploads, other, now) == 1
    run(store.delete_upload, live.id)
    assert run(store.count_open_uploads, client, now) == 1


def test_purge_grants_deletes_only_those_expired_before(store: SqlMetadataStore) -> None:
    now = datetime.now(UTC)
    old = make_grant(expires_at=now - timedelta(days=8))
    recent = make_grant(expires_at=now - timedelta(days=1))
    live = make_grant()
    for grant in (old, recent, live):
        run(store.create_grant, grant)
    assert run(store.purge_grants, now - timedelta(days=7)) >= 1
    with pytest.raises(GrantNotFound):
        run(store.get_grant, old.id)
    assert run(store.get_grant, recent.id) == recent
    assert run(store.get_grant, live.id) == live
