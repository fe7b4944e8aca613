"""A store wrapper that times every storage port call into a histogram labelled by operation (the server's is
``fhir_clr_store_operation_duration_seconds``) and remembers whether the last write failed on the store (for the
readiness probe). ``open``, ``close`` and ``iter_current`` are not timed: they go straight to the wrapped store
(:class:`StoreWrapper`)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from typing import TypeVar

from prometheus_client import Histogram

from fhir_clr.store.port import (
    Change,
    HistoryFilter,
    HistoryPage,
    OutboxEvent,
    Record,
    RecordWrite,
    SearchPage,
    Store,
    StoredResource,
    StoreUnavailable,
)
from fhir_clr.store.query import Query
from fhir_clr.store.wrapper import StoreWrapper

T = TypeVar("T")
TIMED_OPERATIONS = ("read", "read_version", "read_many", "search", "count", "history", "commit", "outbox_after",
                    "get_record", "list_records", "write_records", "acquire_lease", "release_lease", "ping")
"""The port calls observed, each under its method name."""


class TimedStore(StoreWrapper[Store]):
    """Wraps ``inner``; each port coroutine call is observed in ``histogram`` (one label: the operation) under
    its method name."""

    def __init__(self, inner: Store, histogram: Histogram) -> None:
        super().__init__(inner)
        self.writes_failing = False
        """True after a write failed on the store (full disk, read-only file, lost primary) until one succeeds."""
        self._histograms = {name: histogram.labels(name) for name in TIMED_OPERATIONS}

    async def ping(self) -> bool:
        """Whether the database answers, timed."""
        return await self._timed("ping", self._inner.ping())

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The current version (or tombstone), timed."""
        return await self._timed("read", self._inner.read(resource_type, resource_id))

    async def read_version(self, resource_type: str, resource_id: str, version: int) -> StoredResource | None:
        """One historical version, timed."""
        return await self._timed("read_version", self._inner.read_version(resource_type, resource_id, version))

    async def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredResource]:
        """Live current versions of many resources, timed."""
        return await self._timed("read_many", self._inner.read_many(keys))

    async def search(self, query: Query) -> SearchPage:
        """One search page, timed."""
        return await self._timed("search", self._inner.search(query))

    async def count(self, query: Query) -> int:
        """The count of live resources matching ``query``, timed."""
        return await self._timed("count", self._inner.count(query))

    async def history(self, scope: HistoryFilter, count: int, page_token: str | None = None) -> HistoryPage:
        """One history page, timed."""
        return await self._timed("history", self._inner.history(scope, count, page_token))

    async def commit(self, changes: Sequence[Change]) -> list[StoredResource]:
        """An atomic commit, timed and watched for store failures."""
        return await self._timed_write("commit", self._inner.commit(changes))

    async def outbox_after(self, after_seq: int, limit: int) -> list[OutboxEvent]:
        """Outbox events after ``after_seq``, timed."""
        return await self._timed("outbox_after", self._inner.outbox_after(after_seq, limit))

    async def get_record(self, kind: str, key: str) -> Record | None:
        """One record, timed."""
        return await self._timed("get_record", self._inner.get_record(kind, key))

    async def list_records(self, kind: str, *, prefix: str = "", after: str | None = None,
                           limit: int = 100) -> list[Record]:
        """Records of ``kind`` in key order, timed."""
        return await self._timed("list_records",
                                 self._inner.list_records(kind, prefix=prefix, after=after, limit=limit))

    async def write_records(self, writes: Sequence[RecordWrite]) -> list[Record | None]:
        """An atomic record write, timed and watched for store failures."""
        return await self._timed_write("write_records", self._inner.write_records(writes))

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a lease, timed."""
        return await self._timed("acquire_lease", self._inner.acquire_lease(name, owner, ttl))

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give a lease back, timed."""
        return await self._timed("release_lease", self._inner.release_lease(name, owner))

    async def _timed(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await call
        finally:
            self._histograms[operation].observe(time.perf_counter() - started)

    async def _timed_write(self, operation: str, call: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            result = await call
        except StoreUnavailable:
            self.writes_failing = True
            raise
        finally:
            self._histograms[operation].observe(time.perf_counter() - started)
        self.writes_failing = False
        return result
