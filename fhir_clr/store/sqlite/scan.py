"""Keyset scans of the live current resources of one type for the SQLite store (``Store.iter_current``).

A scan runs on a connection and a thread of its own. The connection does not memory-map the file and keeps a
small page cache: a one-pass read of a whole table gains nothing from either, and through the shared readers'
2 GB mapping it would make the process's resident memory grow with the database and push the hot pages of
ordinary requests out of their cache. Each batch is one short read transaction, so a long export never pins
the WAL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncGenerator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from fhir_clr.store.port import StoreUnavailable
from fhir_clr.store.sqlite.schema import connect

SCAN_CACHE_KB = 4096
"""Page cache of a scan's connection."""


def current_batch(conn: sqlite3.Connection, resource_type: str, after_rid: int, since_us: int | None,
                  until_us: int | None, limit: int) -> list[tuple[int, bytes]]:
    """``(rid, body)`` of up to ``limit`` live current versions of one type after ``after_rid``, in rid order.

    ``INDEXED BY`` keeps the ``(type, deleted)`` index (whose entries end with rid, so the order comes for
    free): with a ``last_updated_us`` bound the planner could pick the by-update index and sort the rest of
    the type for every batch."""
    sql = ("SELECT rid, body FROM resources INDEXED BY resources_by_type "
           "WHERE type = ? AND deleted = 0 AND rid > ?")
    params: list[object] = [resource_type, after_rid]
    if since_us is not None:
        sql += " AND last_updated_us > ?"
        params.append(since_us)
    if until_us is not None:
        sql += " AND last_updated_us <= ?"
        params.append(until_us)
    return conn.execute(sql + " ORDER BY rid LIMIT ?", (*params, limit)).fetchall()


def _scan_connection(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = connect(path, synchronous, read_only=True)
    conn.execute("PRAGMA mmap_size = 0")
    conn.execute(f"PRAGMA cache_size = -{SCAN_CACHE_KB}")
    return conn


async def scan_current(path: Path, synchronous: str, resource_type: str, *, since_us: int | None,
                       until_us: int | None, batch: int) -> AsyncGenerator[list[bytes], None]:
    """Bodies of ``current_batch`` pages until the type is exhausted (see ``Store.iter_current``).

    Queries and the final close run on the scan's own thread, in order: a scan stopped while a batch is being
    read (a cancelled export) closes its connection once that batch is done, never under it."""
    try:
        conn = _scan_connection(path, synchronous)
    except sqlite3.OperationalError as exc:
        raise StoreUnavailable(f"SQLite error: {exc}") from exc
    thread = ThreadPoolExecutor(1, "sqlite-scan")
    loop = asyncio.get_running_loop()
    try:
        after = 0
        while True:
            try:
                rows = await loop.run_in_executor(thread, current_batch, conn, resource_type, after, since_us,
                                                  until_us, max(1, batch))
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite error: {exc}") from exc
            if not rows:
                return
            after = rows[-1][0]
            yield [body for _, body in rows]
    finally:
        thread.submit(conn.close)
        thread.shutdown(wait=False)
