"""Small builders for contract tests: hand-made Changes, IndexEntries and Queries, no search parser."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fhir_clr.store.port import Change, ChangeOp, Store, StoredResource
from fhir_clr.store.query import Criterion, IndexEntries, Query, SortKey


def us(text: str) -> int:
    """Epoch microseconds of an ISO instant (UTC when no offset is written)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def day(text: str) -> tuple[int, int]:
    """The inclusive microsecond range of one calendar day (``2024-01-01``)."""
    start = us(f"{text}T00:00:00")
    return start, start + 86_400_000_000 - 1


def change(resource_type: str, resource_id: str, expected: int = 0, index: IndexEntries | None = None, *,
           body: dict[str, Any] | None = None, keys: Sequence[str] = (), steal: bool = False) -> Change:
    """A create (expected 0) or update change with a minimal body."""
    resource = {"resourceType": resource_type, "id": resource_id, **(body or {})}
    op = ChangeOp.CREATE if expected == 0 else ChangeOp.UPDATE
    return Change(op, resource_type, resource_id, expected, resource, index or IndexEntries(), keys, steal)


def deletion(resource_type: str, resource_id: str, expected: int) -> Change:
    """A delete change (tombstone)."""
    return Change(ChangeOp.DELETE, resource_type, resource_id, expected)


async def put(store: Store, resource_type: str, resource_id: str, index: IndexEntries | None = None,
              **kwargs: Any) -> StoredResource:
    """Create or update one resource at its current version."""
    current = await store.read(resource_type, resource_id)
    [stored] = await store.commit([change(resource_type, resource_id, current.version if current else 0, index,
                                          **kwargs)])
    return stored


async def remove(store: Store, resource_type: str, resource_id: str) -> StoredResource:
    """Delete one resource at its current version."""
    current = await store.read(resource_type, resource_id)
    assert current is not None
    [stored] = await store.commit([deletion(resource_type, resource_id, current.version)])
    return stored


async def ids(store: Store, resource_type: str, *criteria: Criterion, sort: Sequence[SortKey] = (),
              count: int = 100) -> list[str]:
    """Ids of the first page of a search, in result order."""
    page = await store.search(Query(resource_type, list(criteria), list(sort), count))
    return [r.resource_id for r in page.resources]


async def id_set(store: Store, resource_type: str, *criteria: Criterion) -> set[str]:
    """Ids of all matches (one large page), as a set."""
    return set(await ids(store, resource_type, *criteria, count=1000))
