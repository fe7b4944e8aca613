"""Fixtures of the store contract suite: every test runs once per adapter listed in ``ADAPTERS``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from fhir_clr.observability.metrics import STORE_OPERATIONS
from fhir_clr.store.mongo import MongoStore
from fhir_clr.store.port import Store
from fhir_clr.store.signalling import SignallingStore
from fhir_clr.store.sqlite import SqliteStore
from fhir_clr.store.timed import TimedStore
from tests.mongo_engines import InProcClient, mongo_engine

StoreFactory = Callable[[Path], Store]
"""Builds an unopened store whose data lives under (or is named after) the given directory. Called twice
with the same directory it must reach the same data (the durability test reopens the store)."""


def sqlite_store(directory: Path) -> Store:
    """The embedded SQLite adapter on a file in the test's temporary directory."""
    return SqliteStore(directory / "contract.sqlite3", read_threads=2)


def wrapped_sqlite_store(directory: Path) -> Store:
    """The SQLite adapter inside the wrappers the server puts around every store (commit signals, timing):
    each port call must reach the adapter through them unchanged."""
    return SignallingStore(TimedStore(sqlite_store(directory), STORE_OPERATIONS))


_IN_PROCESS: dict[Path, InProcClient] = {}
_REAL_DATABASES: set[str] = set()


def mongo_store(directory: Path) -> Store:
    """The MongoDB adapter: on the real server of ``MONGODB_URI`` (a database named after the test's
    directory, dropped at the end of the session), else on an in-process mongomock engine kept per
    directory so that reopening reaches the same data."""
    name = "fhirclr_contract_" + hashlib.sha1(str(directory).encode()).hexdigest()[:12]
    uri = os.environ.get("MONGODB_URI")
    if uri:
        _REAL_DATABASES.add(name)
        return MongoStore(uri, name)
    client = _IN_PROCESS.setdefault(directory, InProcClient())
    return MongoStore("mongodb://in-process", name, client=client, transactions=False)


@pytest.fixture(scope="session", autouse=True)
def _drop_real_mongo_databases() -> Iterator[None]:
    yield
    uri = os.environ.get("MONGODB_URI")
    if uri and _REAL_DATABASES:
        from pymongo import MongoClient

        with MongoClient(uri) as client:
            for name in _REAL_DATABASES:
                client.drop_database(name)


# ------------------------------------------------------------------------------------------------------
# ADAPTER HOOK: append ("name", factory) to run the whole contract suite against another adapter.
# A factory may call pytest.skip() when its backend is not available in this environment.
# ------------------------------------------------------------------------------------------------------
ADAPTERS: list[tuple[str, StoreFactory]] = [
    ("sqlite", sqlite_store),
    ("mongo", mongo_store),
    ("sqlite-wrapped", wrapped_sqlite_store),
]


def pytest_report_header() -> str:
    """Name the adapters the contract suite runs against."""
    return ("store contract adapters: " + ", ".join(name for name, _ in ADAPTERS)
            + f"; mongo runs on {mongo_engine()}")


@pytest.fixture(params=[factory for _, factory in ADAPTERS], ids=[name for name, _ in ADAPTERS])
def store_factory(request: pytest.FixtureRequest) -> StoreFactory:
    """The factory of the adapter under test."""
    return request.param


@pytest.fixture
async def store(store_factory: StoreFactory, tmp_path: Path) -> AsyncIterator[Store]:
    """An opened, empty store of the adapter under test."""
    opened = store_factory(tmp_path)
    await opened.open()
    yield opened
    await opened.close()
