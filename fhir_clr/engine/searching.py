"""Search execution: parse, run on the store, count, and resolve ``_include``/``_revinclude`` in batches."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence

import orjson

from fhir_clr.engine.access import FULL_ACCESS, AccessPolicy
from fhir_clr.engine.results import SearchResult
from fhir_clr.errors import FhirError, Issue
from fhir_clr.search.parse import IncludeSpec, ParsedSearch, parse_search
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import Store, StoredResource
from fhir_clr.store.query import Condition, ParamType, Query, ReferenceValue

MAX_INCLUDE_ITERATIONS = 3

Visibility = Callable[[Sequence[StoredResource]], Awaitable[list[StoredResource]]]
"""Filters resources down to those the caller may see (``Engine.visible``)."""


class Searcher:
    """Runs searches for the engine."""

    def __init__(self, store: Store, registry: SearchParamRegistry, *, default_count: int, max_count: int,
                 base_urls: Sequence[str] = ()) -> None:
        self.store = store
        self.registry = registry
        self.default_count = default_count
        self.max_count = max_count
        self.base_urls = tuple(base_urls)

    def parse(self, resource_type: str, params: list[tuple[str, str]], request_base: str | None = None
              ) -> ParsedSearch:
        """Parse query parameters for ``resource_type`` with this server's paging limits; absolute
        references on the configured base URLs or on ``request_base`` count as local."""
        base_urls = (*self.base_urls, request_base) if request_base else self.base_urls
        return parse_search(resource_type, params, self.registry, default_count=self.default_count,
                            max_count=self.max_count, base_urls=base_urls)

    async def search(self, resource_type: str, params: list[tuple[str, str]], *, strict: bool = False,
                     request_base: str | None = None, access: AccessPolicy = FULL_ACCESS,
                     visible: Visibility | None = None) -> SearchResult:
        """One page of results. Unknown parameters are reported as a warning issue, or refused (400)
        under ``strict`` (``Prefer: handling=strict``). ``access`` restricts the matches (its criterion is
        AND-ed into the query) and ``visible`` filters included resources."""
        parsed = self.parse(resource_type, params, request_base)
        access.check_search(resource_type, parsed.query.criteria)
        restriction = access.restriction(resource_type)
        if restriction is not None:
            parsed.query.criteria.append(restriction)
        issues: list[Issue] = []
        if parsed.unknown:
            names = ", ".join(sorted(set(parsed.unknown)))
            if strict:
                raise FhirError(400, "not-supported", f"Unknown or unsupported search parameter(s): {names}")
            issues.append(Issue(code="not-supported", severity="warning",
                                message=f"Ignored unknown or unsupported search parameter(s): {names}"))
        query = parsed.query
        if parsed.summary == "count" or query.count == 0:
            return SearchResult([], [], await self.store.count(query), parsed.self_params, None, None, issues,
                                parsed.summary)
        page = await self.store.search(query)
        total: int | None = None
        if parsed.total != "none":
            if query.page_token is None and page.next_token is None:
                total = len(page.resources)  # the whole result is on this page: free
            elif parsed.total is not None:  # asked for (accurate or estimate): a count of every match
                total = await self.store.count(query)
        included, include_issues = await self._includes(page.resources, parsed)
        if included and (visible is not None or access is not FULL_ACCESS):
            included = [r for r in included if access.permits(r.resource_type, "r")]
            included = await visible(included) if visible is not None else included
        issues.extend(include_issues)
        return SearchResult(page.resources, included, total, parsed.self_params, page.next_token,
                            page.prev_token, issues, parsed.summary, parsed.elements)

    # ---- _include / _revinclude --------------------------------------------------------------------

    async def _includes(self, matches: list[StoredResource], parsed: ParsedSearch
                        ) -> tuple[list[StoredResource], list[Issue]]:
        if not matches or not (parsed.includes or parsed.revincludes):
            return [], []
        seen = {(r.resource_type, r.resource_id) for r in matches}
        included: list[StoredResource] = []
        frontier = matches
        for depth in range(MAX_INCLUDE_ITERATIONS):
            specs_inc = [s for s in parsed.includes if depth == 0 or s.iterate]
            specs_rev = [s for s in parsed.revincludes if depth == 0 or s.iterate]
            if not (specs_inc or specs_rev) or not frontier:
                break
            found = await self._forward(frontier, specs_inc) + await self._reverse(frontier, specs_rev)
            fresh = []
            for resource in found:
                key = (resource.resource_type, resource.resource_id)
                if key not in seen:
                    seen.add(key)
                    fresh.append(resource)
            included.extend(fresh)
            frontier = fresh
            if len(included) >= self.max_count:
                return included[: self.max_count], [Issue(
                    code="too-costly", severity="warning",
                    message=f"Included resources were truncated at {self.max_count}")]
        return included, []

    async def _forward(self, sources: list[StoredResource], specs: list[IncludeSpec]) -> list[StoredResource]:
        keys: set[tuple[str, str]] = set()
        for spec in specs:
            for source in sources:
                if spec.source_type not in ("*", source.resource_type) or source.body is None:
                    continue
                for ref in self._references(source, spec.param):
                    type_, _, id_ = ref.partition("/")
                    if id_ and "/" not in id_ and (spec.target_type in (None, type_)):
                        keys.add((type_, id_))
        return await self.store.read_many(sorted(keys)) if keys else []

    async def _reverse(self, targets: list[StoredResource], specs: list[IncludeSpec]) -> list[StoredResource]:
        found: list[StoredResource] = []
        refs = tuple(ReferenceValue(f"{t.resource_type}/{t.resource_id}") for t in targets)
        for spec in specs:
            for source_type in self._types_for(spec.source_type):
                definition = self.registry.get(source_type, spec.param)
                if definition is None or definition.type is not ParamType.REFERENCE:
                    continue
                wanted = tuple(r for r in refs if spec.target_type in (None, r.ref.partition("/")[0]))
                if not wanted:
                    continue
                query = Query(source_type, [Condition(spec.param, ParamType.REFERENCE, wanted)],
                              count=self.max_count)
                found.extend((await self.store.search(query)).resources)
        return found

    def _references(self, source: StoredResource, param: str) -> Iterable[str]:
        resource = orjson.loads(source.body or b"{}")
        codes = ([code for code, d in self.registry.for_type(source.resource_type).items()
                  if d.type is ParamType.REFERENCE] if param == "*" else [param])
        for code in codes:
            definition = self.registry.get(source.resource_type, code)
            if definition is None or definition.type is not ParamType.REFERENCE:
                continue
            for _, ref in self.registry.extract_param(resource, code).references:
                yield ref

    def _types_for(self, source_type: str) -> list[str]:
        if source_type != "*":
            return [source_type]
        return sorted(self.registry.types())
