"""Contract: bookkeeping records (atomic compare-and-swap batches, key-ordered listing) and named leases, on
every adapter; plus two SQLite stores on one file contending like two server processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fhir_clr.store.port import RecordConflict, RecordWrite, Store
from fhir_clr.store.sqlite import SqliteStore
from tests.contract.conftest import StoreFactory


async def test_insert_read_update_delete_with_revisions(store: Store) -> None:
    [first] = await store.write_records([RecordWrite("k", "a", {"n": 1}, expected_rev=0)])
    assert first is not None and first.rev == 1
    [second] = await store.write_records([RecordWrite("k", "a", {"n": 2}, expected_rev=1)])
    assert second is not None and second.rev == 2
    assert await store.get_record("k", "a") == second
    assert await store.get_record("other-kind", "a") is None
    await store.write_records([RecordWrite("k", "a", {"n": 3})])
    assert (await store.get_record("k", "a")).doc == {"n": 3}  # type: ignore[union-attr]
    assert await store.write_records([RecordWrite("k", "a", None, expected_rev=3)]) == [None]
    assert await store.get_record("k", "a") is None


async def test_a_failed_precondition_writes_nothing_of_the_batch(store: Store) -> None:
    await store.write_records([RecordWrite("k", "held", {"v": 1}, expected_rev=0)])
    with pytest.raises(RecordConflict) as failed:
        await store.write_records([RecordWrite("k", "new", {"v": 1}, expected_rev=0),
                                   RecordWrite("k", "held", {"v": 2}, expected_rev=5)])
    assert (failed.value.expected, failed.value.actual) == (5, 1)
    with pytest.raises(RecordConflict):
        await store.write_records([RecordWrite("k", "held", {"v": 3}, expected_rev=0)])
    assert await store.get_record("k", "new") is None
    assert (await store.get_record("k", "held")).doc == {"v": 1}  # type: ignore[union-attr]


async def test_listing_by_prefix_after_a_key_in_key_order(store: Store) -> None:
    keys = ["a/1", "a/10", "a/2", "ab/1", "b", "a/000000000007", "a/000000000012"]
    await store.write_records([RecordWrite("k", key, {"key": key}) for key in keys])
    await store.write_records([RecordWrite("z", "a/1", {})])

    async def listed(**kwargs: object) -> list[str]:
        return [r.key for r in await store.list_records("k", **kwargs)]  # type: ignore[arg-type]

    assert await listed() == sorted(keys)
    assert await listed(prefix="a/") == ["a/000000000007", "a/000000000012", "a/1", "a/10", "a/2"]
    assert await listed(prefix="a/", after="a/000000000007") == ["a/000000000012", "a/1", "a/10", "a/2"]
    assert await listed(prefix="a/", after="a/1", limit=1) == ["a/10"]
    assert await listed(prefix="ab") == ["ab/1"]
    assert await listed(prefix="a/", after="0") == ["a/000000000007", "a/000000000012", "a/1", "a/10", "a/2"]


async def test_inserted_records_are_new_and_a_taken_key_writes_nothing(store: Store) -> None:
    await store.insert_records([RecordWrite("log", f"{n:04d}", {"n": n}) for n in range(3)])
    found = await store.list_records("log")
    assert [(r.key, r.rev, r.doc) for r in found] == [(f"{n:04d}", 1, {"n": n}) for n in range(3)]
    with pytest.raises(RecordConflict) as failed:
        await store.insert_records([RecordWrite("log", "0100", {"n": 100}), RecordWrite("log", "0001", {"n": -1})])
    assert (failed.value.kind, failed.value.key) == ("log", "0001")
    assert await store.get_record("log", "0100") is None
    assert (await store.get_record("log", "0001")).doc == {"n": 1}  # type: ignore[union-attr]
    await store.insert_records([])


async def test_inserted_records_survive_reopening(store_factory: StoreFactory, tmp_path: Path) -> None:
    first = store_factory(tmp_path)
    await first.open()
    await first.insert_records([RecordWrite("log", f"{n:06d}", {"n": n}) for n in range(2000)])
    await first.close()
    second = store_factory(tmp_path)
    await second.open()
    try:
        found = await second.list_records("log", limit=5000)
        assert [r.doc["n"] for r in found] == list(range(2000))
    finally:
        await second.close()


async def test_a_thousand_writes_in_one_batch_survive_reopening(store_factory: StoreFactory, tmp_path: Path) -> None:
    first = store_factory(tmp_path)
    await first.open()
    await first.write_records([RecordWrite("event", f"s/{n:012d}", {"n": n}, expected_rev=0) for n in range(1000)])
    await first.close()
    second = store_factory(tmp_path)
    await second.open()
    try:
        found = await second.list_records("event", prefix="s/", limit=5000)
        assert [r.doc["n"] for r in found] == list(range(1000))
    finally:
        await second.close()


async def test_leases_are_exclusive_until_released_or_expired(store: Store) -> None:
    assert await store.acquire_lease("work", "one", 30)
    assert not await store.acquire_lease("work", "two", 30)
    assert await store.acquire_lease("work", "one", 30)  # renewal
    assert not await store.release_lease("work", "two")
    assert await store.release_lease("work", "one")
    assert await store.acquire_lease("work", "two", 0.2)
    assert not await store.acquire_lease("work", "one", 30)
    await asyncio.sleep(0.3)
    assert await store.acquire_lease("work", "one", 30)  # the other owner's lease expired
    assert await store.acquire_lease("other", "two", 30)


async def test_two_sqlite_stores_on_one_file_contend_like_two_processes(tmp_path: Path) -> None:
    stores = [SqliteStore(tmp_path / "shared.sqlite3", read_threads=1) for _ in range(2)]
    for opened in stores:
        await opened.open()
    try:
        wins = await asyncio.gather(*(s.acquire_lease("generate", f"owner-{i}", 30) for i, s in enumerate(stores)))
        assert sorted(wins) == [False, True]
        results = await asyncio.gather(*(s.write_records([RecordWrite("cursor", "events", {"seq": i},
                                                                      expected_rev=0)])
                                         for i, s in enumerate(stores)), return_exceptions=True)
        assert sum(isinstance(r, RecordConflict) for r in results) == 1
        assert (await stores[1].get_record("cursor", "events")).rev == 1  # type: ignore[union-attr]
    finally:
        for opened in stores:
            await opened.close()
