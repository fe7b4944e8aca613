"""History interactions (instance, type, system) with ``_since``, ``_at``, ``_count`` and keyset paging."""

from __future__ import annotations

from fhir_clr.engine.results import HistoryResult
from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.allowlist import is_served_type
from fhir_clr.search.parse import PAGE_TOKEN
from fhir_clr.search.values import parse_date_range
from fhir_clr.store.port import HistoryFilter, InvalidPageToken, Store


class HistoryReader:
    """Reads history pages from the store."""

    def __init__(self, store: Store, *, default_count: int, max_count: int) -> None:
        self.store = store
        self.default_count = default_count
        self.max_count = max_count

    async def read(self, resource_type: str | None, resource_id: str | None,
                   params: list[tuple[str, str]]) -> HistoryResult:
        """One page of history for the given scope."""
        scope = HistoryFilter(resource_type=resource_type, resource_id=resource_id)
        count = self.default_count
        token: str | None = None
        applied: list[tuple[str, str]] = []
        for name, value in params:
            if name == "_count":
                count = _parse_count(value, self.max_count)
                applied.append((name, str(count)))
            elif name == "_since":
                # FHIR: versions at or after the instant; the store's bound is exclusive.
                scope.since_us = _instant(name, value)[0] - 1
                applied.append((name, value))
            elif name == "_at":
                scope.at_us = _instant(name, value)[1]
                applied.append((name, value))
            elif name == "_type" and resource_type is None:
                types = tuple(t for t in value.split(",") if t)
                unknown = [t for t in types if not is_served_type(t)]
                if unknown:
                    raise FhirError(400, "value", f"_type names unknown resource type(s): {', '.join(unknown)}")
                scope.types = types
                applied.append((name, value))
            elif name == PAGE_TOKEN:
                token = value
        try:
            page = await self.store.history(scope, count, token)
        except InvalidPageToken:
            raise FhirError(400, "value", "The paging token is not valid for this history request") from None
        return HistoryResult(page.entries, applied, page.next_token)


def _parse_count(value: str, max_count: int) -> int:
    if not value.isdigit():
        raise FhirError(400, "value", "_count must be a non-negative integer")
    return max(1, min(int(value), max_count))


def _instant(name: str, value: str) -> tuple[int, int]:
    try:
        return parse_date_range(value)
    except ValueError:
        raise FhirError(400, "value", f"{name} must be a FHIR instant or date") from None
