"""The rows one SQLite commit writes, gathered change by change and written at the end of the commit, a few
statements per table whatever the number of changes.

A commit of a file import's batch holds thousands of changes. One statement per change and table (``resources``
row, history row, outbox row, index rows) cost more than the database work itself, and worse: Python's sqlite3
lets go of the GIL around every statement step, so while the import plans its next batch on the event loop
thread, each step of this thread waited for the GIL to come back (a 100,000-row ``executemany`` next to one busy
thread took 30 s instead of 0.25 s). So each table gets its rows as **one JSON array** bound to one statement
(``json_each``): one step, parsed by SQLite itself.

* ``resources``: the last state of each changed resource (one ``UPDATE … FROM`` for those that existed before the
  commit, one ``INSERT`` for new ones, whose row ids are then read back in one query).
* ``versions`` and ``outbox``: every change, in the changes' order (their sequence numbers follow it).
* Index tables: the last version's values. For resources that had rows, the current rows are read back (one
  query per table) and only the parameters whose values differ are rewritten: an update usually changes a few
  search values (a status, a date) out of a dozen, and every index row lives in two B-trees.

Bodies travel as JSON strings and are stored as the exact UTF-8 bytes they were (``CAST … AS BLOB``).
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from math import isfinite
from typing import Any

import orjson

from fhir_clr.store.port import VersionConflict
from fhir_clr.store.query import IndexEntries, ParamType
from fhir_clr.store.sqlite.schema import INDEX_TABLES

ResourceKey = tuple[str, str]
"""``(type, id)``."""


@dataclass(frozen=True, slots=True)
class _IndexTable:
    """One index table: its name and its columns (every column is part of the key; the first two are always
    ``rid`` and ``param``)."""

    name: str
    columns: tuple[str, ...]


_INDEX_TABLES = (
    _IndexTable(INDEX_TABLES[ParamType.TOKEN], ("rid", "param", "system", "code")),
    _IndexTable(INDEX_TABLES[ParamType.REFERENCE], ("rid", "param", "ref")),
    _IndexTable(INDEX_TABLES[ParamType.DATE], ("rid", "param", "lo", "hi")),
    _IndexTable(INDEX_TABLES[ParamType.STRING], ("rid", "param", "norm", "exact")),
    _IndexTable(INDEX_TABLES[ParamType.NUMBER], ("rid", "param", "lo", "hi")),
    _IndexTable(INDEX_TABLES[ParamType.QUANTITY], ("rid", "param", "lo", "hi", "system", "code")),
    _IndexTable(INDEX_TABLES[ParamType.URI], ("rid", "param", "uri")),
)
"""The index tables with their columns, in the order of :func:`_index_rows`' row sets."""

_RESOURCE_STATE = ("version", "last_updated_us", "last_updated", "deleted", "op", "body")
_VERSION_COLUMNS = ("type", "id", "version", "op", "last_updated_us", "last_updated", "body", "method")
_OUTBOX_COLUMNS = ("type", "id", "version", "op", "last_updated_us")


@dataclass(slots=True)
class PendingRows:
    """Everything one commit writes, queued by :meth:`change` and written by :meth:`write`."""

    before: dict[ResourceKey, tuple[int, int]]
    """``(rid, version)`` of the changed resources that had a row before the commit (tombstones included)."""
    versions_now: dict[ResourceKey, int] = field(default_factory=dict)
    states: dict[ResourceKey, tuple[Any, ...]] = field(default_factory=dict)
    """The last ``resources`` state of each changed resource (columns of ``_RESOURCE_STATE``)."""
    history: list[tuple[Any, ...]] = field(default_factory=list)
    outbox: list[tuple[Any, ...]] = field(default_factory=list)
    indexes: dict[ResourceKey, IndexEntries | None] = field(default_factory=dict)
    """The index entries of each changed resource's last version (None: no rows, as after a delete)."""

    def change(self, key: ResourceKey, expected_version: int, op: str, lu_us: int, lu: str, body: bytes | None,
               index: IndexEntries | None, method: str | None = None) -> int:
        """Queue one change at its expected version; its new version number. Raises VersionConflict (nothing
        is written before :meth:`write`, so the caller's savepoint holds nothing of this commit yet)."""
        actual = self.versions_now.get(key)
        if actual is None:
            actual = self.before[key][1] if key in self.before else 0
        if actual != expected_version:
            raise VersionConflict(key[0], key[1], expected_version, actual)
        version = self.versions_now[key] = expected_version + 1
        text = None if body is None else body.decode()
        self.states[key] = (version, lu_us, lu, body is None, op, text)
        self.history.append((*key, version, op, lu_us, lu, text, method))
        self.outbox.append((*key, version, op, lu_us))
        self.indexes[key] = index if body is not None else None
        return version

    def write(self, conn: sqlite3.Connection) -> None:
        """Write every queued row (inside the caller's transaction)."""
        updated = [(self.before[key][0], *state) for key, state in self.states.items() if key in self.before]
        if updated:
            assignments = ", ".join(f"{column} = {_json_value(n + 1, column == 'body')}"
                                    for n, column in enumerate(_RESOURCE_STATE))
            conn.execute(f"UPDATE resources SET {assignments} FROM json_each(?) AS u "
                         f"WHERE resources.rid = json_extract(u.value, '$[0]')", (orjson.dumps(updated),))
        created = [(*key, *state) for key, state in self.states.items() if key not in self.before]
        rids = {key: rid for key, (rid, _) in self.before.items()}
        if created:
            _insert_json(conn, "resources", ("type", "id", *_RESOURCE_STATE), created)
            rids.update((key, rid) for key, (rid, _) in current_rows(conn, (c[:2] for c in created)).items())
        _insert_json(conn, "versions", _VERSION_COLUMNS, self.history)
        self._write_indexes(conn, rids)
        _insert_json(conn, "outbox", _OUTBOX_COLUMNS, self.outbox)

    def _write_indexes(self, conn: sqlite3.Connection, rids: dict[ResourceKey, int]) -> None:
        """Insert the rows of new resources; for the others, rewrite the parameters whose values changed."""
        stale = {rids[key] for key in self.indexes if key in self.before}
        stale_list = list(stale)
        wanted_tables = _index_rows({rids[key]: index for key, index in self.indexes.items() if index is not None})
        for table, wanted in zip(_INDEX_TABLES, wanted_tables, strict=True):
            current = _by_param(_json_rows(
                conn, f"SELECT json_group_array(json_array({', '.join(table.columns)})) "
                      f"FROM {table.name} WHERE rid IN (SELECT value FROM json_each(?))", stale_list)) if stale else {}
            inserts: list[tuple[Any, ...]] = []
            for part, rows in wanted.items():
                if part[0] not in stale or current.get(part) != rows:
                    inserts.extend(rows)
            gone = [part for part, rows in current.items() if wanted.get(part) != rows]
            if gone:
                conn.execute(f"DELETE FROM {table.name} WHERE (rid, param) IN "
                             "(SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?))",
                             (orjson.dumps(gone),))
            _insert_json(conn, table.name, table.columns, inserts)


def current_rows(conn: sqlite3.Connection, keys: Iterable[ResourceKey]) -> dict[ResourceKey, tuple[int, int]]:
    """``(rid, version)`` of those ``keys`` that have a ``resources`` row (one query)."""
    found = _json_rows(conn, "SELECT json_group_array(json_array(r.type, r.id, r.rid, r.version)) "
                             "FROM json_each(?) AS j JOIN resources r ON r.type = json_extract(j.value, '$[0]') "
                             "AND r.id = json_extract(j.value, '$[1]')", list(keys))
    return {(type_, id_): (rid, version) for type_, id_, rid, version in found}


def _json_value(position: int, blob: bool) -> str:
    """The SQL reading item ``position`` of a ``json_each`` row (a body as the bytes of its text)."""
    value = f"json_extract(value, '$[{position}]')"
    return f"CAST({value} AS BLOB)" if blob else value


def _insert_json(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """Insert ``rows`` (in their order) with one statement reading them from a JSON array."""
    if rows:
        values = ", ".join(_json_value(n, column == "body") for n, column in enumerate(columns))
        conn.execute(f"INSERT INTO {table} ({', '.join(columns)}) "
                     f"SELECT {values} FROM json_each(?) ORDER BY key", (orjson.dumps(rows),))


def _json_rows(conn: sqlite3.Connection, sql: str, values: list[Any]) -> list[list[Any]]:
    """The rows of a query that aggregates them into one JSON array, given ``values`` as its JSON argument."""
    rows: list[list[Any]] = orjson.loads(conn.execute(sql, (orjson.dumps(values),)).fetchone()[0])
    return rows


def _by_param(rows: Iterable[list[Any]]) -> dict[tuple[int, str], set[tuple[Any, ...]]]:
    """Index rows read back as JSON arrays, grouped by ``(rid, param)``."""
    grouped: dict[tuple[int, str], set[tuple[Any, ...]]] = defaultdict(set)
    for row in rows:
        grouped[row[0], row[1]].add(tuple(row))
    return grouped


def _index_rows(indexes: dict[int, IndexEntries]) -> list[dict[tuple[int, str], set[tuple[Any, ...]]]]:
    """The wanted rows of each index table grouped by ``(rid, param)``, in :data:`_INDEX_TABLES` order
    (duplicates collapsed; an absent system or code as '', as the key columns hold it)."""
    tables: list[dict[tuple[int, str], set[tuple[Any, ...]]]] = [defaultdict(set) for _ in _INDEX_TABLES]
    tokens, references, dates, strings, numbers, quantities, uris = tables
    for rid, index in indexes.items():
        for p, s, c in index.tokens:
            tokens[rid, p].add((rid, p, s or "", c))
        for p, r in index.references:
            references[rid, p].add((rid, p, r))
        for p, lo, hi in index.dates:
            dates[rid, p].add((rid, p, lo, hi))
        for p, n, e in index.strings:
            strings[rid, p].add((rid, p, n, e))
        for p, low, high in index.numbers:
            if isfinite(low) and isfinite(high):  # JSON has no infinities (no FHIR decimal parses to one)
                numbers[rid, p].add((rid, p, low, high))
        for p, low, high, system, code in index.quantities:
            if isfinite(low) and isfinite(high):
                quantities[rid, p].add((rid, p, low, high, system or "", code or ""))
        for p, u in index.uris:
            uris[rid, p].add((rid, p, u))
    return tables
