"""The rows one SQLite commit writes besides ``resources``, gathered change by change and written at the end of
the commit with one ``executemany`` per table and statement.

A commit of a file import's batch holds thousands of changes; one statement per table and change (history row,
outbox row, a delete and an insert per index table) cost more than the database work itself. The buffer keeps
the order of history and outbox rows (their sequence numbers follow the changes' order) and, for a resource
changed twice in one commit, only the index rows of its last version.

Index rows of an updated resource are written as a difference: its current rows are read back (one query per
table for the whole commit) and only the rows that went away are deleted and only the new ones inserted. An
update usually changes a few search values (a status, a date) out of a dozen, and every index row lives in two
B-trees, so rewriting them all was most of an update's cost.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from fhir_clr.store.query import IndexEntries

_CHUNK = 500
"""Row ids per ``IN (...)`` read of current index rows (well under SQLite's bound-parameter limit)."""


@dataclass(frozen=True, slots=True)
class _IndexTable:
    """One index table: its name and its key columns (all of them: every column is part of the key)."""

    name: str
    columns: tuple[str, ...]

    def insert_sql(self) -> str:
        return f"INSERT INTO {self.name} ({', '.join(self.columns)}) VALUES ({', '.join('?' * len(self.columns))})"

    def delete_sql(self) -> str:
        return f"DELETE FROM {self.name} WHERE {' AND '.join(f'{c} = ?' for c in self.columns)}"

    def select_sql(self, count: int) -> str:
        return f"SELECT {', '.join(self.columns)} FROM {self.name} WHERE rid IN ({', '.join('?' * count)})"


INDEX_TABLES = (
    _IndexTable("idx_token", ("rid", "param", "system", "code")),
    _IndexTable("idx_reference", ("rid", "param", "ref")),
    _IndexTable("idx_date", ("rid", "param", "lo", "hi")),
    _IndexTable("idx_string", ("rid", "param", "norm", "exact")),
    _IndexTable("idx_number", ("rid", "param", "lo", "hi")),
    _IndexTable("idx_quantity", ("rid", "param", "lo", "hi", "system", "code")),
    _IndexTable("idx_uri", ("rid", "param", "uri")),
)
"""The index tables, in the order of :func:`_index_rows`' row sets."""


@dataclass(slots=True)
class PendingRows:
    """History, outbox and index rows of one commit, not yet written."""

    versions: list[tuple[Any, ...]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    stale: set[int] = field(default_factory=set)
    """``rid``s that had index rows before this commit (their current rows are compared, not just added to)."""
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
        stale = sorted(self.stale)
        for table, wanted in zip(INDEX_TABLES, _index_rows(self.indexes), strict=True):
            current = set(_current_rows(conn, table, stale)) if stale else set()
            if current - wanted:
                conn.executemany(table.delete_sql(), current - wanted)
            if wanted - current:
                conn.executemany(table.insert_sql(), wanted - current)
        if self.outbox:
            conn.executemany("INSERT INTO outbox (type, id, version, op, last_updated_us) VALUES (?, ?, ?, ?, ?)",
                             self.outbox)


def _current_rows(conn: sqlite3.Connection, table: _IndexTable, rids: list[int]) -> Iterator[tuple[Any, ...]]:
    """The rows ``table`` holds now for ``rids``."""
    for start in range(0, len(rids), _CHUNK):
        chunk = rids[start:start + _CHUNK]
        yield from conn.execute(table.select_sql(len(chunk)), chunk)


def _index_rows(indexes: dict[int, IndexEntries]) -> Iterable[set[tuple[Any, ...]]]:
    """The wanted rows of each index table, in :data:`INDEX_TABLES` order (duplicates collapsed; an absent
    system or code as '', as the key columns hold it)."""
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
    return tokens, references, dates, strings, numbers, quantities, uris
