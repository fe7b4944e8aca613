"""The rows one SQLite commit writes besides ``resources``, gathered change by change and written at the end of
the commit with one ``executemany`` per table.

A commit of a file import's batch holds thousands of changes; one statement per table and change (history row,
outbox row, a delete and an insert per index table) cost more than the database work itself. The buffer keeps
the order of history and outbox rows (their sequence numbers follow the changes' order) and, for a resource
changed twice in one commit, only the index rows of its last version.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from fhir_clr.store.query import IndexEntries

INDEX_TABLES = ("idx_token", "idx_reference", "idx_date", "idx_string", "idx_number", "idx_quantity", "idx_uri")


@dataclass(slots=True)
class PendingRows:
    """History, outbox and index rows of one commit, not yet written."""

    versions: list[tuple[Any, ...]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    stale: set[int] = field(default_factory=set)
    """``rid``s whose index rows (of an earlier version) must go."""
    indexes: dict[int, IndexEntries] = field(default_factory=dict)
    """The index entries of each changed resource's new version, by ``rid``."""

    def version(self, resource_type: str, resource_id: str, version: int, op: str, lu_us: int, lu: str,
                body: bytes | None) -> None:
        """Queue the history row and the outbox event of one change."""
        self.versions.append((resource_type, resource_id, version, op, lu_us, lu, body))
        self.outbox.append((resource_type, resource_id, version, op, lu_us))

    def reindex(self, rid: int, index: IndexEntries | None, *, existed: bool) -> None:
        """Replace the index rows of ``rid`` by ``index`` (None: no rows, as after a delete); ``existed`` says
        whether the resource had rows before this commit."""
        if existed:
            self.stale.add(rid)
        if index is None:
            self.indexes.pop(rid, None)
        else:
            self.indexes[rid] = index

    def write(self, conn: sqlite3.Connection) -> None:
        """Write every queued row (inside the caller's transaction)."""
        if self.versions:
            conn.executemany("INSERT INTO versions (type, id, version, op, last_updated_us, last_updated, body) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", self.versions)
        if self.stale:
            stale = [(rid,) for rid in self.stale]
            for table in INDEX_TABLES:
                conn.executemany(f"DELETE FROM {table} WHERE rid = ?", stale)
        for sql, rows in _index_rows(self.indexes):
            if rows:
                conn.executemany(sql, rows)
        if self.outbox:
            conn.executemany("INSERT INTO outbox (type, id, version, op, last_updated_us) VALUES (?, ?, ?, ?, ?)",
                             self.outbox)


def _index_rows(indexes: dict[int, IndexEntries]) -> list[tuple[str, set[tuple[Any, ...]]]]:
    """One insert statement per index table with its rows (duplicates collapsed; absent system/code as '')."""
    tokens: set[tuple[Any, ...]] = set()
    references: set[tuple[Any, ...]] = set()
    dates: set[tuple[Any, ...]] = set()
    strings: set[tuple[Any, ...]] = set()
    numbers: set[tuple[Any, ...]] = set()
    quantities: set[tuple[Any, ...]] = set()
    uris: set[tuple[Any, ...]] = set()
    for rid, index in indexes.items():
        tokens.update((rid, p, s or "", c) for p, s, c in index.tokens)
        references.update((rid, p, r) for p, r in index.references)
        dates.update((rid, p, lo, hi) for p, lo, hi in index.dates)
        strings.update((rid, p, n, e) for p, n, e in index.strings)
        numbers.update((rid, p, lo, hi) for p, lo, hi in index.numbers)
        quantities.update((rid, p, lo, hi, s or "", c or "") for p, lo, hi, s, c in index.quantities)
        uris.update((rid, p, u) for p, u in index.uris)
    return [
        ("INSERT INTO idx_token (rid, param, system, code) VALUES (?, ?, ?, ?)", tokens),
        ("INSERT INTO idx_reference (rid, param, ref) VALUES (?, ?, ?)", references),
        ("INSERT INTO idx_date (rid, param, lo, hi) VALUES (?, ?, ?, ?)", dates),
        ("INSERT INTO idx_string (rid, param, norm, exact) VALUES (?, ?, ?, ?)", strings),
        ("INSERT INTO idx_number (rid, param, lo, hi) VALUES (?, ?, ?, ?)", numbers),
        ("INSERT INTO idx_quantity (rid, param, lo, hi, system, code) VALUES (?, ?, ?, ?, ?, ?)", quantities),
        ("INSERT INTO idx_uri (rid, param, uri) VALUES (?, ?, ?)", uris),
    ]
