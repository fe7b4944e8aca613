"""SQLite read statements that must stay index lookups however large the store grows."""

from __future__ import annotations

from pathlib import Path

from fhir_clr.store.sqlite import reads
from fhir_clr.store.sqlite.schema import connect, create_schema
from tests.sqlite_explain import Explaining


def test_read_many_looks_each_key_up_by_type_and_id(tmp_path: Path) -> None:
    """Not through the (type, deleted) index, which reads every resource of the type (SQLite picks it for long
    id lists when the deleted flag is an indexable term)."""
    conn = connect(tmp_path / "store.sqlite3", "NORMAL", read_only=False)
    create_schema(conn)
    conn.executemany("INSERT INTO resources (type, id, version, last_updated_us, last_updated, deleted, op, body) "
                     "VALUES (?, ?, 1, 0, '', 0, 'create', ?)",
                     [(kind, f"{kind[0]}{n}", b"{}") for kind in ("ServiceRequest", "Task") for n in range(600)])
    explaining = Explaining(conn)
    keys = [("ServiceRequest", f"S{n}") for n in range(0, 600, 2)] + [("Task", "T2"), ("Task", "nope")]
    found = reads.read_many(explaining, keys)
    assert len(found) == 301 and {r.resource_id for r in found} >= {"S0", "S598", "T2"}
    lookups = [plan for plan in explaining.plans if plan.startswith(("SEARCH", "SCAN"))]
    assert len(lookups) == 2 and all(plan.endswith("(type=? AND id=?)") for plan in lookups), explaining.plans
    conn.close()
