"""Durable, shared state of the authorization server: the client registry and the ``jti`` replay cache.

It lives next to the FHIR data so every replica sees the same state: an ``auth.sqlite3`` file in the data
directory with the embedded store (replicas on one host share the directory; SQLite makes the ``jti`` claim
atomic across processes), or two collections in the MongoDB database (``auth_clients``, ``auth_jti`` with a
unique ``_id`` and a TTL index). The FHIR store port is left untouched: this state is not FHIR data and must
not appear in history, search or the outbox.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson

from fhir_clr.auth.clients import ClientRecord


class AuthStore(Protocol):
    """Client registry and replay cache."""

    async def open(self) -> None:
        """Create tables/collections and indexes (idempotent)."""

    async def close(self) -> None:
        """Release connections."""

    async def put_client(self, record: ClientRecord) -> None:
        """Insert or replace a client."""

    async def get_client(self, client_id: str) -> ClientRecord | None:
        """One client, or None."""

    async def list_clients(self) -> list[ClientRecord]:
        """All clients, ordered by id."""

    async def claim_jti(self, key: str, expires_at: float) -> bool:
        """Record an assertion id until ``expires_at`` (epoch seconds); False when it was already recorded."""


class SqliteAuthStore:
    """``auth.sqlite3`` in the data directory (one short-lived connection per call, run in a thread)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")  # WAL: survives process crashes; no fsync per token request
        return conn

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = self._connect()
        try:
            return conn.execute(sql, params).fetchall()
        finally:
            conn.close()

    async def open(self) -> None:
        """Create the tables."""
        def create() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS clients (client_id TEXT PRIMARY KEY, data BLOB NOT NULL)")
                conn.execute("CREATE TABLE IF NOT EXISTS jti (key TEXT PRIMARY KEY, expires_at REAL NOT NULL)")
                conn.execute("CREATE INDEX IF NOT EXISTS jti_expiry ON jti (expires_at)")
            finally:
                conn.close()
        await asyncio.to_thread(create)

    async def close(self) -> None:
        """Nothing to release (connections are per call)."""

    async def put_client(self, record: ClientRecord) -> None:
        """Insert or replace a client."""
        await asyncio.to_thread(self._run, "INSERT OR REPLACE INTO clients VALUES (?, ?)",
                                (record.client_id, orjson.dumps(record.to_json())))

    async def get_client(self, client_id: str) -> ClientRecord | None:
        """One client, or None."""
        rows = await asyncio.to_thread(self._run, "SELECT data FROM clients WHERE client_id = ?", (client_id,))
        return ClientRecord.from_json(orjson.loads(rows[0][0])) if rows else None

    async def list_clients(self) -> list[ClientRecord]:
        """All clients, ordered by id."""
        rows = await asyncio.to_thread(self._run, "SELECT data FROM clients ORDER BY client_id")
        return [ClientRecord.from_json(orjson.loads(row[0])) for row in rows]

    async def claim_jti(self, key: str, expires_at: float) -> bool:
        """Insert the key; the primary key makes a second claim fail, in any process."""
        def claim() -> bool:
            conn = self._connect()
            try:
                conn.execute("DELETE FROM jti WHERE expires_at < ?", (time.time(),))
                conn.execute("INSERT INTO jti VALUES (?, ?)", (key, expires_at))
                return True
            except sqlite3.IntegrityError:
                return False
            finally:
                conn.close()
        return await asyncio.to_thread(claim)


class MongoAuthStore:
    """Two collections in the FHIR database of the MongoDB store."""

    def __init__(self, database: Any) -> None:
        self.clients = database["auth_clients"]
        self.jti = database["auth_jti"]

    async def open(self) -> None:
        """TTL index so spent assertion ids disappear after they expire."""
        await self.jti.create_index("expiresAt", expireAfterSeconds=0)

    async def close(self) -> None:
        """The database handle belongs to the caller."""

    async def put_client(self, record: ClientRecord) -> None:
        """Insert or replace a client."""
        await self.clients.replace_one({"_id": record.client_id}, {"_id": record.client_id, **record.to_json()},
                                       upsert=True)

    async def get_client(self, client_id: str) -> ClientRecord | None:
        """One client, or None."""
        doc = await self.clients.find_one({"_id": client_id})
        return _from_doc(doc) if doc else None

    async def list_clients(self) -> list[ClientRecord]:
        """All clients, ordered by id."""
        return [_from_doc(doc) for doc in await self.clients.find({}, sort=[("_id", 1)]).to_list(None)]

    async def claim_jti(self, key: str, expires_at: float) -> bool:
        """Insert with the key as ``_id``: a duplicate key error means the assertion was replayed."""
        from pymongo.errors import DuplicateKeyError

        try:
            await self.jti.insert_one({"_id": key, "expiresAt": datetime.fromtimestamp(expires_at, UTC)})
        except DuplicateKeyError:
            return False
        return True


def _from_doc(doc: dict[str, Any]) -> ClientRecord:
    doc = dict(doc)
    doc.pop("_id", None)
    return ClientRecord.from_json(doc)


def build_auth_store(data_dir: Path, store: Any) -> AuthStore:
    """The auth store matching the FHIR store: MongoDB collections when it exposes a ``database``, else the
    SQLite file in ``data_dir``."""
    database = getattr(store, "database", None)
    if database is not None:
        return MongoAuthStore(database)
    return SqliteAuthStore(data_dir / "auth.sqlite3")
