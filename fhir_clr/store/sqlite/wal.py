"""Checkpointing the write-ahead log on a thread of its own, so that the writer only writes.

SQLite's automatic checkpoint runs inside the COMMIT that crosses ``wal_autocheckpoint``: the writer thread
then copies thousands of pages back into the database file while every queued write waits, and on a large store
written at random places (a month's RTF touches referrals spread over the whole file) those pages are many. The
writer connection therefore turns the automatic checkpoint off, and this thread, with its own connection,
checkpoints after writes instead; ``sqlite3`` releases the GIL while SQLite works, so the copy runs beside the
writer on another core (a 100,000-row first import: writer thread 1,446 µs a row instead of 1,603). A PASSIVE
checkpoint never blocks the writer or a reader.

PASSIVE copies back only the frames that no reader still needs. With reads always in flight one of them nearly
always holds an older snapshot, so the checkpoint never reaches the end of the log, the log never starts over,
and it grows for as long as the load lasts (900 MB in three minutes on a store of 1,000,000 resources; every
reader then searches a larger WAL index). Once the log is past ``RESTART_FRAMES`` the thread asks for a
RESTART checkpoint instead, which waits (at most ``RESTART_WAIT_MS``) for the readers of older snapshots to
finish — reads take milliseconds — so that the next write starts the log from its beginning; the file is then
cut back to ``schema.WAL_SIZE_LIMIT``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

RESTART_FRAMES = 8192
"""Log length (pages, 32 MB at 4 KB) above which the log is made to start over."""
RESTART_WAIT_MS = 200
"""Longest wait for older readers during one RESTART attempt (the writer waits meanwhile)."""
CHECK_SECONDS = 1.0
"""Time between two checkpoints while writes keep coming (each copies back what the writes of that second
logged; a page written several times in it is copied once)."""


class WalCheckpointer:
    """The checkpoint thread of one SQLite file, woken by the writer's commits."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], busy_timeout_ms: int) -> None:
        self._connect = connect
        self._busy_timeout_ms = busy_timeout_ms
        self._written = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (its connection is opened on it)."""
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the thread after its current checkpoint (closing the last connection checkpoints the rest)."""
        self._stopping.set()
        self._written.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def after_commit(self) -> None:
        """Called by the writer after each committed batch."""
        self._written.set()

    def _run(self) -> None:
        try:
            conn = self._connect()
        except sqlite3.Error:
            return  # the writer reports an unusable file; the log is then checkpointed when it closes
        try:
            while True:
                self._written.wait()
                if self._stopping.wait(CHECK_SECONDS):  # let a second of writes gather
                    return
                self._written.clear()
                self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        """A PASSIVE checkpoint, then a RESTART one when the log is still long; an error waits for the next
        round (the writer's commits do not depend on it)."""
        try:
            _, frames, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames < RESTART_FRAMES:
                return
            conn.execute(f"PRAGMA busy_timeout = {RESTART_WAIT_MS}")
            try:
                conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()
            finally:
                conn.execute(f"PRAGMA busy_timeout = {self._busy_timeout_ms}")
        except sqlite3.Error:
            return
