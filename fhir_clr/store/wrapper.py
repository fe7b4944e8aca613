"""The base of the store wrappers: a ``Store`` that hands every port call to the store it wraps.

A wrapper (:class:`~fhir_clr.store.signalling.SignallingStore`, :class:`~fhir_clr.store.timed.TimedStore`)
subclasses :class:`StoreWrapper` and overrides only the calls it adds something to; every other call reaches
the wrapped store through the explicit delegation here. Wrappers stack, and each one is itself a ``Store``, so
whoever holds one sees the port plus what that wrapper adds, with nothing reached by attribute look-up magic
(the adapter's own attributes only through :attr:`StoreWrapper.adapter`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Generic, TypeVar

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
)
from fhir_clr.store.query import Query

InnerStore = TypeVar("InnerStore", bound=Store, covariant=True)


class StoreWrapper(Generic[InnerStore]):
    """Implements the storage port by delegating each call to ``inner`` (its type is the parameter, so the
    wrapped store's own additions stay reachable, typed, through :attr:`inner`)."""

    def __init__(self, inner: InnerStore) -> None:
        self._inner = inner
        self.name = inner.name

    @property
    def inner(self) -> InnerStore:
        """The wrapped store."""
        return self._inner

    @property
    def adapter(self) -> Store:
        """The adapter at the bottom of the stack, for what shares its database beneath the port (the auth
        store uses the MongoDB adapter's database)."""
        inner: Store = self._inner
        return inner.adapter if isinstance(inner, StoreWrapper) else inner

    async def open(self) -> None:
        """Open the wrapped store."""
        await self._inner.open()

    async def close(self) -> None:
        """Close the wrapped store."""
        await self._inner.close()

    async def ping(self) -> bool:
        """Whether the wrapped store's database answers."""
        return await self._inner.ping()

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The current version (or tombstone) from the wrapped store."""
        return await self._inner.read(resource_type, resource_id)

    async def read_version(self, resource_type: str, resource_id: str, version: int) -> StoredResource | None:
        """One historical version from the wrapped store."""
        return await self._inner.read_version(resource_type, resource_id, version)

    async def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredResource]:
        """Live current versions of many resources from the wrapped store."""
        return await self._inner.read_many(keys)

    async def search(self, query: Query) -> SearchPage:
        """One search page from the wrapped store."""
        return await self._inner.search(query)

    async def count(self, query: Query) -> int:
        """The wrapped store's count of live resources matching ``query``."""
        return await self._inner.count(query)

    async def history(self, scope: HistoryFilter, count: int, page_token: str | None = None) -> HistoryPage:
        """One history page from the wrapped store."""
        return await self._inner.history(scope, count, page_token)

    async def commit(self, changes: Sequence[Change]) -> list[StoredResource]:
        """Commit ``changes`` atomically through the wrapped store."""
        return await self._inner.commit(changes)

    async def outbox_after(self, after_seq: int, limit: int) -> list[OutboxEvent]:
        """The wrapped store's outbox events after ``after_seq``."""
        return await self._inner.outbox_after(after_seq, limit)

    def iter_current(self, resource_type: str, *, since_us: int | None = None, until_us: int | None = None,
                     batch: int = 1000) -> AsyncGenerator[list[bytes], None]:
        """The wrapped store's keyset scan of the live current bodies of ``resource_type``."""
        return self._inner.iter_current(resource_type, since_us=since_us, until_us=until_us, batch=batch)

    async def get_record(self, kind: str, key: str) -> Record | None:
        """One record from the wrapped store."""
        return await self._inner.get_record(kind, key)

    async def list_records(self, kind: str, *, prefix: str = "", after: str | None = None,
                           limit: int = 100) -> list[Record]:
        """Records of ``kind`` from the wrapped store, in key order."""
        return await self._inner.list_records(kind, prefix=prefix, after=after, limit=limit)

    async def write_records(self, writes: Sequence[RecordWrite]) -> list[Record | None]:
        """Write records atomically through the wrapped store."""
        return await self._inner.write_records(writes)

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew a lease on the wrapped store."""
        return await self._inner.acquire_lease(name, owner, ttl)

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give a lease back on the wrapped store."""
        return await self._inner.release_lease(name, owner)
