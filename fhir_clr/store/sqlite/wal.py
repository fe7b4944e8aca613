"""Keeping the write-ahead log short under a steady read load (run on the writer thread).

SQLite's automatic checkpoint (``wal_autocheckpoint``) is PASSIVE: it copies back only the frames that no reader
still needs. With reads always in flight one of them nearly always holds an older snapshot, so the checkpoint
never reaches the end of the log, the log never starts over, and it grows for as long as the load lasts (900 MB
in three minutes on a store of 1,000,000 resources; every reader then searches a larger WAL index, and each
checkpoint pass rereads the same long log). Once the log is past ``RESTART_FRAMES`` the writer asks for a
RESTART checkpoint instead, which waits (at most ``RESTART_WAIT_MS``) for the readers of older snapshots to
finish — reads take milliseconds — so that the next write starts the log from its beginning; the file is then
cut back to ``schema.WAL_SIZE_LIMIT``.
"""

from __future__ import annotations

import sqlite3
import time

RESTART_FRAMES = 8192
"""Log length (pages, 32 MB at 4 KB) above which the writer forces the log to start over."""
RESTART_WAIT_MS = 200
"""Longest wait for older readers during one RESTART attempt (the writer is paused meanwhile)."""
CHECK_SECONDS = 1.0
"""How often the writer looks at the log's length."""


class WalUpkeep:
    """Checks the log after write batches, at most every ``CHECK_SECONDS``."""

    def __init__(self, busy_timeout_ms: int) -> None:
        self._busy_timeout_ms = busy_timeout_ms
        self._next_check = 0.0

    def after_write(self, conn: sqlite3.Connection) -> None:
        """Called after each committed batch: restart the log when it has grown past ``RESTART_FRAMES``."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + CHECK_SECONDS
        _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if frames < RESTART_FRAMES:
            return
        conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
        try:
            conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
