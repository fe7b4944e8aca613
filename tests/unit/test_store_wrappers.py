"""The store wrappers the server stacks on its adapter (``SignallingStore(TimedStore(adapter))``): each adds
its own behaviour on top of explicit delegation (the contract suite runs through both as ``sqlite-wrapped``),
and nothing but the port and the wrapper's own additions is reachable on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry, Histogram

from fhir_clr.auth.authstore import MongoAuthStore, SqliteAuthStore, build_auth_store
from fhir_clr.auth.clients import ClientRecord, Role
from fhir_clr.store.mongo import MongoStore
from fhir_clr.store.port import Change, ChangeOp, HistoryFilter, RecordWrite, Store, StoreUnavailable
from fhir_clr.store.query import IndexEntries, Query
from fhir_clr.store.signalling import SignallingStore
from fhir_clr.store.sqlite import SqliteStore
from fhir_clr.store.timed import TIMED_OPERATIONS, TimedStore
from fhir_clr.store.wrapper import StoreWrapper
from tests.mongo_engines import InProcClient


def _create(resource_type: str, resource_id: str) -> Change:
    return Change(ChangeOp.CREATE, resource_type, resource_id, 0, {"resourceType": resource_type, "id": resource_id},
                  IndexEntries())


class Timings:
    """A histogram of store calls on a registry of its own, and what it counted."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.histogram = Histogram("store_seconds", "store calls", ("operation",), registry=self.registry)

    def counts(self) -> dict[str, float]:
        return {sample.labels["operation"]: sample.value for metric in self.registry.collect()
                for sample in metric.samples if sample.name == "store_seconds_count" and sample.value}


@pytest.fixture
async def adapter(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "store.sqlite3", read_threads=1)
    yield store
    await store.close()


async def test_the_server_stack_is_a_store_that_signals_commits_and_their_types(adapter: SqliteStore) -> None:
    store = SignallingStore(TimedStore(adapter, Timings().histogram))
    assert isinstance(store, Store) and store.name == "sqlite"
    await store.open()
    assert not store.committed.is_set()
    await store.commit([_create("Patient", "p1"), _create("Task", "t1")])
    assert store.committed.is_set()
    assert store.take_changed_types() == {"Patient", "Task"}
    assert store.take_changed_types() == set()
    read = await store.read("Patient", "p1")
    assert read is not None and orjson.loads(read.body or b"")["id"] == "p1"


async def test_each_listener_is_woken_by_every_commit_and_cleared_on_its_own(adapter: SqliteStore) -> None:
    store = SignallingStore(adapter)
    await store.open()
    notices, letters = store.listener(), store.listener()
    await store.commit([_create("Task", "t1")])
    assert notices.is_set() and letters.is_set() and store.committed.is_set()
    notices.clear()
    assert letters.is_set() and store.committed.is_set()  # one worker's clear leaves the others woken
    await store.commit([_create("Task", "t2")])
    assert notices.is_set()


async def test_a_failed_commit_signals_nothing(adapter: SqliteStore) -> None:
    store = SignallingStore(adapter)
    listener = store.listener()
    with pytest.raises(StoreUnavailable):  # not opened yet
        await store.commit([_create("Patient", "p1")])
    assert not store.committed.is_set() and not listener.is_set() and store.take_changed_types() == set()


async def test_every_timed_call_is_observed_under_its_method_name(adapter: SqliteStore) -> None:
    timings = Timings()
    store = TimedStore(adapter, timings.histogram)
    await store.open()
    calls = {
        "commit": lambda: store.commit([_create("Patient", "p1")]),
        "read": lambda: store.read("Patient", "p1"),
        "read_version": lambda: store.read_version("Patient", "p1", 1),
        "read_many": lambda: store.read_many([("Patient", "p1")]),
        "search": lambda: store.search(Query("Patient")),
        "count": lambda: store.count(Query("Patient")),
        "history": lambda: store.history(HistoryFilter("Patient"), 10),
        "write_records": lambda: store.write_records([RecordWrite("kind", "k", {"n": 1})]),
        "insert_records": lambda: store.insert_records([RecordWrite("log", "0001", {"n": 1})]),
        "get_record": lambda: store.get_record("kind", "k"),
        "list_records": lambda: store.list_records("kind", prefix="k"),
        "acquire_lease": lambda: store.acquire_lease("lease", "me", 5.0),
        "release_lease": lambda: store.release_lease("lease", "me"),
        "outbox_after": lambda: store.outbox_after(0, 10),
        "ping": lambda: store.ping(),
    }
    for operation, call in calls.items():
        await call()
        assert timings.counts().get(operation) == 1, operation
    assert set(timings.counts()) == set(TIMED_OPERATIONS) == set(calls)  # and open is not timed


async def test_a_write_failing_on_the_store_is_remembered_until_one_succeeds(adapter: SqliteStore) -> None:
    store = TimedStore(adapter, Timings().histogram)
    assert store.writes_failing is False
    for failing_write in (lambda: store.commit([_create("Patient", "p1")]),
                          lambda: store.write_records([RecordWrite("kind", "k", {"n": 1})])):
        with pytest.raises(StoreUnavailable):  # the adapter is closed: the write fails on the store
            await failing_write()
        assert store.writes_failing is True
        await store.open()
        await store.write_records([RecordWrite("kind", "probe", {"n": 2})])
        assert store.writes_failing is False
        await store.close()


async def test_only_the_port_and_the_wrappers_own_additions_are_reachable(adapter: SqliteStore) -> None:
    store = SignallingStore(TimedStore(adapter, Timings().histogram))
    assert not hasattr(store, "path") and not hasattr(store, "writes_failing")  # no attribute pass-through
    assert store.inner.writes_failing is False and store.inner.inner is adapter
    assert not any(hasattr(wrapper, "__getattr__") for wrapper in (StoreWrapper, SignallingStore, TimedStore))


async def test_the_auth_store_shares_the_adapters_database_beneath_the_wrappers(tmp_path: Path) -> None:
    """The server hands the auth store the adapter under its wrappers: on MongoDB the client registry lives in
    the FHIR store's database, on SQLite in a file of its own."""
    mongo = MongoStore("mongodb://in-process", "fhirclr_wrapped", client=InProcClient(), transactions=False)
    wrapped = SignallingStore(TimedStore(mongo, Timings().histogram))
    await wrapped.open()
    try:
        assert wrapped.adapter is mongo
        auth = build_auth_store(tmp_path, wrapped.adapter)
        assert isinstance(auth, MongoAuthStore)
        await auth.put_client(ClientRecord("cbo-app", "CBO app", "Organization/cbo", Role.SERVICING_PROVIDER,
                                           ("system/Task.rs",), jwks={"keys": []}))
        assert [doc["_id"] async for doc in mongo.database["auth_clients"].find({})] == ["cbo-app"]
    finally:
        await wrapped.close()
    sqlite = SqliteStore(tmp_path / "store.sqlite3", read_threads=1)
    assert SignallingStore(TimedStore(sqlite, Timings().histogram)).adapter is sqlite
    assert isinstance(build_auth_store(tmp_path, sqlite), SqliteAuthStore)
