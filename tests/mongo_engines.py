"""MongoDB engines for tests: a real server when ``MONGODB_URI`` is set, otherwise an in-process stand-in for
``pymongo.AsyncMongoClient`` built on mongomock, which runs the store's query-building logic without a server.

Only the surface ``fhir_clr.store.mongo`` uses is wrapped: every collection method becomes a coroutine and
``find``/``list_indexes`` return cursors with ``to_list``. Calls never yield to the event loop, so each
store commit runs without interleaving (mongomock has no sessions or transactions). Every collection call
is recorded in ``client.calls`` as ``(collection, method, filter)`` — the in-process counterpart of a
pymongo ``CommandListener`` for tests that count round trips.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import mongomock
from pymongo import AsyncMongoClient

from fhir_clr.store.mongo import MongoStore

_CURSOR_METHODS = frozenset({"find", "list_indexes", "aggregate"})


class InProcCursor:
    """An async view of a mongomock cursor."""

    def __init__(self, cursor: Any) -> None:
        self._items = cursor

    async def to_list(self, length: int | None = None) -> list[Any]:
        """All (or the first ``length``) documents."""
        items = list(self._items)
        return items if length is None else items[:length]

    def __aiter__(self) -> InProcCursor:
        self._iterator = iter(self._items)
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._iterator)
        except StopIteration:
            raise StopAsyncIteration from None


class InProcCollection:
    """An async view of a mongomock collection."""

    def __init__(self, collection: Any, calls: list[tuple[str, str, Any]]) -> None:
        self._collection = collection
        self._calls = calls

    def __getattr__(self, method: str) -> Any:
        target = getattr(self._collection, method)
        name = self._collection.name
        calls = self._calls

        def record(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if kwargs.get("session", "absent") is None:
                del kwargs["session"]
            calls.append((name, method, args[0] if args else kwargs.get("filter")))
            return target(*args, **kwargs)

        if method in _CURSOR_METHODS:
            return lambda *args, **kwargs: InProcCursor(record(args, kwargs))

        async def call(*args: Any, **kwargs: Any) -> Any:
            return record(args, kwargs)

        return call


class InProcDatabase:
    """An async view of a mongomock database."""

    def __init__(self, database: Any, calls: list[tuple[str, str, Any]]) -> None:
        self._database = database
        self.calls = calls
        self.name = database.name

    def __getitem__(self, name: str) -> InProcCollection:
        return InProcCollection(self._database[name], self.calls)

    async def command(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Run a database command (mongomock implements few, ``ping`` among them)."""
        return self._database.command(name, *args, **kwargs)


class InProcClient:
    """An async, in-process MongoDB client (no sessions: use ``MongoStore(..., transactions=False)``)."""

    engine = f"mongomock {mongomock.__version__} (in-process, no transactions)"

    def __init__(self) -> None:
        self._client = mongomock.MongoClient()
        self.calls: list[tuple[str, str, Any]] = []

    def __getitem__(self, name: str) -> InProcDatabase:
        return InProcDatabase(self._client[name], self.calls)

    async def drop_database(self, name: str) -> None:
        """Forget a database."""
        self._client.drop_database(name)

    async def close(self) -> None:
        """Nothing to release."""


# ---- test stores -----------------------------------------------------------------------------------------

def mongo_engine() -> str:
    """Which MongoDB engine the tests run on: a real server when ``MONGODB_URI`` is set, else mongomock."""
    uri = os.environ.get("MONGODB_URI")
    if uri:
        return f"real MongoDB server at {urlsplit(uri).netloc.rpartition('@')[2]} (MONGODB_URI)"
    return InProcClient.engine


@asynccontextmanager
async def mongo_test_store(listeners: Sequence[Any] = ()) -> AsyncIterator[MongoStore]:
    """An open MongoStore on a fresh database of the real server (dropped afterwards) when ``MONGODB_URI``
    is set, else on a new in-process engine. ``listeners`` are pymongo event listeners (real server only)."""
    uri = os.environ.get("MONGODB_URI")
    if not uri:
        store = MongoStore("mongodb://in-process", "fhirclr_test", client=InProcClient(), transactions=False)
        await store.open()
        yield store
        return
    client: Any = AsyncMongoClient(uri, event_listeners=list(listeners))
    name = f"fhirclr_test_{uuid.uuid4().hex[:12]}"
    store = MongoStore(uri, name, client=client)
    try:
        await store.open()
        yield store
    finally:
        await client.drop_database(name)
        await client.close()
