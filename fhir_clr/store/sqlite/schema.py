"""SQLite schema and connection set-up for the embedded store.

Layout (one database file, WAL mode):

* ``resources`` — the current version of every resource (``rid`` is the internal row id the index tables
  point at); deleted resources stay as tombstones (``deleted = 1``, ``body`` NULL).
* ``versions`` — every version ever written; ``seq`` is the global history order.
* ``idx_*`` — search values of the *current* version only, one typed table per parameter type. They are
  ``WITHOUT ROWID`` tables clustered on ``rid`` (cheap replace/delete and per-resource probes) with a second
  covering index that starts with ``param`` (index-only ``param + value -> rid`` lookups; for tokens
  ``param, code, rid, system``). Columns that may be
  absent (token system, quantity system/code) hold ``''`` instead of NULL because they are key columns.
* ``match_keys`` — unique conditional-create keys; ``outbox`` — committed changes in commit order;
* ``records`` — server bookkeeping documents (subscription events…); ``leases`` — named leases.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from fhir_clr.store.query import ParamType

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000
WAL_SIZE_LIMIT = 64 * 1024 * 1024

INDEX_TABLES: dict[ParamType, str] = {
    ParamType.TOKEN: "idx_token",
    ParamType.REFERENCE: "idx_reference",
    ParamType.DATE: "idx_date",
    ParamType.STRING: "idx_string",
    ParamType.NUMBER: "idx_number",
    ParamType.QUANTITY: "idx_quantity",
    ParamType.URI: "idx_uri",
}
"""Which table holds the index rows of each parameter type."""

_DDL = """
CREATE TABLE IF NOT EXISTS resources (
    rid INTEGER PRIMARY KEY,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated_us INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    op TEXT NOT NULL,
    body BLOB,
    UNIQUE (type, id)
);
-- rid is the rowid, so both indexes end with it implicitly: (type, deleted, last_updated_us, rid) serves
-- _sort=_lastUpdated scans, (type, deleted, rid) the default creation order.
CREATE INDEX IF NOT EXISTS resources_by_updated ON resources (type, deleted, last_updated_us);
CREATE INDEX IF NOT EXISTS resources_by_type ON resources (type, deleted);

CREATE TABLE IF NOT EXISTS versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    op TEXT NOT NULL,
    last_updated_us INTEGER NOT NULL,
    last_updated TEXT NOT NULL,
    body BLOB,
    method TEXT,
    UNIQUE (type, id, version)
);
CREATE INDEX IF NOT EXISTS versions_by_type ON versions (type);
CREATE INDEX IF NOT EXISTS versions_by_updated ON versions (last_updated_us);
-- a resource's history walks the UNIQUE (type, id, version) key: an older store's (type, id, seq) index goes
DROP INDEX IF EXISTS versions_by_resource;

CREATE TABLE IF NOT EXISTS idx_token (
    rid INTEGER NOT NULL, param TEXT NOT NULL, system TEXT NOT NULL, code TEXT NOT NULL,
    PRIMARY KEY (rid, param, code, system)
) WITHOUT ROWID;
-- rid before system: a code's rows are in rid order whatever their systems, so a code-only criterion (status=
-- requested) can drive a page in rid order, and probes of many rids in rid order walk one small region
DROP INDEX IF EXISTS idx_token_value;
CREATE INDEX IF NOT EXISTS idx_token_code ON idx_token (param, code, rid, system);

CREATE TABLE IF NOT EXISTS idx_reference (
    rid INTEGER NOT NULL, param TEXT NOT NULL, ref TEXT NOT NULL,
    PRIMARY KEY (rid, param, ref)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_reference_value ON idx_reference (param, ref, rid);

CREATE TABLE IF NOT EXISTS idx_date (
    rid INTEGER NOT NULL, param TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL,
    PRIMARY KEY (rid, param, lo, hi)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_date_value ON idx_date (param, lo, hi, rid);

CREATE TABLE IF NOT EXISTS idx_string (
    rid INTEGER NOT NULL, param TEXT NOT NULL, norm TEXT NOT NULL, exact TEXT NOT NULL,
    PRIMARY KEY (rid, param, norm, exact)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_string_value ON idx_string (param, norm, exact, rid);

CREATE TABLE IF NOT EXISTS idx_number (
    rid INTEGER NOT NULL, param TEXT NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
    PRIMARY KEY (rid, param, lo, hi)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_number_value ON idx_number (param, lo, hi, rid);

CREATE TABLE IF NOT EXISTS idx_quantity (
    rid INTEGER NOT NULL, param TEXT NOT NULL, lo REAL NOT NULL, hi REAL NOT NULL,
    system TEXT NOT NULL, code TEXT NOT NULL,
    PRIMARY KEY (rid, param, lo, hi, system, code)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_quantity_value ON idx_quantity (param, lo, hi, system, code, rid);

CREATE TABLE IF NOT EXISTS idx_uri (
    rid INTEGER NOT NULL, param TEXT NOT NULL, uri TEXT NOT NULL,
    PRIMARY KEY (rid, param, uri)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idx_uri_value ON idx_uri (param, uri, rid);

CREATE TABLE IF NOT EXISTS match_keys (
    key TEXT PRIMARY KEY, type TEXT NOT NULL, id TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS match_keys_by_holder ON match_keys (type, id);

CREATE TABLE IF NOT EXISTS records (
    kind TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL, doc BLOB NOT NULL,
    PRIMARY KEY (kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_us INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    op TEXT NOT NULL,
    last_updated_us INTEGER NOT NULL
);
"""


def connect(path: Path, synchronous: str, *, read_only: bool) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with this store's pragmas; its commits do not
    checkpoint the log (``wal.WalCheckpointer`` does, on its own thread).

    The connection may be closed from another thread at shutdown, but is otherwise used by one thread."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=512)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute(f"PRAGMA synchronous = {_checked_synchronous(synchronous)}")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -32768")
    conn.execute("PRAGMA mmap_size = 2147418112")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")  # a restarted log's file is cut back to this
    if read_only:
        conn.execute("PRAGMA query_only = 1")
    return conn


def create_schema(conn: sqlite3.Connection) -> None:
    """Switch the file to WAL and create tables and indexes (idempotent)."""
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"cannot switch the database to WAL mode (got {mode})")
    conn.execute("BEGIN IMMEDIATE")
    try:
        for statement in _DDL.split(";"):
            if statement.strip():
                conn.execute(statement)
        _add_missing_columns(conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


_ADDED_COLUMNS = (("versions", "method", "TEXT"),)
"""Columns added after the first release: (table, column, type), added to older files on open. Their NULL in
rows written before means "not recorded" (``versions.method``: history derives the method from ``op``)."""


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    for table, column, sql_type in _ADDED_COLUMNS:
        if column not in {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {sql_type}")


def _checked_synchronous(value: str) -> str:
    level = value.strip().upper()
    if level not in ("OFF", "NORMAL", "FULL", "EXTRA"):
        raise ValueError(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {value!r}")
    return level
