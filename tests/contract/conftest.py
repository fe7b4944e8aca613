"""Fixtures of the store contract suite: every test runs once per adapter listed in ``ADAPTERS``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from fhir_clr.store.port import Store
from fhir_clr.store.sqlite import SqliteStore

StoreFactory = Callable[[Path], Store]
"""Builds an unopened store whose data lives under (or is named after) the given directory. Called twice
with the same directory it must reach the same data (the durability test reopens the store)."""


def sqlite_store(directory: Path) -> Store:
    """The embedded SQLite adapter on a file in the test's temporary directory."""
    return SqliteStore(directory / "contract.sqlite3", read_threads=2)


# ------------------------------------------------------------------------------------------------------
# ADAPTER HOOK: append ("name", factory) to run the whole contract suite against another adapter.
# A factory may call pytest.skip() when its backend is not available in this environment.
# ------------------------------------------------------------------------------------------------------
ADAPTERS: list[tuple[str, StoreFactory]] = [
    ("sqlite", sqlite_store),
]


def pytest_report_header() -> str:
    """Name the adapters the contract suite runs against."""
    return "store contract adapters: " + ", ".join(name for name, _ in ADAPTERS)


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
