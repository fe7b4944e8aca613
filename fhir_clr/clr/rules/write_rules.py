"""CLR rules on the write path (an engine :class:`~fhir_clr.engine.rules.WriteRule`, handed to the engine by
:func:`fhir_clr.app.build_services`): a planned write of a CLR resource is checked and normalized, and the
workflow's side effects become extra store Changes committed atomically with it. Every resource written is
checked against the CLR profiles it claims and the CLR extensions it carries.

* A CLR Referral (ServiceRequest claiming the profile): :mod:`fhir_clr.clr.rules.referrals`.
* A referral Task (claims the CLR Referral Task profile, or claims no profile and its ``focus`` is a CLR
  Referral): :mod:`fhir_clr.clr.rules.tasks`.
* A Communication (notice or inquiry) or a DocumentReference (received file): :mod:`fhir_clr.clr.rules.messages`.

Rule failures are 422 (or 403 for the wrong party) raised before anything is committed. Extra changes are
compare-and-swap updates or creates, so a concurrent writer makes the whole write re-plan, never half-apply.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fhir_clr.clr.rules.context import (
    REFERRAL_TASK_PROFILE,
    ClrContext,
    ObligationCache,
    body_of,
    is_referral,
    reference_of,
)
from fhir_clr.clr.rules.messages import MessageEvents
from fhir_clr.clr.rules.referrals import ReferralEvents
from fhir_clr.clr.rules.tasks import ReferralTaskEvents
from fhir_clr.engine.reference import ReferenceData
from fhir_clr.engine.rules import PlanningContext
from fhir_clr.engine.writes import Plan, WritePlanner
from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.profile_check import normalize_extension_codes
from fhir_clr.fhirmodel.profiles import claimed_profiles
from fhir_clr.store.port import Change, ChangeOp


class ClrWriteRules:
    """Applies the CLR rules to planned writes of one planner (and its store): the engine's unrestricted one,
    since the rules' own lookups are the server's."""

    def __init__(self, planner: WritePlanner, reference: ReferenceData) -> None:
        self.planner = planner
        self.profiles = reference.profiles
        self.context = ClrContext(planner, reference.rules, reference.codes, owner=self)
        self.tasks = ReferralTaskEvents(self.context)
        self.referrals = ReferralEvents(self.context, self.tasks)
        self.messages = MessageEvents(self.context)

    async def apply(self, plan: Plan, context: PlanningContext) -> Plan:
        """``plan`` with its resource normalized and the CLR side effects added as extra changes; unchanged
        for resources the CLR rules do not cover. Raises the rules' 403/422 errors."""
        change = plan.change
        if change is None or change.resource is None:
            return plan
        resource = normalize_extension_codes(self.profiles, change.resource)
        return self._checked(await self._dispatch(plan, resource, context))

    async def prefetch(self, references: Collection[str]) -> ObligationCache:
        """The open obligations of the referral Tasks among ``references``, read with one search, for the batch
        of writes updating them (see :meth:`ClrContext.prefetch_obligations`)."""
        return await self.context.prefetch_obligations(references)

    def _checked(self, plan: Plan) -> Plan:
        """``plan`` after the profile check of the resource it writes (422 with every issue)."""
        assert plan.change is not None and plan.change.resource is not None
        issues = self.profiles.check(plan.change.resource)
        if issues:
            raise FhirError(422, issues[0].code, issues[0].message, expression=issues[0].expression, issues=issues)
        return plan

    async def _dispatch(self, plan: Plan, resource: dict[str, Any], context: PlanningContext) -> Plan:
        change = plan.change
        assert change is not None
        kind = change.resource_type
        if kind == "ServiceRequest" and is_referral(resource):
            previous = await self._previous(plan)
            if previous is not None and not is_referral(previous):
                previous = None
            normalized, extra = await self.referrals.decide(previous, resource, context)
            return self._replace(plan, normalized, extra)
        if kind == "Task":
            referral = await self.context.referral(reference_of(resource.get("focus")), context)
            if not self._is_referral_task(resource, referral):
                return self._replace(plan, resource, []) if resource is not change.resource else plan
            normalized, extra = await self.tasks.decide(await self._previous(plan), resource,
                                                        change.resource_id, context, referral)
            return self._replace(plan, normalized, extra)
        if kind == "Communication":
            extra = await self.messages.communication(await self._previous(plan), resource, context)
            return self._replace(plan, resource, extra)
        if kind == "DocumentReference":
            extra = await self.messages.document(await self._previous(plan), resource, context)
            return self._replace(plan, resource, extra)
        return self._replace(plan, resource, []) if resource is not change.resource else plan

    @staticmethod
    def _is_referral_task(task: dict[str, Any], referral: dict[str, Any] | None) -> bool:
        claimed = claimed_profiles(task)
        return REFERRAL_TASK_PROFILE in claimed or (not claimed and referral is not None)

    async def _previous(self, plan: Plan) -> dict[str, Any] | None:
        """The stored version an update replaces (None for a create)."""
        change = plan.change
        if change is None or change.op is not ChangeOp.UPDATE:
            return None
        replaced = plan.replaced
        if replaced is not None and replaced.version == change.expected_version:
            return body_of(replaced)
        return body_of(await self.planner.store.read(change.resource_type, change.resource_id))

    def _replace(self, plan: Plan, resource: dict[str, Any] | None, extra: list[Change]) -> Plan:
        """``plan`` storing ``resource`` instead (re-validated, index re-extracted; None or an equal resource
        keeps the planned one), plus ``extra`` changes."""
        change = plan.change
        assert change is not None
        if resource is not None and resource != change.resource:
            prepared = self.planner.prepare(change.resource_type, change.resource_id, resource)
            change = self.planner.change(change.op, change.resource_type, change.resource_id,
                                         change.expected_version, prepared, change.match_keys,
                                         change.steal_match_keys, method=change.method)
        return Plan(change, plan.status, plan.existing, extra=[*plan.extra, *extra], replaced=plan.replaced)
