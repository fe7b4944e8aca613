"""Contract: history (instance, type, system, since, at, paging) and the outbox."""

from __future__ import annotations

import itertools
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from fhir_clr.store.port import ChangeOp, HistoryFilter, InvalidPageToken, Store, WriteMethod
from fhir_clr.store.sqlite import SqliteStore

from .helpers import change, deletion, put, remove


async def _all_pages(store: Store, scope: HistoryFilter, count: int) -> list[tuple[str, str, int]]:
    seen, token = [], None
    while True:
        page = await store.history(scope, count, token)
        assert len(page.entries) <= count
        seen.extend((e.resource_type, e.resource_id, e.version) for e in page.entries)
        token = page.next_token
        if token is None:
            return seen


async def _scenario(store: Store) -> list[int]:
    """Writes in a known order; returns the lastUpdated of each write."""
    stamps = []
    for write in (lambda: put(store, "Patient", "p1"), lambda: put(store, "Task", "t1"),
                  lambda: put(store, "Patient", "p1"), lambda: put(store, "Group", "g1"),
                  lambda: remove(store, "Patient", "p1"), lambda: put(store, "Task", "t1")):
        stamps.append((await write()).last_updated_us)
    return stamps


async def test_instance_history_newest_first_with_tombstone(store: Store) -> None:
    await _scenario(store)
    page = await store.history(HistoryFilter("Patient", "p1"), 10)
    assert [(e.version, e.op, e.deleted) for e in page.entries] == [
        (3, ChangeOp.DELETE, True), (2, ChangeOp.UPDATE, False), (1, ChangeOp.CREATE, False)]
    assert page.entries[0].body is None and page.next_token is None


async def test_type_and_system_history(store: Store) -> None:
    await _scenario(store)
    assert await _all_pages(store, HistoryFilter("Task"), 10) == [("Task", "t1", 2), ("Task", "t1", 1)]
    assert await _all_pages(store, HistoryFilter(), 10) == [
        ("Task", "t1", 2), ("Patient", "p1", 3), ("Group", "g1", 1), ("Patient", "p1", 2), ("Task", "t1", 1),
        ("Patient", "p1", 1)]
    assert await _all_pages(store, HistoryFilter(types=("Group", "Task")), 10) == [
        ("Task", "t1", 2), ("Group", "g1", 1), ("Task", "t1", 1)]


async def test_history_paging_matches_unpaged(store: Store) -> None:
    await _scenario(store)
    full = await _all_pages(store, HistoryFilter(), 100)
    assert await _all_pages(store, HistoryFilter(), 1) == full
    assert await _all_pages(store, HistoryFilter(), 4) == full
    first = await store.history(HistoryFilter(), 2)
    await put(store, "Patient", "late")  # newer writes do not shift later pages
    second = await store.history(HistoryFilter(), 2, first.next_token)
    assert [(e.resource_id, e.version) for e in second.entries] == [("g1", 1), ("p1", 2)]


async def test_history_since_and_at(store: Store) -> None:
    stamps = await _scenario(store)
    since = await _all_pages(store, HistoryFilter(since_us=stamps[2]), 10)
    assert since == [("Task", "t1", 2), ("Patient", "p1", 3), ("Group", "g1", 1)]
    assert await _all_pages(store, HistoryFilter("Task", since_us=stamps[2]), 10) == [("Task", "t1", 2)]
    assert await _all_pages(store, HistoryFilter(since_us=stamps[-1]), 10) == []
    # at the instant of the 4th write: p1 v2, t1 v1, g1 v1 were current
    at = await _all_pages(store, HistoryFilter(at_us=stamps[3]), 10)
    assert at == [("Group", "g1", 1), ("Patient", "p1", 2), ("Task", "t1", 1)]
    # after the delete, p1 is not current at all
    assert await _all_pages(store, HistoryFilter("Patient", "p1", at_us=stamps[4]), 10) == []
    assert await _all_pages(store, HistoryFilter("Patient", "p1", at_us=stamps[0] - 1), 10) == []


async def test_history_token_belongs_to_its_scope(store: Store) -> None:
    await _scenario(store)
    page = await store.history(HistoryFilter(), 2)
    with pytest.raises(InvalidPageToken):
        await store.history(HistoryFilter("Task"), 2, page.next_token)
    with pytest.raises(InvalidPageToken):
        await store.history(HistoryFilter(), 2, "not-a-token")


async def test_outbox_in_commit_order_with_deletes(store: Store) -> None:
    await _scenario(store)
    events = await store.outbox_after(0, 100)
    assert [(e.resource_type, e.resource_id, e.version, e.op) for e in events] == [
        ("Patient", "p1", 1, ChangeOp.CREATE), ("Task", "t1", 1, ChangeOp.CREATE),
        ("Patient", "p1", 2, ChangeOp.UPDATE), ("Group", "g1", 1, ChangeOp.CREATE),
        ("Patient", "p1", 3, ChangeOp.DELETE), ("Task", "t1", 2, ChangeOp.UPDATE)]
    seqs = [e.seq for e in events]
    assert all(a < b for a, b in itertools.pairwise(seqs))
    stamps = [e.last_updated_us for e in events]
    assert stamps == sorted(stamps)
    assert await store.outbox_after(seqs[1], 2) == events[2:4]
    assert await store.outbox_after(seqs[-1], 10) == []
    stored = await store.commit([change("Group", "g2"), change("Group", "g3")])
    tail = await store.outbox_after(seqs[-1], 10)
    assert [(e.resource_id, e.last_updated_us) for e in tail] == [(s.resource_id, s.last_updated_us) for s in stored]


async def test_history_carries_the_method_each_version_was_written_with(store: Store) -> None:
    created = change("Task", "t1")
    created.method = WriteMethod.PUT  # an update-as-create
    await store.commit([created])
    patched = change("Task", "t1", 1, body={"status": "ready"})
    patched.method = WriteMethod.PATCH
    side_effect = change("Task", "t2")  # a server-written change records no method
    await store.commit([patched, side_effect])
    posted = change("Patient", "p1")
    posted.method = WriteMethod.POST
    await store.commit([posted])
    removed = deletion("Task", "t1", 2)
    removed.method = WriteMethod.DELETE
    await store.commit([removed])
    page = await store.history(HistoryFilter(), 10)
    assert [(e.resource_id, e.version, e.op, e.method) for e in page.entries] == [
        ("t1", 3, ChangeOp.DELETE, WriteMethod.DELETE), ("p1", 1, ChangeOp.CREATE, WriteMethod.POST),
        ("t2", 1, ChangeOp.CREATE, None), ("t1", 2, ChangeOp.UPDATE, WriteMethod.PATCH),
        ("t1", 1, ChangeOp.CREATE, WriteMethod.PUT)]
    assert [(await store.read_version("Task", "t1", v)).method for v in (1, 2, 3)] == [  # type: ignore[union-attr]
        WriteMethod.PUT, WriteMethod.PATCH, WriteMethod.DELETE]
    instance = await store.history(HistoryFilter("Task", "t1"), 10)
    assert [e.method for e in instance.entries] == [WriteMethod.DELETE, WriteMethod.PATCH, WriteMethod.PUT]


async def test_a_sqlite_file_without_the_method_column_opens_and_derives_as_before(tmp_path: Path) -> None:
    path = tmp_path / "before-methods.sqlite3"
    store = SqliteStore(path, read_threads=1)
    await store.open()
    await put(store, "Task", "t1")
    await store.close()
    with closing(sqlite3.connect(path)) as conn:  # the file as the release before methods wrote it
        conn.execute("ALTER TABLE versions DROP COLUMN method")
        conn.commit()
    store = SqliteStore(path, read_threads=1)
    await store.open()
    try:
        patched = change("Task", "t1", 1, body={"status": "ready"})
        patched.method = WriteMethod.PATCH
        await store.commit([patched])
        page = await store.history(HistoryFilter("Task", "t1"), 10)
        assert [(e.version, e.op, e.method) for e in page.entries] == [
            (2, ChangeOp.UPDATE, WriteMethod.PATCH), (1, ChangeOp.CREATE, None)]
    finally:
        await store.close()
