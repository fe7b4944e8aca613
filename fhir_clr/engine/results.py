"""Values the engine hands back to its callers (REST, bundles, mappers, CLI)."""

from __future__ import annotations

from dataclasses import dataclass, field

from fhir_clr.errors import Issue
from fhir_clr.store.port import StoredResource


@dataclass(slots=True)
class WriteResult:
    """Outcome of one write: the stored version and the HTTP status it maps to.

    ``status`` is 201 for a create, 200 for an update, a no-op conditional create or a delete.
    ``changed`` is False when nothing new was written (conditional create found a match, an update
    identical to the current version, a delete of something already gone)."""

    stored: StoredResource | None
    status: int
    changed: bool = True
    issues: list[Issue] = field(default_factory=list)


@dataclass(slots=True)
class SearchResult:
    """One page of a search, ready to be rendered as a searchset Bundle."""

    matches: list[StoredResource]
    included: list[StoredResource]
    total: int | None
    self_params: list[tuple[str, str]]
    next_token: str | None
    prev_token: str | None
    issues: list[Issue]
    summary: str | None = None
    elements: list[str] = field(default_factory=list)


@dataclass(slots=True)
class HistoryResult:
    """One page of history entries, newest first."""

    entries: list[StoredResource]
    self_params: list[tuple[str, str]]
    next_token: str | None
    total: int | None = None

