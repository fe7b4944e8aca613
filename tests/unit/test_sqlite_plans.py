"""The query plan of every hot SQLite statement (the mixed load of ``bench/soak.py``): each is an index lookup
or an index range, never a pass over a table that grows with the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fhir_clr.store.port import Change, ChangeOp, HistoryFilter, RecordWrite
from fhir_clr.store.query import Condition, IndexEntries, ParamType, Query, ReferenceValue, SortKey, TokenValue
from fhir_clr.store.sqlite import reads, records, search, writes
from fhir_clr.store.sqlite.schema import connect, create_schema
from fhir_clr.store.sqlite.search import run_count, run_search
from tests.sqlite_explain import Explaining

TASKS = 3000
OWNERS = 13


def _task_index(n: int, status: str) -> IndexEntries:
    return IndexEntries(tokens=[("status", "http://hl7.org/fhir/task-status", status), ("intent", None, "order")],
                        references=[("owner", f"Organization/o{n % OWNERS}"), ("patient", f"Patient/p{n % 500}"),
                                    ("subject", f"Patient/p{n % 500}")],
                        dates=[("authored-on", 1_700_000_000_000_000 + n, 1_700_000_000_000_000 + n)])


def _task(n: int, expected: int = 0, status: str = "requested") -> Change:
    op = ChangeOp.CREATE if expected == 0 else ChangeOp.UPDATE
    return Change(op, "Task", f"t{n}", expected, {"resourceType": "Task", "id": f"t{n}", "status": status},
                  _task_index(n, status))


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    """A store of TASKS Tasks over OWNERS owners, most of them closed (a second version)."""
    connection = connect(tmp_path / "store.sqlite3", "OFF", read_only=False)
    create_schema(connection)
    writes.commit_group(connection, [[_task(n) for n in range(TASKS)]])
    writes.commit_group(connection, [[_task(n, 1, "completed") for n in range(TASKS) if n % 10]])
    yield connection
    connection.close()


def _worklist(owner: str = "Organization/o3", count: int = 20) -> Query:
    return Query("Task", [Condition("owner", ParamType.REFERENCE, (ReferenceValue(owner),)),
                          Condition("status", ParamType.TOKEN, (TokenValue(None, "requested"),))], [], count)


def test_commits_write_through_indexes(conn: sqlite3.Connection) -> None:
    """Creates, updates (index rows read back and rewritten), deletes, match keys, history and outbox rows."""
    explaining = Explaining(conn)
    created = [_task(TASKS + n) for n in range(3)]
    updated = [_task(n, 2, "accepted") for n in (1, 2)]
    keyed = Change(ChangeOp.CREATE, "Task", "keyed", 0, {"resourceType": "Task", "id": "keyed"}, IndexEntries(),
                   ("Task?identifier=x",))
    deleted = Change(ChangeOp.DELETE, "Task", "t3", 2)
    outcomes = writes.commit_group(explaining, [created, updated, [keyed], [deleted]])
    assert not any(isinstance(outcome, Exception) for outcome in outcomes), outcomes
    assert explaining.statements and not explaining.full_scans(), explaining.full_scans()


def test_reads_and_history_are_key_lookups(conn: sqlite3.Connection) -> None:
    explaining = Explaining(conn)
    assert reads.read(explaining, "Task", "t5") is not None
    assert reads.read_version(explaining, "Task", "t5", 1) is not None
    assert len(reads.history(explaining, HistoryFilter("Task", "t5"), 10, None).entries) == 2
    assert len(reads.outbox_after(explaining, 4000, 50)) == 50
    assert explaining.plans == [
        "SEARCH r USING INDEX sqlite_autoindex_resources_1 (type=? AND id=?)",
        "SEARCH v USING INDEX sqlite_autoindex_versions_1 (type=? AND id=? AND version=?)",
        "SEARCH v USING INDEX sqlite_autoindex_versions_1 (type=? AND id=?)",
        "SEARCH outbox USING INTEGER PRIMARY KEY (rowid>?)"]


def test_history_walks_the_versions_newest_first(conn: sqlite3.Connection) -> None:
    """A type's history reads its by-type index backwards; the system's walks the table backwards in seq
    order (its plan's one ``SCAN``, without a sort: it stops when the page is full)."""
    explaining = Explaining(conn)
    assert len(reads.history(explaining, HistoryFilter("Task"), 10, None).entries) == 10
    assert explaining.plans == ["SEARCH v USING INDEX versions_by_type (type=?)"]
    explaining.clear()
    assert len(reads.history(explaining, HistoryFilter(), 10, None).entries) == 10
    assert explaining.plans == ["SCAN v"]


def test_worklist_page_and_total_use_the_index_rows(conn: sqlite3.Connection) -> None:
    """``Task?owner=…&status=requested&_count=20``: the page walks the owner's index rows in rid order and stops
    when it is full (no sort of all the owner's Tasks); status is probed on the by-code token index."""
    explaining = Explaining(conn)
    page = run_search(explaining, _worklist())
    assert len(page.resources) == 20 and page.next_token is not None
    _, plan = explaining.statements[-1]
    assert "SEARCH idx_reference USING COVERING INDEX idx_reference_value (param=? AND ref=?)" in plan, plan
    assert "SEARCH idx_token USING COVERING INDEX idx_token_code (param=? AND code=? AND rid=?)" in plan, plan
    assert not any("TEMP B-TREE" in line for line in plan), plan
    assert run_count(explaining, _worklist()) == sum(1 for n in range(TASKS) if n % OWNERS == 3 and n % 10 == 0)
    assert not explaining.full_scans(), explaining.full_scans()


def test_patient_search_by_last_updated_drives_from_the_patient(conn: sqlite3.Connection) -> None:
    """``Task?patient=…&_sort=-_lastUpdated&_count=10``."""
    explaining = Explaining(conn)
    query = Query("Task", [Condition("patient", ParamType.REFERENCE, (ReferenceValue("Patient/p7"),))],
                  [SortKey("_lastUpdated", ParamType.DATE, descending=True)], 10)
    assert len(run_search(explaining, query).resources) == 6
    assert not explaining.full_scans(), explaining.full_scans()
    assert any("idx_reference_value (param=? AND ref=?)" in line for line in explaining.plans), explaining.plans


def test_a_large_page_of_many_members_drives_from_their_index_rows(conn: sqlite3.Connection,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An import's lookup ``Task?patient=<a batch's Members>`` asks for a page as large as its matches: it drives
    from the Members' index rows even when they are more than the small-page limit (an ordered scan would read
    the whole type before the page is full, probing each row against every Member)."""
    monkeypatch.setattr(search, "DRIVE_LIMIT", 100)  # 50 Members' 300 Tasks are "many" for a page of 20
    explaining = Explaining(conn)
    members = tuple(ReferenceValue(f"Patient/p{n}") for n in range(50))
    query = Query("Task", [Condition("patient", ParamType.REFERENCE, members)], [], 8 * len(members))
    assert len(run_search(explaining, query).resources) == 6 * len(members)
    _, plan = explaining.statements[-1]
    assert not any("resources_by_type" in line for line in plan), plan
    assert any("idx_reference_value (param=? AND ref=?)" in line for line in plan), plan


def test_last_updated_sort_walks_its_index(conn: sqlite3.Connection) -> None:
    """``Task?_sort=-_lastUpdated&_count=10``: the newest ten, read from the end of the by-update index."""
    explaining = Explaining(conn)
    query = Query("Task", [], [SortKey("_lastUpdated", ParamType.DATE, descending=True)], 10)
    assert [r.resource_id for r in run_search(explaining, query).resources][:2] == [f"t{TASKS - 1}",
                                                                                    f"t{TASKS - 2}"]
    assert not explaining.full_scans(), explaining.full_scans()
    assert any("resources_by_updated" in line for line in explaining.plans), explaining.plans


def test_subscription_book_and_records_are_key_lookups(conn: sqlite3.Connection) -> None:
    """What the subscription matcher reads for each outbox batch: the live Subscriptions, its cursor and
    counters (records), and the lease it holds."""
    explaining = Explaining(conn)
    assert run_search(explaining, Query("Subscription", [], [], 1000)).resources == []
    records.write_records(explaining, [RecordWrite("subscription-cursor", "events", {"seq": 1})])
    assert records.get_record(explaining, "subscription-cursor", "events") is not None
    assert records.list_records(explaining, "subscription-counter", "", None, 100) == []
    assert records.acquire_lease(explaining, "subscriptions/generate", "me", 30.0)
    assert not explaining.full_scans(), explaining.full_scans()
