"""Contract: history (instance, type, system, since, at, paging) and the outbox."""

from __future__ import annotations

import itertools

import pytest

from fhir_clr.store.port import ChangeOp, HistoryFilter, InvalidPageToken, Store

from .helpers import change, put, remove


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
