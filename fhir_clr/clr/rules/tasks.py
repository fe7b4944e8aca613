"""Referral Task writes: the workflow check, then the clocks a recorded status starts or stops.

Each recorded Referral Status (a new status, or the same status with a new Date of Referral Status Update)
satisfies the open "status update due" obligation and, while the referral stays open, starts the next one a
freshness period after the status's own date. Entering Pending starts the extended-open follow-up clock;
leaving it cancels that obligation. Closing the loop stops both clocks and adds the closure notice the
referral's origin calls for; a status that ends the Task (Declined: ``rejected``) stops them too, since no
further status can be recorded on it.
"""

from __future__ import annotations

from typing import Any

from fhir_clr.clr.deadlines import parse_moment
from fhir_clr.clr.obligations import cancelled, completed, kind_of
from fhir_clr.clr.rules.context import ClrContext, Related
from fhir_clr.clr.workflow import (
    TERMINAL_STATUSES,
    CompleteServiceRequest,
    CreateObligation,
    SideEffect,
    TaskDecision,
)
from fhir_clr.engine.rules import PlanningContext
from fhir_clr.store.port import Change

NO_LONGER_PENDING = "The referral is no longer pending"


class ReferralTaskEvents:
    """Checks referral Task changes and derives their extra changes."""

    def __init__(self, context: ClrContext) -> None:
        self.context = context
        self._closed = context.rules["workflow"]["closed_referral_status"]
        self._date_url = context.workflow.status_date_url

    async def decide(self, previous: dict[str, Any] | None, proposed: dict[str, Any], task_id: str,
                     planning: PlanningContext, referral: dict[str, Any] | None) -> tuple[dict[str, Any], list[Change]]:
        """The normalized Task and every extra change of this write; raises the workflow's 403/422."""
        decision = self.context.workflow.check_task_change(previous, {**proposed, "id": task_id}, planning.caller,
                                                           planning.now, referral)
        extra = [await self._effect(effect) for effect in decision.effects]
        if referral is not None:
            extra += await self._clock_changes(previous, decision, task_id, referral, planning)
        return decision.task, extra

    async def _effect(self, effect: SideEffect) -> Change:
        if isinstance(effect, CreateObligation):
            return self.context.create(effect.task)
        assert isinstance(effect, CompleteServiceRequest)
        current = await self.context.read(effect.reference)
        if current is None:
            raise LookupError(f"{effect.reference} vanished while its referral Task was being closed")
        return self.context.update(current, {**current.body, "status": "completed"})

    def _status_date(self, task: dict[str, Any] | None) -> Any:
        return next((e.get("valueDateTime") for e in (task or {}).get("extension", ())
                     if isinstance(e, dict) and e.get("url") == self._date_url), None)

    async def _clock_changes(self, previous: dict[str, Any] | None, decision: TaskDecision, task_id: str,
                             referral: dict[str, Any], planning: PlanningContext) -> list[Change]:
        now = planning.now
        task = decision.task
        status_date = self._status_date(task)
        if previous is not None and not decision.status_changed and status_date == self._status_date(previous):
            return []
        noticing = self.context.noticing
        code = task["businessStatus"]["coding"][0]["code"]
        recorded = parse_moment(status_date) or now
        reference = f"Task/{task_id}"
        changes: list[Change] = []
        pending_open = False
        owed = await self.context.open_obligations(planning, part_of=reference) if previous is not None else []
        for obligation in owed:
            kind = kind_of(obligation.body)
            if kind == "status-update":
                changes.append(self.context.update(obligation, completed(obligation.body, recorded, reference)))
            elif kind == "pending-follow-up":
                pending_open = self._keep_or_cancel(obligation, code, changes)
        if code == self._closed or task.get("status") in TERMINAL_STATUSES:
            return changes  # a closed loop, or a Task that can take no further status (Declined): no next clock
        changes += [self.context.create(o) for o in noticing.on_status_recorded(referral, reference, recorded, now)]
        if noticing.keeps_pending(code) and not pending_open:
            changes += [self.context.create(o) for o in noticing.on_pending(referral, reference, recorded, now)]
        return changes

    def _keep_or_cancel(self, obligation: Related, code: str, changes: list[Change]) -> bool:
        """True when the pending follow-up stays open; otherwise its cancellation joins ``changes``."""
        if self.context.noticing.keeps_pending(code):
            return True
        changes.append(self.context.update(obligation, cancelled(obligation.body, NO_LONGER_PENDING)))
        return False
