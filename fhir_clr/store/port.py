"""The storage port: what the engine needs from a database, and nothing more.

Every adapter (the ``sqlite`` package, embedded default; the ``mongo`` package, for production) implements
``Store`` and passes the same contract suite (``tests/contract``). The engine never sees SQL or MongoDB.

Concurrency model — optimistic, enforced inside the store:

* The engine reads the current version, decides, and hands the store a list of ``Change`` objects.
* ``Store.commit`` applies all of them **atomically** (one database transaction): for each change it
  checks that the resource's current version is still ``expected_version`` (0 = never existed), assigns
  ``version = expected_version + 1`` and ``meta.lastUpdated`` at commit time (monotonic per store), writes
  the new current row, the history row, the index rows and one outbox event, and claims the change's
  ``match_keys`` (unique: this is what makes conditional create race-free).
* A stale version raises ``VersionConflict``; a claimed key raises ``MatchKeyTaken``; nothing is written.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from fhir_clr.store.query import IndexEntries, Query


class ChangeOp(StrEnum):
    """What a committed change did (drives history ``request.method`` and subscription events)."""

    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


class WriteMethod(StrEnum):
    """The HTTP method a version was written with, recorded per version for history ``request.method``."""

    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"


@dataclass(slots=True)
class Change:
    """One resource write inside an atomic commit.

    ``resource`` is the full JSON dict to store (id set, any client ``meta.versionId``/``lastUpdated``
    will be overwritten by the store); None for a delete. ``index`` holds the search values of the new
    version (None for a delete). ``match_keys`` are unique keys to claim for this resource;
    ``steal_match_keys`` re-assigns keys already claimed by another resource (used when that resource no
    longer matches the key's criteria). ``method`` is the HTTP method of the interaction that wrote it, stored
    with the history row (None: not recorded; readers derive it from ``op``).
    """

    op: ChangeOp
    resource_type: str
    resource_id: str
    expected_version: int
    resource: dict[str, Any] | None = None
    index: IndexEntries | None = None
    match_keys: Sequence[str] = ()
    steal_match_keys: bool = False
    method: WriteMethod | None = None


@dataclass(slots=True, frozen=True)
class StoredResource:
    """One stored version as the store returns it. ``body`` is the exact JSON served to clients (None
    for a delete tombstone). ``op`` is the change that produced this version; ``method`` the HTTP method it
    was written with, on history entries and ``read_version`` results (None there when the version was written
    without one, and on every other read)."""

    resource_type: str
    resource_id: str
    version: int
    last_updated_us: int
    last_updated: str
    deleted: bool
    body: bytes | None
    op: ChangeOp = ChangeOp.UPDATE
    method: WriteMethod | None = None


@dataclass(slots=True)
class SearchPage:
    """One page of search results, in query order, with opaque keyset tokens for the neighbours."""

    resources: list[StoredResource]
    next_token: str | None = None
    prev_token: str | None = None


@dataclass(slots=True)
class HistoryPage:
    """One page of history entries, newest first."""

    entries: list[StoredResource]
    next_token: str | None = None


@dataclass(slots=True, frozen=True)
class OutboxEvent:
    """A committed change, in commit order (``seq`` strictly increasing per store)."""

    seq: int
    resource_type: str
    resource_id: str
    version: int
    op: ChangeOp
    last_updated_us: int


@dataclass(slots=True, frozen=True)
class Record:
    """A small JSON document of server bookkeeping (not a FHIR resource, no history), addressed by kind + key:
    subscription counters, events and delivery state, job cursors."""

    kind: str
    key: str
    doc: dict[str, Any]
    rev: int
    """1 when inserted, +1 on every write (for compare-and-swap)."""


@dataclass(slots=True, frozen=True)
class RecordWrite:
    """One write of :meth:`Store.write_records`: ``doc`` None deletes; ``expected_rev`` None writes
    unconditionally, 0 requires that the record does not exist, n that its rev is n."""

    kind: str
    key: str
    doc: dict[str, Any] | None
    expected_rev: int | None = None


@dataclass(slots=True)
class HistoryFilter:
    """Scope of a history request: system (both None), type, or instance. ``since_us`` keeps versions
    written strictly after it; ``at_us`` keeps, per resource, the version current at that instant."""

    resource_type: str | None = None
    resource_id: str | None = None
    since_us: int | None = None
    at_us: int | None = None
    types: Sequence[str] = field(default_factory=tuple)


class StoreError(Exception):
    """Base class for storage errors the engine translates into HTTP outcomes."""


class VersionConflict(StoreError):
    """The resource changed since the engine read it (compare-and-swap failed)."""

    def __init__(self, resource_type: str, resource_id: str, expected: int, actual: int) -> None:
        super().__init__(f"{resource_type}/{resource_id}: expected version {expected}, found {actual}")
        self.resource_type = resource_type
        self.resource_id = resource_id
        self.expected = expected
        self.actual = actual


class MatchKeyTaken(StoreError):
    """A unique match key (conditional create) is already held by another live resource."""

    def __init__(self, key: str, resource_type: str, resource_id: str) -> None:
        super().__init__(f"match key already held by {resource_type}/{resource_id}")
        self.key = key
        self.resource_type = resource_type
        self.resource_id = resource_id


class RecordConflict(StoreError):
    """A record write's precondition failed (nothing of the batch was written)."""

    def __init__(self, kind: str, key: str, expected: int, actual: int) -> None:
        super().__init__(f"record {kind}/{key}: expected rev {expected}, found {actual}")
        self.kind, self.key, self.expected, self.actual = kind, key, expected, actual


class InvalidPageToken(StoreError):
    """A paging token that this store did not issue for this query."""


class UnsupportedSearch(StoreError):
    """The query uses a parameter type or modifier this adapter cannot answer."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or cannot do what the server needs (e.g. no transactions)."""


@runtime_checkable
class Store(Protocol):
    """The storage port. All methods are coroutines; adapters decide how they reach the database."""

    name: str

    async def open(self) -> None:
        """Connect, create schema/indexes (idempotent). Raise StoreUnavailable with a clear message."""

    async def close(self) -> None:
        """Finish in-flight writes and release connections."""

    async def ping(self) -> bool:
        """True when the database answers (readiness probe)."""

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The current version (a tombstone with ``deleted=True`` after a delete); None if never existed."""

    async def read_version(self, resource_type: str, resource_id: str, version: int) -> StoredResource | None:
        """One historical version (a delete tombstone is returned with ``deleted=True``)."""

    async def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredResource]:
        """Current, non-deleted versions for ``(type, id)`` keys, in one round trip. Missing keys are
        skipped; order is unspecified."""

    async def search(self, query: Query) -> SearchPage:
        """Run a search; pages are keyset based and stable while writes happen."""

    async def count(self, query: Query) -> int:
        """Number of current, non-deleted resources matching ``query`` (paging fields ignored)."""

    async def history(self, scope: HistoryFilter, count: int, page_token: str | None = None) -> HistoryPage:
        """Versions newest first (instance, type or system scope), ``since``/``at`` filters applied."""

    async def commit(self, changes: Sequence[Change]) -> list[StoredResource]:
        """Apply all changes atomically; return the stored versions in the same order.

        Raises VersionConflict or MatchKeyTaken (and writes nothing) when a precondition fails."""

    async def outbox_after(self, after_seq: int, limit: int) -> list[OutboxEvent]:
        """Committed changes with ``seq > after_seq`` in commit order."""

    def iter_current(self, resource_type: str, *, since_us: int | None = None, until_us: int | None = None,
                     batch: int = 1000) -> AsyncGenerator[list[bytes], None]:
        """The stored JSON of the live current versions of ``resource_type`` whose ``lastUpdated`` is after
        ``since_us`` and at or before ``until_us`` (either bound optional), in creation order, as lists of at
        most ``batch`` bodies. Each list is one keyset query that resumes after the last resource of the
        previous one, so a full scan costs the same per resource at any table size and holds one batch in
        memory. No access control: callers must only use it for callers who may see every resource of the
        type (bulk export does)."""

    async def get_record(self, kind: str, key: str) -> Record | None:
        """The record, or None."""

    async def list_records(self, kind: str, *, prefix: str = "", after: str | None = None,
                           limit: int = 100) -> list[Record]:
        """Records of ``kind`` whose key starts with ``prefix`` and sorts after ``after``, in key order."""

    async def write_records(self, writes: Sequence[RecordWrite]) -> list[Record | None]:
        """All writes in one transaction: every precondition holds, or RecordConflict and nothing written.
        Returns the records written (None for deletes), in order."""

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the named lease for ``ttl`` seconds; False while another owner holds it."""

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give the lease back if ``owner`` holds it."""
