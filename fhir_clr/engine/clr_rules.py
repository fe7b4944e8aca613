"""CLR rules on the write path: a planned write of a CLR resource is checked and normalized, and the workflow's
side effects become extra store Changes committed atomically with it.

* A Task is a CLR referral Task when it claims the CLR Referral Task profile, or claims no profile and its
  ``focus`` is a CLR Referral. :func:`fhir_clr.clr.workflow.check_task_change` checks the change for the caller
  (previous = the stored version) and the normalized Task is stored; "complete the ServiceRequest" becomes a
  compare-and-swap update of that ServiceRequest, "create an obligation" a create with a new id.
* A ServiceRequest claiming the CLR Referral profile gets its ``code`` normalized to the CLR service ValueSet.

Rule failures are 422 (or 403 for the wrong party) raised before anything is committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from fhir_clr.clr.codes import default_code_lists
from fhir_clr.clr.config import default_rules, extension_url
from fhir_clr.clr.workflow import Caller, CompleteServiceRequest, SideEffect, check_task_change
from fhir_clr.engine.content import new_id
from fhir_clr.engine.writes import Plan, WritePlanner
from fhir_clr.errors import FhirError
from fhir_clr.store.port import Change, ChangeOp, StoredResource

REFERRAL_PROFILE = extension_url(default_rules(), "clr-referral")
REFERRAL_TASK_PROFILE = extension_url(default_rules(), "clr-referral-task")


def _profiles(resource: dict[str, Any]) -> list[str]:
    meta = resource.get("meta")
    profiles = meta.get("profile") if isinstance(meta, dict) else None
    return [p.split("|")[0] for p in profiles if isinstance(p, str)] if isinstance(profiles, list) else []


def _body(stored: StoredResource | None) -> dict[str, Any] | None:
    if stored is None or stored.deleted or stored.body is None:
        return None
    return orjson.loads(stored.body)


class ClrWriteRules:
    """Applies the CLR rules to planned writes of one planner (and its store)."""

    def __init__(self, planner: WritePlanner) -> None:
        self.planner = planner

    async def apply(self, plan: Plan, caller: Caller, now: datetime) -> Plan:
        """``plan`` with its resource normalized and the CLR side effects added as extra changes; unchanged
        for resources the CLR rules do not cover. Raises the rules' 403/422 errors."""
        change = plan.change
        if change is None or change.resource is None:
            return plan
        if change.resource_type == "ServiceRequest" and REFERRAL_PROFILE in _profiles(change.resource):
            return self._replace(plan, self._normalized_referral(change.resource))
        if change.resource_type != "Task":
            return plan
        referral = await self._focus_referral(change.resource)
        if not self._is_referral_task(change.resource, referral):
            return plan
        previous = None
        if change.op is ChangeOp.UPDATE:
            previous = _body(await self.planner.store.read("Task", change.resource_id))
        decision = check_task_change(previous, change.resource, caller, now, referral)
        extra = [await self._effect_change(effect) for effect in decision.effects]
        return self._replace(plan, decision.task, extra)

    # ---- classification ----------------------------------------------------------------------------------

    @staticmethod
    def _is_referral_task(task: dict[str, Any], referral: dict[str, Any] | None) -> bool:
        profiles = _profiles(task)
        return REFERRAL_TASK_PROFILE in profiles or (not profiles and referral is not None)

    async def _focus_referral(self, task: dict[str, Any]) -> dict[str, Any] | None:
        """The Task's focus when it is a stored CLR Referral ServiceRequest, else None."""
        focus = task.get("focus")
        reference = focus.get("reference") if isinstance(focus, dict) else None
        if not isinstance(reference, str) or not reference.startswith("ServiceRequest/"):
            return None
        referral = _body(await self.planner.store.read("ServiceRequest", reference.removeprefix("ServiceRequest/")))
        return referral if referral is not None and REFERRAL_PROFILE in _profiles(referral) else None

    # ---- normalization -----------------------------------------------------------------------------------

    @staticmethod
    def _normalized_referral(referral: dict[str, Any]) -> dict[str, Any]:
        """The CLR Referral with ``code`` as the canonical CLR service coding (422 outside the ValueSet)."""
        if "code" not in referral:
            raise FhirError(422, "required", "A CLR Referral needs its service (ServiceRequest.code)",
                            expression="ServiceRequest.code")
        code = default_code_lists()["clr-services"].parse_concept(referral["code"], "ServiceRequest.code")
        return {**referral, "code": code}

    # ---- changes -----------------------------------------------------------------------------------------

    def _replace(self, plan: Plan, resource: dict[str, Any], extra: list[Change] | None = None) -> Plan:
        """``plan`` storing ``resource`` instead (re-validated, index re-extracted), plus ``extra`` changes."""
        change = plan.change
        assert change is not None
        prepared = self.planner.prepare(change.resource_type, change.resource_id, resource)
        replaced = self.planner.change(change.op, change.resource_type, change.resource_id,
                                       change.expected_version, prepared, change.match_keys,
                                       change.steal_match_keys)
        return Plan(replaced, plan.status, plan.existing, extra=[*plan.extra, *(extra or [])])

    async def _effect_change(self, effect: SideEffect) -> Change:
        if isinstance(effect, CompleteServiceRequest):
            return await self._complete(effect.reference)
        rid = new_id()
        return self.planner.change(ChangeOp.CREATE, "Task", rid, 0, self.planner.prepare("Task", rid, effect.task))

    async def _complete(self, reference: str) -> Change:
        """Set the referral ServiceRequest's status to completed, compare-and-swap on its current version."""
        resource_type, _, resource_id = reference.partition("/")
        current = await self.planner.read_live(resource_type, resource_id)
        body = _body(current) or {}
        resource = self.planner.prepare(resource_type, resource_id, {**body, "status": "completed"})
        return self.planner.change(ChangeOp.UPDATE, resource_type, resource_id, current.version, resource)
