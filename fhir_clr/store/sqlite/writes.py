"""The write transaction of the SQLite store (runs on the single writer thread's connection)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from fhir_clr.store.port import Change, ChangeOp, MatchKeyTaken, StoredResource
from fhir_clr.store.sqlite.pending import PendingRows, current_rows

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def fhir_instant(us: int) -> str:
    """Epoch microseconds as a FHIR instant in UTC with microseconds (``2026-11-23T01:40:00.123456Z``)."""
    return (_EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def commit_group(conn: sqlite3.Connection, groups: Sequence[Sequence[Change]]
                 ) -> list[list[StoredResource] | Exception]:
    """Apply several independent commits in **one** ``BEGIN IMMEDIATE`` transaction (group commit), each
    inside its own savepoint: a commit that fails (VersionConflict, MatchKeyTaken…) is rolled back alone
    and its exception returned in its slot; the others are written. Nothing is visible or acknowledged
    before the final COMMIT; if that fails, everything is rolled back and the error raised.

    ``meta.lastUpdated`` is assigned while holding the database write lock, one microsecond apart at least
    from the newest version in the file, so it increases strictly with history order across restarts and
    across processes sharing the file."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        outcomes: list[list[StoredResource] | Exception] = []
        for changes in groups:
            conn.execute("SAVEPOINT one_commit")
            try:
                outcomes.append(_apply_commit(conn, changes))
            except Exception as exc:
                conn.execute("ROLLBACK TO one_commit")
                outcomes.append(exc)
            conn.execute("RELEASE one_commit")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return outcomes


def _apply_commit(conn: sqlite3.Connection, changes: Sequence[Change]) -> list[StoredResource]:
    # max() of the by-update index is one B-tree descent; "ORDER BY seq DESC LIMIT 1" plans as a table scan
    newest = conn.execute("SELECT max(last_updated_us) FROM versions").fetchone()[0]
    clock = max(time.time_ns() // 1000, newest + 1 if newest is not None else 0)
    pending = PendingRows(current_rows(conn, {(c.resource_type, c.resource_id) for c in changes}))
    stored = [_queue(conn, change, clock + offset, pending) for offset, change in enumerate(changes)]
    pending.write(conn)
    return stored


def _queue(conn: sqlite3.Connection, change: Change, lu_us: int, pending: PendingRows) -> StoredResource:
    """Queue one change's rows in ``pending`` and claim (or release) its match keys now."""
    lu = fhir_instant(lu_us)
    deleted = change.op is ChangeOp.DELETE
    body = None if deleted else _body(change.resource, change.expected_version + 1, lu)
    version = pending.change((change.resource_type, change.resource_id), change.expected_version, change.op.value,
                             lu_us, lu, body, change.index, change.method)
    if deleted:
        conn.execute("DELETE FROM match_keys WHERE type = ? AND id = ?", (change.resource_type, change.resource_id))
    else:
        _claim_keys(conn, change)
    return StoredResource(change.resource_type, change.resource_id, version, lu_us, lu, deleted, body, change.op)


def _body(resource: dict[str, Any] | None, version: int, lu: str) -> bytes:
    """The stored JSON: the client's resource with the server's ``meta.versionId``/``lastUpdated``."""
    if resource is None:
        raise ValueError("a create or update change needs a resource")
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = lu
    return orjson.dumps({**resource, "meta": meta})


def _claim_keys(conn: sqlite3.Connection, change: Change) -> None:
    for key in change.match_keys:
        holder = conn.execute("SELECT type, id FROM match_keys WHERE key = ?", (key,)).fetchone()
        if holder is None:
            conn.execute("INSERT INTO match_keys (key, type, id) VALUES (?, ?, ?)",
                         (key, change.resource_type, change.resource_id))
        elif tuple(holder) != (change.resource_type, change.resource_id):
            if not change.steal_match_keys:
                raise MatchKeyTaken(key, holder[0], holder[1])
            conn.execute("UPDATE match_keys SET type = ?, id = ? WHERE key = ?",
                         (change.resource_type, change.resource_id, key))
