"""Embedded SQLite adapter of the storage port (the default store).

Threading: ``sqlite3`` calls block, so they never run on the event loop. Reads run on a small pool of
threads, each with its own read-only connection; every write runs on one dedicated writer thread with its
own connection (``writer.GroupCommitWriter``), so writes of this process queue up instead of
contending for the database lock, and commits waiting together share one transaction (group commit). Each
write transaction starts with ``BEGIN IMMEDIATE``, which (with ``busy_timeout``) also serialises writers of
other processes sharing the file. WAL mode lets readers run while a write is in progress.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncGenerator, Callable, Sequence
from concurrent.futures import BrokenExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from fhir_clr.store.port import (
    Change,
    HistoryFilter,
    HistoryPage,
    OutboxEvent,
    Record,
    RecordWrite,
    SearchPage,
    StoredResource,
    StoreUnavailable,
    UnsupportedSearch,
)
from fhir_clr.store.query import Query
from fhir_clr.store.sqlite import reads, records
from fhir_clr.store.sqlite.scan import scan_current
from fhir_clr.store.sqlite.schema import BUSY_TIMEOUT_MS, connect, create_schema
from fhir_clr.store.sqlite.search import run_count, run_search
from fhir_clr.store.sqlite.wal import WalCheckpointer
from fhir_clr.store.sqlite.writer import GroupCommitWriter

T = TypeVar("T")
INLINE_READ_MANY = 100
"""``read_many`` of at most this many keys runs on the calling thread (see ``_point_read``)."""


TOO_COMPLEX = ("expression tree is too large", "too many sql variables", "too many terms in compound select",
               "parser stack overflow", "like or glob pattern too complex", "too many columns")
"""SQLite errors about the statement's size, not about the database: the query is refused, the store is fine."""


def read_error(exc: sqlite3.OperationalError) -> UnsupportedSearch | StoreUnavailable:
    """The port error for a failed read: UnsupportedSearch (400) when SQLite refuses the statement's size,
    StoreUnavailable (503) when the database itself failed (locked, I/O, unreadable)."""
    message = str(exc).lower()
    if any(fragment in message for fragment in TOO_COMPLEX):
        return UnsupportedSearch("the query is too large for the store; use fewer parameters or values")
    return StoreUnavailable(f"SQLite error: {exc}")


class SqliteStore:
    """The ``Store`` port on one SQLite file (WAL mode)."""

    name = "sqlite"

    def __init__(self, path: Path, synchronous: str = "NORMAL", read_threads: int = 4) -> None:
        self.path = Path(path)
        self.synchronous = synchronous
        self.read_threads = max(1, read_threads)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._writer: GroupCommitWriter | None = None
        self._checkpointer: WalCheckpointer | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._inline: sqlite3.Connection | None = None

    # ---- lifecycle ------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the directory, the file, WAL mode and the schema; start the threads (idempotent)."""
        if self._writer is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the data directory {self.path.parent}: {exc}") from exc
        open_writable = partial(connect, self.path, self.synchronous, read_only=False)
        checkpointer = WalCheckpointer(open_writable, BUSY_TIMEOUT_MS)
        self._writer = GroupCommitWriter(open_writable, after_commit=checkpointer.after_commit)
        await asyncio.to_thread(self._writer.start)
        self._readers = ThreadPoolExecutor(self.read_threads, "sqlite-reader", initializer=self._init_thread,
                                           initargs=(True,))
        try:
            await self._writer_call(create_schema)
            checkpointer.start()
            self._checkpointer = checkpointer
            self._inline = connect(self.path, self.synchronous, read_only=True)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Let queued writes finish, then stop the threads and close every connection."""
        writer, readers, checkpointer = self._writer, self._readers, self._checkpointer
        self._writer = self._readers = self._checkpointer = None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)
        if writer is not None:
            await asyncio.to_thread(writer.stop)
        if readers is not None:
            await asyncio.to_thread(readers.shutdown, True)
        inline, self._inline = self._inline, None
        if inline is not None:
            inline.close()
        with self._connections_lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            conn.close()

    async def ping(self) -> bool:
        """True when a reader connection answers a trivial query."""
        try:
            return await self._read(lambda conn: conn.execute("SELECT 1").fetchone()[0] == 1)
        except StoreUnavailable:
            return False

    # ---- reads ----------------------------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The current version or tombstone; None if the resource never existed."""
        return self._point_read(reads.read, resource_type, resource_id)

    async def read_version(self, resource_type: str, resource_id: str, version: int) -> StoredResource | None:
        """One historical version (tombstones included)."""
        return self._point_read(reads.read_version, resource_type, resource_id, version)

    async def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredResource]:
        """Live current versions of many resources; missing keys are skipped."""
        if not keys:
            return []
        if len(keys) <= INLINE_READ_MANY:
            return self._point_read(reads.read_many, keys)
        return await self._read(reads.read_many, keys)

    async def search(self, query: Query) -> SearchPage:
        """One keyset page of a search."""
        return await self._read(run_search, query)

    async def count(self, query: Query) -> int:
        """Number of live resources matching ``query``."""
        return await self._read(run_count, query)

    async def history(self, scope: HistoryFilter, count: int, page_token: str | None = None) -> HistoryPage:
        """Versions newest first for an instance, a type or the system."""
        return await self._read(reads.history, scope, count, page_token)

    async def outbox_after(self, after_seq: int, limit: int) -> list[OutboxEvent]:
        """Committed changes after ``after_seq`` in commit order."""
        return await self._read(reads.outbox_after, after_seq, limit)

    def iter_current(self, resource_type: str, *, since_us: int | None = None, until_us: int | None = None,
                     batch: int = 1000) -> AsyncGenerator[list[bytes], None]:
        """Live current bodies of one type in keyset batches, on a scan connection of their own
        (``scan``)."""
        self._require_writer()
        return scan_current(self.path, self.synchronous, resource_type, since_us=since_us, until_us=until_us,
                            batch=batch)

    # ---- writes ---------------------------------------------------------------------------------------

    async def commit(self, changes: Sequence[Change]) -> list[StoredResource]:
        """Apply ``changes`` atomically (VersionConflict / MatchKeyTaken leave the database untouched)."""
        if not changes:
            return []
        writer = self._require_writer()
        return await asyncio.wrap_future(writer.submit_commit(list(changes)))

    # ---- records and leases ---------------------------------------------------------------------------

    async def get_record(self, kind: str, key: str) -> Record | None:
        """One bookkeeping record."""
        return self._point_read(records.get_record, kind, key)

    async def list_records(self, kind: str, *, prefix: str = "", after: str | None = None,
                           limit: int = 100) -> list[Record]:
        """Records of ``kind`` by key prefix, after a key, in key order."""
        return await self._read(records.list_records, kind, prefix, after, limit)

    async def write_records(self, writes: Sequence[RecordWrite]) -> list[Record | None]:
        """Write records atomically (RecordConflict: nothing written)."""
        if not writes:
            return []
        return await self._writer_call(lambda conn: records.write_records(conn, writes))

    async def insert_records(self, writes: Sequence[RecordWrite]) -> None:
        """Append new records atomically (RecordConflict: nothing written)."""
        if writes:
            await self._writer_call(lambda conn: records.insert_records(conn, writes))

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the named lease for ``ttl`` seconds."""
        return await self._writer_call(lambda conn: records.acquire_lease(conn, name, owner, ttl))

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give the named lease back if ``owner`` holds it."""
        return await self._writer_call(lambda conn: records.release_lease(conn, name, owner))

    # ---- threads --------------------------------------------------------------------------------------

    def _point_read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a primary-key lookup (a few microseconds in SQLite) on the calling thread: handing it to a
        reader thread would cost far more in thread switches and GIL hand-over than the query itself."""
        if self._inline is None:
            raise StoreUnavailable("the SQLite store is not open")
        try:
            return fn(self._inline, *args)
        except sqlite3.OperationalError as exc:
            raise read_error(exc) from exc

    def _init_thread(self, read_only: bool) -> None:
        conn = connect(self.path, self.synchronous, read_only=read_only)
        self._local.conn = conn
        with self._connections_lock:
            self._connections.append(conn)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(self._local.conn, *args)
        except sqlite3.OperationalError as exc:
            raise read_error(exc) from exc

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(self._readers, fn, *args)

    def _require_writer(self) -> GroupCommitWriter:
        if self._writer is None:
            raise StoreUnavailable("the SQLite store is not open")
        return self._writer

    async def _writer_call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.wrap_future(self._require_writer().submit_call(fn))

    async def _submit(self, pool: ThreadPoolExecutor | None, fn: Callable[..., T], *args: Any) -> T:
        if pool is None:
            raise StoreUnavailable("the SQLite store is not open")
        try:
            future = pool.submit(self._call, fn, *args)
        except (BrokenExecutor, RuntimeError) as exc:  # a connection could not be opened, or shut down
            raise StoreUnavailable(f"the SQLite store cannot run queries: {exc}") from exc
        try:
            return await asyncio.wrap_future(future)
        except BrokenExecutor as exc:
            raise StoreUnavailable(f"cannot open {self.path}: {exc}") from exc
