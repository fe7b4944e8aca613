"""The engine facade: FHIR interactions over a store, with optimistic concurrency and retries.

Every caller (REST, transaction Bundles, file mappers, CLI) goes through this class, so validation,
index extraction, business rules (:mod:`fhir_clr.engine.rules`), history and outbox events happen the same
way for every write.
"""

from __future__ import annotations

import asyncio
import copy
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_clr.engine.access import FULL_ACCESS, AccessPolicy
from fhir_clr.engine.history import HistoryReader
from fhir_clr.engine.reference import ReferenceData
from fhir_clr.engine.results import HistoryResult, SearchResult, WriteResult
from fhir_clr.engine.rules import Caller, PlanningContext, Prefetched, PrefetchingRule, WriteRule
from fhir_clr.engine.searching import Searcher
from fhir_clr.engine.visibility import Visibility
from fhir_clr.engine.writes import Plan, WritePlanner, parse_criteria, require_type
from fhir_clr.errors import FhirError, not_found
from fhir_clr.fhirmodel.validate import validate_id
from fhir_clr.search.parse import PAGE_TOKEN
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import MatchKeyTaken, Store, StoredResource, VersionConflict

MAX_ATTEMPTS = 40
"""Plans tried per write before giving up with 409 (each lost race means another writer succeeded)."""


class Engine:
    """FHIR create/read/update/patch/delete/search/history over one store, on behalf of ``access`` (see
    ``with_access``; unrestricted by default)."""

    def __init__(self, store: Store, registry: SearchParamRegistry, *, reference: ReferenceData | None = None,
                 write_rules: Iterable[WriteRule] = (), default_count: int = 20, max_count: int = 1000,
                 base_urls: Sequence[str] = (), clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.registry = registry
        self.reference = reference or ReferenceData()
        """The domain's rules configuration, code lists and profiles, carried for the console, imports and
        subscriptions (empty for a plain FHIR server)."""
        self.rules = self.reference.rules
        self.codes = self.reference.codes
        self.planner = WritePlanner(store, registry, default_count=default_count, max_count=max_count,
                                    base_urls=base_urls)
        self.searcher = Searcher(store, registry, default_count=default_count, max_count=max_count,
                                 base_urls=base_urls)
        self.history_reader = HistoryReader(store, default_count=default_count, max_count=max_count)
        self.write_rules: list[WriteRule] = list(write_rules)
        """The business rules applied in order to every planned write (the application's, see
        ``fhir_clr.app.build_services``; none: a plain FHIR server)."""
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        """The current time for business rules (fixed in reproducible deadline tests)."""
        self.access: AccessPolicy = FULL_ACCESS
        self.server_write = False
        """True in the view making the server's own writes (see ``for_server_writes``)."""

    @property
    def visibility(self) -> Visibility:
        """The caller's view (the one gate, see ``fhir_clr.engine.visibility``), shared with the planner."""
        return self.planner.visibility

    def with_access(self, access: AccessPolicy) -> Engine:
        """A view of this engine acting for one caller (cheap: shares the store and searcher; the planner
        reads through the caller's visibility). The write rules keep the unrestricted planner they were built
        with: their lookups are the server's own."""
        scoped = copy.copy(self)
        scoped.access = access
        scoped.planner = self.planner.seen_by(Visibility(self.store, access))
        return scoped

    def for_server_writes(self) -> Engine:
        """A view of this engine whose writes are the server's own (a Subscription status the delivery worker
        or ``$resend`` records): the rules see ``server_write`` in their planning context. Access is unchanged."""
        scoped = copy.copy(self)
        scoped.server_write = True
        return scoped

    # ---- access ----------------------------------------------------------------------------------

    async def visible(self, resources: Sequence[StoredResource]) -> list[StoredResource]:
        """The resources the caller may see (current, live versions decide), in the given order."""
        return await self.visibility.visible(resources)

    async def is_visible(self, resource_type: str, resource_id: str) -> bool:
        """True when the caller may see the resource (its current version decides)."""
        return bool(await self.visibility.visible_ids(resource_type, {resource_id}))

    async def apply_rules(self, plan: Plan, planned: Mapping[str, dict[str, Any]] | None = None,
                          prefetched: Prefetched | None = None) -> Plan:
        """``plan`` after every write rule in order, for the caller at the engine's current time; ``planned``
        and ``prefetched`` are what the enclosing transaction planned and the rules read ahead (see
        ``PlanningContext``)."""
        if not self.write_rules:
            return plan
        context = PlanningContext(Caller(self.access.organization, str(self.access.role)), self.clock(),
                                  self.server_write, planned or {}, prefetched or Prefetched())
        for rule in self.write_rules:
            plan = await rule.apply(plan, context)
        return plan

    async def prefetch(self, references: Collection[str]) -> Prefetched:
        """What the rules read ahead for a batch of writes updating ``references`` (``Type/id``), to hand to
        ``vet`` for each write of the batch, with the current versions of those the caller sees unrestricted
        (one read for all, instead of one per write: each read on the event loop's thread hands the GIL to the
        store's writer thread and waits to get it back)."""
        keys = sorted({(t, i) for t, _, i in (r.partition("/") for r in references)
                       if i and "/" not in i and self.planner.visibility.restriction(t) is None})
        current = {(s.resource_type, s.resource_id): s for s in await self.store.read_many(keys)} if keys else {}
        return Prefetched({rule: await rule.prefetch(references) for rule in self.write_rules
                           if isinstance(rule, PrefetchingRule)}, current)

    async def vet(self, plan: Plan, written: frozenset[str] = frozenset(), *,
                  planned: Mapping[str, dict[str, Any]] | None = None, prefetched: Prefetched | None = None) -> Plan:
        """A planned write made ready to commit: the references it adds must be visible to the caller (or
        be among ``written``, the ``Type/id`` a transaction creates), then the business rules run (with what
        the transaction ``planned`` and the batch ``prefetched``), then the new content must be the caller's to
        write (else 403). The version it changes was read through the caller's visibility by the planner, so
        nothing here runs on a resource the caller may not see."""
        change = plan.change
        if change is not None and change.resource is not None:
            previous = plan.replaced.body if plan.replaced is not None else None
            await self.visibility.check_references(change.resource, previous, written)
        if change is not None and plan.replaced is not None and plan.replaced.body is not None:
            self.access.check_change(change.resource_type, orjson.loads(plan.replaced.body))
        plan = await self.apply_rules(plan, planned, prefetched)
        if plan.change is not None:
            self.access.check_content(plan.change.resource_type, plan.change.resource)
        return plan

    # ---- reads -----------------------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> StoredResource:
        """Current version; 404 if unknown or out of the caller's reach, 410 if deleted."""
        require_type(resource_type)
        self.access.require(resource_type, "r")
        return await self.planner.read_live(resource_type, resource_id)

    async def vread(self, resource_type: str, resource_id: str, version: str) -> StoredResource:
        """One version; 404 if unknown or not readable by the caller (see ``Visibility.readable_versions``),
        410 if that version is a delete."""
        require_type(resource_type)
        validate_id(resource_id)
        self.access.require(resource_type, "r")
        if not version.isdigit():
            raise not_found(resource_type, f"{resource_id}/_history/{version}")
        stored = await self.store.read_version(resource_type, resource_id, int(version))
        if stored is None or not await self.visibility.readable_versions([stored]):
            raise not_found(resource_type, f"{resource_id}/_history/{version}")
        if stored.deleted:
            raise FhirError(410, "deleted", f"Version {version} of {resource_type}/{resource_id} is a delete")
        return stored

    async def search(self, resource_type: str, params: list[tuple[str, str]], *, strict: bool = False,
                     request_base: str | None = None) -> SearchResult:
        """Type-level search (see ``Searcher``), limited to what the caller may see."""
        require_type(resource_type)
        self.access.require(resource_type, "s")
        return await self.searcher.search(resource_type, params, strict=strict, request_base=request_base,
                                          access=self.access, visible=self.visible)

    async def iter_pages(self, resource_type: str, params: list[tuple[str, str]], *, strict: bool = False
                         ) -> AsyncIterator[SearchResult]:
        """Every page of a search (as :meth:`search` answers it), following the next-page token to the end."""
        page = await self.search(resource_type, params, strict=strict)
        yield page
        while page.next_token:
            page = await self.search(resource_type, [*params, (PAGE_TOKEN, page.next_token)], strict=strict)
            yield page

    async def history(self, resource_type: str | None, resource_id: str | None,
                      params: list[tuple[str, str]]) -> HistoryResult:
        """Instance, type or system history, newest first. Restricted callers get the versions they may read
        (``Visibility.readable_versions``; a page can then be shorter than ``_count``); an instance's history
        needs the resource to be visible now (else 404, as for an unknown id)."""
        if resource_type is not None:
            require_type(resource_type)
            self.access.require(resource_type, "r" if resource_id is not None else "s")
        if resource_id is not None:
            validate_id(resource_id)
            if await self.planner.visibility.current(resource_type or "", resource_id) is None:
                raise not_found(resource_type or "", resource_id)
        result = await self.history_reader.read(resource_type, resource_id, params)
        permitted = [e for e in result.entries if resource_id is not None or self.access.permits(e.resource_type, "s")]
        result.entries = await self.visibility.readable_versions(permitted)
        return result

    # ---- writes ----------------------------------------------------------------------------------

    async def create(self, resource_type: str, body: dict[str, Any], if_none_exist: str | None = None
                     ) -> WriteResult:
        """``POST [type]`` (optionally conditional on ``If-None-Exist``), race-free."""
        self.access.require(resource_type, "c")
        steal = False
        for _ in range(MAX_ATTEMPTS):
            plan = await self.planner.plan_create(resource_type, body, if_none_exist, steal_keys=steal)
            try:
                return await self._commit(plan)
            except MatchKeyTaken:
                # Another request created a match first: the next plan finds it (200), or, when the key's
                # holder no longer matches the criteria, takes the key over.
                steal = True
        raise _too_contended()

    async def update(self, resource_type: str, resource_id: str, body: dict[str, Any],
                     if_match: int | None = None, *, create_only: bool = False) -> WriteResult:
        """``PUT [type]/[id]`` (update, or update-as-create; only a create with ``create_only``, the
        ``If-None-Match: *`` precondition, re-checked on every retry so a racing create makes it 412)."""
        self.access.require(resource_type, "u")
        return await self._with_retries(
            lambda _steal: self.planner.plan_update(resource_type, resource_id, body, if_match,
                                                    create_only=create_only), if_match)

    async def conditional_update(self, resource_type: str, criteria: str, body: dict[str, Any],
                                 if_match: int | None = None) -> WriteResult:
        """``PUT [type]?criteria``."""
        self.access.require(resource_type, "u")
        return await self._with_retries(
            lambda steal: self.planner.plan_conditional_update(resource_type, criteria, body, if_match,
                                                               steal_keys=steal), if_match)

    async def patch(self, resource_type: str, resource_id: str, operations: list[Any] | dict[str, Any],
                    if_match: int | None = None) -> WriteResult:
        """``PATCH [type]/[id]`` with a JSON Patch document or a FHIRPath Patch Parameters."""
        self.access.require(resource_type, "u")
        return await self._with_retries(
            lambda _steal: self.planner.plan_patch(resource_type, resource_id, operations, if_match), if_match)

    async def conditional_patch(self, resource_type: str, criteria: str, operations: list[Any] | dict[str, Any],
                                if_match: int | None = None) -> WriteResult:
        """``PATCH [type]?criteria``: exactly one match is patched."""
        self.access.require(resource_type, "u")
        target = await self._single_match(resource_type, criteria, "Conditional patch")
        return await self.patch(resource_type, target.resource_id, operations, if_match)

    async def delete(self, resource_type: str, resource_id: str, if_match: int | None = None) -> WriteResult:
        """``DELETE [type]/[id]``; idempotent."""
        self.access.require(resource_type, "d")
        return await self._with_retries(
            lambda _steal: self.planner.plan_delete(resource_type, resource_id, if_match), if_match)

    async def conditional_delete(self, resource_type: str, criteria: str) -> WriteResult:
        """``DELETE [type]?criteria``: no match is a success, several matches are refused (412)."""
        require_type(resource_type)
        self.access.require(resource_type, "d")
        found = await self.planner.match(resource_type, parse_criteria(criteria))
        if len(found) > 1:
            raise FhirError(412, "multiple-matches", "Conditional delete criteria match more than one resource")
        if not found:
            return WriteResult(stored=None, status=200, changed=False)
        return await self.delete(resource_type, found[0].resource_id)

    # ---- helpers ---------------------------------------------------------------------------------

    async def _single_match(self, resource_type: str, criteria: str, what: str) -> StoredResource:
        require_type(resource_type)
        found = await self.planner.match(resource_type, parse_criteria(criteria))
        if not found:
            raise FhirError(404, "not-found", f"{what} criteria match no resource")
        if len(found) > 1:
            raise FhirError(412, "multiple-matches", f"{what} criteria match more than one resource")
        return found[0]

    async def _with_retries(self, make_plan: Callable[[bool], Awaitable[Plan]], if_match: int | None
                            ) -> WriteResult:
        """Plan and commit; on a lost compare-and-swap re-plan from the new current version, unless the
        client pinned a version with If-Match (then the loss is a 412). ``make_plan`` gets ``True`` after a lost
        match-key race: a conditional create then takes over a key whose holder no longer matches."""
        steal = False
        for attempt in range(MAX_ATTEMPTS):
            plan = await make_plan(steal)
            try:
                return await self._commit(plan)
            except VersionConflict as exc:
                if if_match is not None:
                    raise FhirError(412, "conflict", f"The resource changed concurrently (now version "
                                    f"{exc.actual}); If-Match version {if_match} is stale") from None
            except MatchKeyTaken:
                steal = True
            await _back_off(attempt)
        raise _too_contended()

    async def _commit(self, plan: Plan) -> WriteResult:
        """Vet the plan (references, business rules, content) and commit the write with the changes it
        entails at once."""
        plan = await self.vet(plan)
        if plan.change is None:
            return WriteResult(stored=plan.existing, status=plan.status, changed=False)
        stored, *_ = await self.store.commit(plan.changes())
        return WriteResult(stored=stored, status=plan.status)


async def _back_off(attempt: int) -> None:
    """A short jittered pause after a lost race, growing with the attempt, so contenders spread out."""
    await asyncio.sleep(random.uniform(0, 0.001 * min(attempt + 1, 20)))


def _too_contended() -> FhirError:
    return FhirError(409, "conflict", "The resource is being changed by many requests at once; retry later")
