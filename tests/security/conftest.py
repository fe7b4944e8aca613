"""One secured live server and one seeded world for the whole security suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.security.world import World, build_world, close_world


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The plan, A and B on a secured server with A's marked data seeded (see ``tests/security/world.py``)."""
    built = build_world(tmp_path_factory.mktemp("security-world"))
    yield built
    close_world(built)


WRITES_LAST = "test_reference_writes_as_b.py"
"""The reference-write tests run last: on today's code they make A's resources visible to B, which would make
the other tests fail for a reason that is not theirs."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the reference-write tests of this suite to the end of the run."""
    items.sort(key=lambda item: item.path.name == WRITES_LAST and item.path.parent.name == "security")
