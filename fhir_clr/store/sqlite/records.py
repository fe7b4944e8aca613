"""Records and leases of the SQLite store (see ``Record`` in the port). Writes run on the writer connection in
their own ``BEGIN IMMEDIATE`` transaction, so they are atomic and safe across processes sharing the file."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

import orjson

from fhir_clr.store.port import Record, RecordConflict, RecordWrite


def _record(kind: str, key: str, rev: int, doc: bytes) -> Record:
    return Record(kind, key, orjson.loads(doc), rev)


def get_record(conn: sqlite3.Connection, kind: str, key: str) -> Record | None:
    """One record."""
    row = conn.execute("SELECT rev, doc FROM records WHERE kind = ? AND key = ?", (kind, key)).fetchone()
    return _record(kind, key, row[0], row[1]) if row else None


def list_records(conn: sqlite3.Connection, kind: str, prefix: str, after: str | None, limit: int) -> list[Record]:
    """Records of ``kind`` with keys starting with ``prefix``, after ``after``, in key (binary) order."""
    args: list[str | int]
    if after is not None and after >= prefix:
        sql, args = "SELECT key, rev, doc FROM records WHERE kind = ? AND key > ? ", [kind, after]
    else:
        sql, args = "SELECT key, rev, doc FROM records WHERE kind = ? AND key >= ? ", [kind, prefix]
    if prefix:
        sql += "AND key < ? "
        args.append(prefix + "\U0010ffff")
    sql += "ORDER BY key LIMIT ?"
    args.append(limit)
    return [_record(kind, key, rev, doc) for key, rev, doc in conn.execute(sql, args)
            if key.startswith(prefix)]


def write_records(conn: sqlite3.Connection, writes: Sequence[RecordWrite]) -> list[Record | None]:
    """Apply ``writes`` atomically (RecordConflict rolls everything back)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        out: list[Record | None] = []
        for write in writes:
            row = conn.execute("SELECT rev FROM records WHERE kind = ? AND key = ?",
                               (write.kind, write.key)).fetchone()
            current = row[0] if row else 0
            if write.expected_rev is not None and write.expected_rev != current:
                raise RecordConflict(write.kind, write.key, write.expected_rev, current)
            if write.doc is None:
                conn.execute("DELETE FROM records WHERE kind = ? AND key = ?", (write.kind, write.key))
                out.append(None)
                continue
            body = orjson.dumps(write.doc)
            conn.execute("INSERT INTO records (kind, key, rev, doc) VALUES (?, ?, ?, ?) ON CONFLICT (kind, key) "
                         "DO UPDATE SET rev = excluded.rev, doc = excluded.doc",
                         (write.kind, write.key, current + 1, body))
            out.append(Record(write.kind, write.key, write.doc, current + 1))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return out


def insert_records(conn: sqlite3.Connection, records: Sequence[RecordWrite]) -> None:
    """Insert new records atomically (an existing key: RecordConflict, everything rolled back)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.executemany("INSERT INTO records (kind, key, rev, doc) VALUES (?, ?, 1, ?)",
                         [(r.kind, r.key, orjson.dumps(_document(r))) for r in records])
        conn.execute("COMMIT")
    except sqlite3.IntegrityError:
        conn.execute("ROLLBACK")
        taken = next(r for r in records if get_record(conn, r.kind, r.key) is not None)
        raise RecordConflict(taken.kind, taken.key, 0, 1) from None
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _document(record: RecordWrite) -> dict[str, Any]:
    if record.doc is None:
        raise ValueError(f"record {record.kind}/{record.key}: an insert needs a document")
    return record.doc


def acquire_lease(conn: sqlite3.Connection, name: str, owner: str, ttl: float) -> bool:
    """Take lease ``name`` when free, expired or already ``owner``'s (renewal); one conditional upsert."""
    now = time.time_ns() // 1000
    conn.execute("BEGIN IMMEDIATE")
    try:
        cursor = conn.execute(
            "INSERT INTO leases (name, owner, expires_us) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
            "owner = excluded.owner, expires_us = excluded.expires_us WHERE leases.owner = excluded.owner "
            "OR leases.expires_us <= ?", (name, owner, now + int(ttl * 1_000_000), now))
        taken = cursor.rowcount == 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return taken


def release_lease(conn: sqlite3.Connection, name: str, owner: str) -> bool:
    """Give lease ``name`` back if ``owner`` holds it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        released = conn.execute("DELETE FROM leases WHERE name = ? AND owner = ?", (name, owner)).rowcount == 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return released
