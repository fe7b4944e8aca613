"""The embedded store's write-ahead log is checkpointed by its own thread, not inside the writer's commits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

from fhir_clr.store.port import Change, ChangeOp
from fhir_clr.store.query import IndexEntries
from fhir_clr.store.sqlite import SqliteStore, wal


def _tasks(start: int, count: int) -> list[Change]:
    return [Change(ChangeOp.CREATE, "Task", f"t{n}", 0, {"resourceType": "Task", "id": f"t{n}", "status": "draft",
                                                         "note": [{"text": "x" * 2000}]}, IndexEntries())
            for n in range(start, start + count)]


def _file_pages(path: Path) -> int:
    """Pages in the main database file (the log holds what is not checkpointed yet)."""
    return path.stat().st_size // 4096


def test_the_checkpoint_thread_copies_the_log_back_while_the_writer_only_commits(tmp_path: Path) -> None:
    async def scenario() -> tuple[int, int, int, bool]:
        store = SqliteStore(tmp_path / "store.sqlite3")
        await store.open()
        try:
            writer_autocheckpoint = await store._writer_call(  # the writer's own connection
                lambda conn: conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0])
            before = _file_pages(store.path)
            for start in range(0, 2000, 200):
                await store.commit(_tasks(start, 200))
            checkpointing = any(t.name == "sqlite-checkpoint" for t in threading.enumerate())
            deadline = time.monotonic() + 10 * wal.CHECK_SECONDS
            while _file_pages(store.path) <= before and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            return writer_autocheckpoint, before, _file_pages(store.path), checkpointing
        finally:
            await store.close()

    autocheckpoint, before, after, checkpointing = asyncio.run(scenario())
    assert autocheckpoint == 0 and checkpointing
    assert after > before + 500, (before, after)  # ~4 MB of Tasks reached the main file while the store was open
    assert not any(t.name == "sqlite-checkpoint" for t in threading.enumerate())  # closed with the store
    with sqlite3.connect(tmp_path / "store.sqlite3") as check:
        assert check.execute("SELECT count(*) FROM resources").fetchone()[0] == 2000
