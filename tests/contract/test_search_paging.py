"""Contract: sorting (several keys, both directions, missing values last) and keyset paging."""

from __future__ import annotations

import functools
import operator

import pytest

from fhir_clr.store.port import InvalidPageToken, Store
from fhir_clr.store.query import (
    Condition,
    IndexEntries,
    ParamType,
    Prefix,
    Query,
    RangeValue,
    SortKey,
    TokenValue,
)

from .helpers import day, ids, put, remove

NAME = SortKey("name", ParamType.STRING)
BIRTH = SortKey("birthdate", ParamType.DATE)


def desc(key: SortKey) -> SortKey:
    return SortKey(key.param, key.type, True)


async def _people(store: Store) -> None:
    rows = {"pa": ("adams", "1990-01-01"), "pb": ("baker", "1980-01-01"), "pc": (None, "1990-01-01"),
            "pd": ("adams", "1970-01-01"), "pe": ("carter", None), "pf": (None, None)}
    for pid, (name, born) in rows.items():
        await put(store, "Patient", pid, IndexEntries(strings=[("name", name, name.title())] if name else [],
                                                      dates=[("birthdate", *day(born))] if born else []))


@pytest.mark.parametrize(("sort", "expected"), [
    ([NAME, BIRTH], ["pd", "pa", "pb", "pe", "pc", "pf"]),
    ([NAME, desc(BIRTH)], ["pa", "pd", "pb", "pe", "pc", "pf"]),
    ([desc(NAME), BIRTH], ["pe", "pb", "pd", "pa", "pc", "pf"]),
    ([desc(BIRTH), desc(NAME)], ["pa", "pc", "pb", "pd", "pe", "pf"]),
    ([SortKey("_id", ParamType.TOKEN, True)], ["pf", "pe", "pd", "pc", "pb", "pa"]),
    ([SortKey("_lastUpdated", ParamType.DATE)], ["pa", "pb", "pc", "pd", "pe", "pf"]),
    ([], ["pa", "pb", "pc", "pd", "pe", "pf"]),
])
async def test_sort(store: Store, sort: list[SortKey], expected: list[str]) -> None:
    await _people(store)
    assert await ids(store, "Patient", sort=sort) == expected


async def test_sort_uses_smallest_value_ascending_and_largest_descending(store: Store) -> None:
    await put(store, "Patient", "wide", IndexEntries(strings=[("name", "aaron", "Aaron"), ("name", "zed", "Zed")]))
    await put(store, "Patient", "mid", IndexEntries(strings=[("name", "mike", "Mike")]))
    assert await ids(store, "Patient", sort=[NAME]) == ["wide", "mid"]
    assert await ids(store, "Patient", sort=[desc(NAME)]) == ["wide", "mid"]


async def _walk(store: Store, query: Query) -> tuple[list[list[str]], list[list[str]]]:
    """Pages forward to the end, then backward to the start; returns both lists of pages."""
    forward, page = [], await store.search(query)
    assert page.prev_token is None
    forward.append([r.resource_id for r in page.resources])
    while page.next_token:
        page = await store.search(Query(query.resource_type, query.criteria, query.sort, query.count,
                                        page.next_token))
        assert page.prev_token is not None
        forward.append([r.resource_id for r in page.resources])
    backward = [forward[-1]]
    while page.prev_token:
        page = await store.search(Query(query.resource_type, query.criteria, query.sort, query.count,
                                        page.prev_token))
        assert page.next_token is not None
        backward.append([r.resource_id for r in page.resources])
    backward.reverse()
    return forward, backward


@pytest.mark.parametrize("sort", [[], [desc(SortKey("_lastUpdated", ParamType.DATE))],
                                  [SortKey("_id", ParamType.TOKEN)], [NAME, desc(BIRTH)], [desc(NAME), BIRTH]])
async def test_keyset_paging_forward_and_back(store: Store, sort: list[SortKey]) -> None:
    for i in range(23):
        name = None if i % 5 == 0 else f"n{i % 4}"
        await put(store, "Patient", f"p{i:02d}", IndexEntries(
            strings=[("name", name, name)] if name else [], dates=[("birthdate", *day(f"19{50 + i % 3}-01-01"))],
            tokens=[("active", None, "true")]))
    criteria = [Condition("active", ParamType.TOKEN, (TokenValue(None, "true"),))]
    everything = await ids(store, "Patient", *criteria, sort=sort)
    assert len(everything) == 23
    forward, backward = await _walk(store, Query("Patient", criteria, sort, 5))
    assert [len(p) for p in forward] == [5, 5, 5, 5, 3]
    assert functools.reduce(operator.iadd, forward, []) == everything
    assert backward == forward


async def test_exact_multiple_of_page_size_has_no_empty_last_page(store: Store) -> None:
    for i in range(6):
        await put(store, "Patient", f"p{i}")
    forward, _ = await _walk(store, Query("Patient", count=3))
    assert forward == [["p0", "p1", "p2"], ["p3", "p4", "p5"]]
    page = await store.search(Query("Patient", count=0))
    assert page.resources == [] and page.next_token is None


async def test_paging_is_stable_while_writes_happen(store: Store) -> None:
    for i in range(30):
        await put(store, "Task", f"t{i:02d}", IndexEntries(tokens=[("status", None, "requested")]))
    query = Query("Task", [Condition("status", ParamType.TOKEN, (TokenValue(None, "requested"),))], count=7)
    seen: list[str] = []
    page = await store.search(query)
    step = 0
    while True:
        seen.extend(r.resource_id for r in page.resources)
        # unrelated writes between pages: other types, other statuses, new matches at the end, a deletion
        await put(store, "Patient", f"noise{step}")
        await put(store, "Task", f"other{step}", IndexEntries(tokens=[("status", None, "accepted")]))
        await put(store, "Task", f"t{step:02d}", IndexEntries(tokens=[("status", None, "requested")]))
        step += 1
        if not page.next_token:
            break
        page = await store.search(Query(query.resource_type, query.criteria, query.sort, query.count,
                                        page.next_token))
    originals = [s for s in seen if s.startswith("t")]
    assert len(originals) == len(set(originals)) == 30


async def test_deleted_cursor_row_does_not_break_paging(store: Store) -> None:
    for i in range(9):
        await put(store, "Patient", f"p{i}")
    first = await store.search(Query("Patient", count=3))
    await remove(store, "Patient", "p2")
    second = await store.search(Query("Patient", count=3, page_token=first.next_token))
    assert [r.resource_id for r in second.resources] == ["p3", "p4", "p5"]


async def test_tokens_are_tied_to_their_query(store: Store) -> None:
    for i in range(5):
        await put(store, "Patient", f"p{i}", IndexEntries(tokens=[("active", None, "true")]))
    page = await store.search(Query("Patient", count=2))
    assert page.next_token is not None
    other = Query("Patient", [Condition("active", ParamType.TOKEN, (TokenValue(None, "true"),))], count=2,
                  page_token=page.next_token)
    with pytest.raises(InvalidPageToken):
        await store.search(other)
    with pytest.raises(InvalidPageToken):
        await store.search(Query("Patient", sort=[SortKey("_id", ParamType.TOKEN)], count=2,
                                 page_token=page.next_token))
    with pytest.raises(InvalidPageToken):
        await store.search(Query("Patient", count=2, page_token="garbage!"))
    # page size may change between pages
    resized = await store.search(Query("Patient", count=3, page_token=page.next_token))
    assert [r.resource_id for r in resized.resources] == ["p2", "p3", "p4"]


@pytest.mark.parametrize("broad", [False, True], ids=["selective", "broad"])
async def test_date_sorted_pages_restricted_by_the_same_date(store: Store, broad: bool,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """``status=requested&due-date=lt…&_sort=due-date``: the same pages whichever plan the adapter picks. With
    ``broad``, no criterion counts as selective, so SQLite walks the date index instead of sorting."""
    if broad:
        monkeypatch.setattr("fhir_clr.store.sqlite.search.DRIVE_LIMIT", 1)
    due: dict[str, list[str]] = {}
    for i in range(31):
        first = f"2026-{1 + i % 9:02d}-{1 + (i * 7) % 27:02d}"
        due[f"t{i:02d}"] = [first, "2026-12-30"] if i % 4 == 0 else [first]
    due["late"], due["none"] = ["2027-02-01"], []
    for task_id, days in due.items():
        status = "accepted" if task_id == "t05" else "requested"
        await put(store, "Task", task_id, IndexEntries(tokens=[("status", None, status)],
                                                       dates=[("due-date", *day(d)) for d in days]))
    before = day("2027-01-01")[0]
    criteria = [Condition("status", ParamType.TOKEN, (TokenValue(None, "requested"),)),
                Condition("due-date", ParamType.DATE, (RangeValue(Prefix.LT, before, before),))]
    expected = sorted((t for t, days in due.items() if days and t not in ("late", "t05")), key=lambda t: min(due[t]))
    forward, backward = await _walk(store, Query("Task", criteria, [SortKey("due-date", ParamType.DATE)], 6))
    assert functools.reduce(operator.iadd, forward, []) == expected
    assert backward == forward
