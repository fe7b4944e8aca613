"""The SQLite store's single writer thread, with group commit.

Every write of the process goes through one thread and one connection. When several commits are waiting
(concurrent requests), the thread takes up to ``max_batch`` of them and writes them in one database
transaction, one savepoint each (``writes.commit_group``): the fixed cost of a transaction (locking,
WAL append, checkpoint bookkeeping) is paid once per batch instead of once per request. Callers are only
answered after the batch's COMMIT, so an acknowledged write is always durable.
"""

from __future__ import annotations

import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

from fhir_clr.store.port import Change, StoredResource, StoreUnavailable
from fhir_clr.store.sqlite import writes

T = TypeVar("T")


@dataclass(slots=True)
class _Commit:
    """One atomic commit, written in a batch with the commits queued beside it."""

    future: Future[list[StoredResource]]
    changes: Sequence[Change]


@dataclass(slots=True)
class _Call:
    """A function run alone on the writer connection."""

    future: Future[Any]
    call: Callable[[sqlite3.Connection], Any]


_STOP = object()


class GroupCommitWriter:
    """Owns the writer connection and thread."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], max_batch: int = 64,
                 after_commit: Callable[[], None] | None = None) -> None:
        self._connect = connect
        self._max_batch = max_batch
        self._after_commit = after_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Open the connection on a new thread; raise StoreUnavailable if it cannot be opened."""
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise StoreUnavailable(f"cannot open the SQLite writer connection: {self._error}")

    def stop(self) -> None:
        """Finish every queued write, then close the connection and end the thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def submit_commit(self, changes: Sequence[Change]) -> Future[list[StoredResource]]:
        """Queue one atomic commit; the future holds its StoredResources or its exception."""
        job = _Commit(Future(), changes)
        self._submit(job)
        return job.future

    def submit_call(self, call: Callable[[sqlite3.Connection], T]) -> Future[T]:
        """Queue a function to run alone on the writer connection (schema creation…)."""
        future: Future[T] = Future()
        self._submit(_Call(future, call))
        return future

    def _submit(self, job: _Commit | _Call) -> None:
        if self._thread is None:
            raise StoreUnavailable("the SQLite store is not open")
        self._queue.put(job)

    # ---- the thread ---------------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        held: Any = None
        try:
            while True:
                item = held if held is not None else self._queue.get()
                held = None
                if item is _STOP:
                    return
                if isinstance(item, _Call):
                    if item.future.set_running_or_notify_cancel():
                        _run_call(conn, item)
                    continue
                batch = [item]
                while len(batch) < self._max_batch:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is _STOP or isinstance(nxt, _Call):
                        held = nxt
                        break
                    batch.append(nxt)
                # A caller cancelled before its turn (e.g. an import stopped at shutdown) gets no write; the
                # others are marked running, so a late cancel can no longer make set_result fail.
                batch = [job for job in batch if job.future.set_running_or_notify_cancel()]
                if batch:
                    _run_batch(conn, batch)
                    if self._after_commit is not None:
                        self._after_commit()
        finally:
            conn.close()


def _run_call(conn: sqlite3.Connection, job: _Call) -> None:
    try:
        job.future.set_result(job.call(conn))
    except sqlite3.OperationalError as exc:
        job.future.set_exception(StoreUnavailable(f"SQLite error: {exc}"))
    except BaseException as exc:
        job.future.set_exception(exc)


def _run_batch(conn: sqlite3.Connection, batch: list[_Commit]) -> None:
    try:
        outcomes = writes.commit_group(conn, [job.changes for job in batch])
    except sqlite3.OperationalError as exc:
        for job in batch:
            job.future.set_exception(StoreUnavailable(f"SQLite error: {exc}"))
        return
    except BaseException as exc:
        for job in batch:
            job.future.set_exception(exc)
        return
    for job, outcome in zip(batch, outcomes, strict=True):
        if isinstance(outcome, Exception):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome)
