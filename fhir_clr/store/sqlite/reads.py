"""Read-side statements of the SQLite store (run on a reader thread's connection): reads, history, outbox."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from itertools import groupby
from typing import Any

from fhir_clr.store.paging import decode_token, encode_token, fingerprint
from fhir_clr.store.port import (
    ChangeOp,
    HistoryFilter,
    HistoryPage,
    InvalidPageToken,
    OutboxEvent,
    StoredResource,
    WriteMethod,
)

RESOURCE_COLUMNS = "r.type, r.id, r.version, r.last_updated_us, r.last_updated, r.deleted, r.body, r.op"
"""Columns of ``resources r`` that make a StoredResource, in ``stored()`` order."""

_VERSION_COLUMNS = ("v.type, v.id, v.version, v.last_updated_us, v.last_updated, v.body IS NULL, v.body, v.op, "
                    "v.method")
_OPS = {op.value: op for op in ChangeOp}
_METHODS = {method.value: method for method in WriteMethod}
READ_MANY_CHUNK = 500
_NO_SEQ = 1 << 62


def stored(row: Sequence[Any], start: int = 0) -> StoredResource:
    """A StoredResource from ``RESOURCE_COLUMNS`` (or the history equivalent) beginning at ``row[start]`` (a
    database row: its columns' Python types are the schema's)."""
    type_, id_, version, lu_us, lu, deleted, body, op = row[start:start + 8]
    return StoredResource(type_, id_, version, lu_us, lu, bool(deleted), body, _OPS[op])


def stored_version(row: Sequence[Any], start: int = 0) -> StoredResource:
    """A StoredResource from ``_VERSION_COLUMNS`` beginning at ``row[start]`` (with the recorded method)."""
    type_, id_, version, lu_us, lu, deleted, body, op, method = row[start:start + 9]
    return StoredResource(type_, id_, version, lu_us, lu, bool(deleted), body, _OPS[op], _METHODS.get(method))


def read(conn: sqlite3.Connection, resource_type: str, resource_id: str) -> StoredResource | None:
    """The current version or tombstone, None if the resource never existed."""
    row = conn.execute(f"SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.type = ? AND r.id = ?",
                       (resource_type, resource_id)).fetchone()
    return stored(row) if row else None


def read_version(conn: sqlite3.Connection, resource_type: str, resource_id: str, version: int
                 ) -> StoredResource | None:
    """One historical version (tombstones included)."""
    row = conn.execute(f"SELECT {_VERSION_COLUMNS} FROM versions v WHERE v.type = ? AND v.id = ? AND v.version = ?",
                       (resource_type, resource_id, version)).fetchone()
    return stored_version(row) if row else None


def read_many(conn: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> list[StoredResource]:
    """Live current versions for many keys: one statement per chunk of keys (grouped by type so every
    branch is an index lookup on ``(type, id)``; "+" keeps SQLite from choosing the ``(type, deleted)`` index for
    long id lists, which reads every resource of the type)."""
    found: list[StoredResource] = []
    unique = sorted(set(keys))
    for start in range(0, len(unique), READ_MANY_CHUNK):
        chunk = unique[start:start + READ_MANY_CHUNK]
        branches: list[str] = []
        params: list[str] = []
        for type_, group in groupby(chunk, key=lambda key: key[0]):
            ids = [id_ for _, id_ in group]
            branches.append(f"SELECT {RESOURCE_COLUMNS} FROM resources r WHERE r.type = ? AND r.id IN "
                            f"({', '.join('?' * len(ids))}) AND +r.deleted = 0")
            params.extend((type_, *ids))
        found.extend(stored(row) for row in conn.execute(" UNION ALL ".join(branches), params))
    return found


def history(conn: sqlite3.Connection, scope: HistoryFilter, count: int, page_token: str | None) -> HistoryPage:
    """Versions newest first (``seq`` order, which is also ``last_updated`` order), keyset paged on seq.

    ``since_us`` keeps versions written after it; ``at_us`` keeps, per resource, the version current at that
    instant (resources deleted at that instant are left out)."""
    fp = fingerprint("history", scope.resource_type, scope.resource_id, scope.since_us, scope.at_us,
                     tuple(scope.types))
    where = ["1"]
    params: list[str | int] = []
    if page_token is not None:
        payload = decode_token(page_token, fp)
        if len(payload) != 1 or not isinstance(payload[0], int):
            raise InvalidPageToken("malformed paging token")
        where.append("v.seq < ?")
        params.append(payload[0])
    if scope.resource_type is not None:
        where.append("v.type = ?")
        params.append(scope.resource_type)
        if scope.resource_id is not None:
            where.append("v.id = ?")
            params.append(scope.resource_id)
    elif scope.types:
        where.append(f"v.type IN ({', '.join('?' * len(scope.types))})")
        params.extend(scope.types)
    if scope.since_us is not None:
        # last_updated grows with seq, so "after since" is a seq range found through the last_updated index.
        where.append("v.seq >= coalesce((SELECT seq FROM versions WHERE last_updated_us > ? "
                     "ORDER BY last_updated_us LIMIT 1), ?)")
        params.extend((scope.since_us, _NO_SEQ))
    if scope.at_us is not None:
        where.append("v.last_updated_us <= ? AND v.body IS NOT NULL AND v.version = (SELECT max(w.version) "
                     "FROM versions w WHERE w.type = v.type AND w.id = v.id AND w.last_updated_us <= ?)")
        params.extend((scope.at_us, scope.at_us))
    limit = max(1, count)
    # One resource's history walks its own versions newest first in the (type, id, version) key, whose version
    # order is its seq order (without the hint SQLite may pick the per-type index and read every version of
    # the type: a second for a Task on a large store).
    if scope.resource_id is not None:
        source, order = "versions v INDEXED BY sqlite_autoindex_versions_1", "v.version DESC"
    else:
        source, order = "versions v", "v.seq DESC"
    rows = conn.execute(f"SELECT v.seq, {_VERSION_COLUMNS} FROM {source} WHERE {' AND '.join(where)} "
                        f"ORDER BY {order} LIMIT ?", (*params, limit + 1)).fetchall()
    entries = [stored_version(row, 1) for row in rows[:limit]]
    next_token = encode_token(fp, [rows[limit - 1][0]]) if len(rows) > limit else None
    return HistoryPage(entries, next_token)


def outbox_after(conn: sqlite3.Connection, after_seq: int, limit: int) -> list[OutboxEvent]:
    """Outbox events with ``seq > after_seq`` in commit order."""
    rows = conn.execute("SELECT seq, type, id, version, op, last_updated_us FROM outbox WHERE seq > ? "
                        "ORDER BY seq LIMIT ?", (after_seq, limit))
    return [OutboxEvent(seq, type_, id_, version, _OPS[op], lu) for seq, type_, id_, version, op, lu in rows]
