"""What the CLR write rules share: the rule objects, lookups of related resources in the store, and builders of
the extra store Changes a rule produces (creates with new ids, compare-and-swap updates).

What a transaction planned before the current entry, and the obligations read ahead for a batch, come from the
engine's :class:`~fhir_clr.engine.rules.PlanningContext` of the write, passed to the lookups that use them."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_clr.clr.config import profile_url
from fhir_clr.clr.noticing import Noticing
from fhir_clr.clr.obligations import is_obligation, is_open
from fhir_clr.clr.workflow import TERMINAL_STATUSES, TaskWorkflow
from fhir_clr.engine.content import new_id
from fhir_clr.engine.rules import PlanningContext
from fhir_clr.engine.writes import WritePlanner
from fhir_clr.fhirmodel.code_lists import CodeList, CodeLists
from fhir_clr.fhirmodel.profiles import claims_profile
from fhir_clr.store.port import Change, ChangeOp, StoredResource

REFERRAL_PROFILE = profile_url("clr-referral")
REFERRAL_TASK_PROFILE = profile_url("clr-referral-task")
LOOKUP_LIMIT = 200
"""Most related resources one rule looks at (obligations of a Task, referrals of a Member for a service)."""


@dataclass(slots=True)
class ObligationCache:
    """The open obligations of some referral Tasks, read with one search for a batch of writes, by the Task's
    reference (what the CLR rules prefetch, see :class:`~fhir_clr.engine.rules.Prefetch`). Only valid until the
    batch commits: whoever fills it empties it (:meth:`clear`) before planning anything after a commit or a lost
    race."""

    by_task: dict[str, list[Related]] = field(default_factory=dict)
    referrals: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The CLR Referrals those Tasks are about (their ``focus``), by reference."""

    def clear(self) -> None:
        """Forget everything (lookups go to the store again)."""
        self.by_task.clear()
        self.referrals.clear()


def body_of(stored: StoredResource | None) -> dict[str, Any] | None:
    """The JSON body of a live stored resource; None when absent or deleted."""
    if stored is None or stored.deleted or stored.body is None:
        return None
    body: dict[str, Any] = orjson.loads(stored.body)
    return body


def reference_of(value: Any) -> str | None:
    """``value["reference"]`` when ``value`` is a Reference with a literal reference."""
    return value.get("reference") if isinstance(value, dict) and isinstance(value.get("reference"), str) else None


def is_referral(resource: dict[str, Any] | None) -> bool:
    """True for a ServiceRequest claiming the CLR Referral profile."""
    return bool(resource) and claims_profile(resource or {}, REFERRAL_PROFILE)


@dataclass(slots=True)
class Related:
    """A stored resource together with its parsed body."""

    stored: StoredResource
    body: dict[str, Any]


class ClrContext:
    """Rules, lookups and change builders over one write planner (and its store). ``owner`` is the rule whose
    prefetched obligations the lookups use (see :meth:`open_obligations`)."""

    def __init__(self, planner: WritePlanner, rules: dict[str, Any], codes: CodeLists, owner: object) -> None:
        self.planner = planner
        self.owner = owner
        self.rules = rules
        self.codes = codes
        self.workflow = TaskWorkflow(self.rules, self.codes)
        self.noticing: Noticing = self.workflow.noticing

    def code_list(self, key: str) -> CodeList:
        """One of the CLR code lists (CodeSystem id)."""
        return self.codes[key]

    # ---- lookups -----------------------------------------------------------------------------------------

    async def read(self, reference: str | None) -> Related | None:
        """The live resource at a relative reference (``Type/id``), or None."""
        if not reference or reference.count("/") != 1:
            return None
        resource_type, resource_id = reference.split("/")
        stored = await self.planner.store.read(resource_type, resource_id)
        body = body_of(stored)
        return Related(stored, body) if stored is not None and body is not None else None

    async def find(self, resource_type: str, params: list[tuple[str, str]]) -> list[Related]:
        """Live resources matching search ``params`` (at most :data:`LOOKUP_LIMIT`)."""
        found = await self.planner.find(resource_type, params, limit=LOOKUP_LIMIT)
        return [Related(s, b) for s in found if (b := body_of(s)) is not None]

    async def referral(self, reference: str | None, planning: PlanningContext) -> dict[str, Any] | None:
        """The CLR Referral at ``reference`` (``ServiceRequest/id``), or None when it is something else; one an
        earlier entry of the same transaction writes counts (``planning.planned``), e.g. a referral Task whose
        CLR Referral is created in the same Bundle."""
        if not reference or not reference.startswith("ServiceRequest/"):
            return None
        planned = planning.planned.get(reference)
        if planned is not None:
            return planned if is_referral(planned) else None
        cache = planning.prefetched.of(self.owner)
        if isinstance(cache, ObligationCache) and reference in cache.referrals:
            return cache.referrals[reference]
        related = await self.read(reference)
        return related.body if related is not None and is_referral(related.body) else None

    async def open_referral_tasks(self, referral_reference: str) -> list[Related]:
        """The referral Tasks about a CLR Referral that are not closed yet."""
        tasks = await self.find("Task", [("focus", referral_reference)])
        return [t for t in tasks if not is_obligation(t.body) and t.body.get("status") not in TERMINAL_STATUSES]

    async def open_obligations(self, planning: PlanningContext, *, part_of: str | None = None,
                               focus: str | None = None) -> list[Related]:
        """Open obligations that are part of the referral Task ``part_of`` or about ``focus`` (those of a Task
        the batch prefetched come from ``planning.prefetched``)."""
        cache = planning.prefetched.of(self.owner)
        if part_of and isinstance(cache, ObligationCache) and part_of in cache.by_task:
            return cache.by_task[part_of]
        # no _profile criterion: the reference is selective, and _profile makes SQLite choose a slow plan
        params = [("part-of", part_of) if part_of else ("focus", focus or ""), ("status", "requested")]
        return [o for o in await self.find("Task", params) if is_obligation(o.body) and is_open(o.body)]

    async def prefetch_obligations(self, references: Collection[str]) -> ObligationCache:
        """The open obligations of every referral Task in ``references`` (``Type/id``; others are ignored),
        read with one search. Empty when that search would return more than it may at once."""
        tasks = sorted({r for r in references if r.startswith("Task/") and r.count("/") == 1})
        cache = ObligationCache()
        if not tasks:
            return cache
        cache.referrals = await self._referrals_of(tasks)
        limit = LOOKUP_LIMIT * len(tasks)
        found = await self.planner.find("Task", [("part-of", ",".join(tasks)), ("status", "requested")],
                                        limit=limit + 1)
        if len(found) > limit:
            return cache
        cache.by_task = {task: [] for task in tasks}
        for stored in found:
            body = body_of(stored)
            if body is None or not is_obligation(body) or not is_open(body):
                continue
            for part in {reference_of(p) for p in body.get("partOf", ())}:
                held = cache.by_task.get(part or "")
                if held is not None and len(held) < LOOKUP_LIMIT:
                    held.append(Related(stored, body))
        return cache

    async def _referrals_of(self, tasks: list[str]) -> dict[str, dict[str, Any]]:
        """The CLR Referrals the Tasks ``tasks`` (``Task/id``) are about, by reference: two reads for all."""
        store = self.planner.store
        focuses = {reference for stored in await store.read_many([("Task", t.partition("/")[2]) for t in tasks])
                   if (body := body_of(stored)) is not None
                   and (reference := reference_of(body.get("focus"))) is not None
                   and reference.startswith("ServiceRequest/") and reference.count("/") == 1}
        found = await store.read_many([("ServiceRequest", f.partition("/")[2]) for f in sorted(focuses)])
        return {f"ServiceRequest/{s.resource_id}": body for s in found
                if (body := body_of(s)) is not None and is_referral(body)}

    # ---- changes -----------------------------------------------------------------------------------------

    def create(self, resource: dict[str, Any]) -> Change:
        """A create of ``resource`` with a new server id (index extracted). Obligations are built by the server
        from validated parts and are not validated again; anything else is."""
        resource_type, resource_id = resource["resourceType"], new_id()
        prepared = self.planner.prepare(resource_type, resource_id, resource, trusted=is_obligation(resource))
        return self.planner.change(ChangeOp.CREATE, resource_type, resource_id, 0, prepared)

    def update(self, current: Related, resource: dict[str, Any]) -> Change:
        """An update of ``current`` to ``resource``, compare-and-swap on the version the rule looked at."""
        stored = current.stored
        prepared = self.planner.prepare(stored.resource_type, stored.resource_id, resource,
                                        trusted=is_obligation(resource) and is_obligation(current.body))
        return self.planner.change(ChangeOp.UPDATE, stored.resource_type, stored.resource_id, stored.version,
                                   prepared)
