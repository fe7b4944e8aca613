"""CLR Referral (ServiceRequest) writes: normalization, duplicates and the authorization clocks.

* A new referral is an authorization request: it owes a decision (routine or expedited) unless it arrives
  already decided, in which case it owes the decision notices its origin calls for.
* A duplicate of a referral the Member holds an active authorization for is recorded, denied with the reason
  and revoked; its decision notices follow. A duplicate of another open referral is tracked in full; both are
  flagged ``coordination-needed`` and the plan owes a coordination step.
* When the plan records a decision, the decision obligation is satisfied and the notices are owed; a denial
  revokes the referral and closes its open referral Tasks with "Authorization Denied" (no closure notice:
  the denial notice is enough).
* Who referred decides whether a referral is a self-referral (a Member or RelatedPerson requester), whatever
  Referral Type code came in; a contradiction between the two is tagged ``referral-type-mismatch``.
* Only the plan records authorization decisions, and the authorization clock: when the information reasonably
  necessary was received (the routine deadline counts 5 business days from then, never past 14 calendar days
  from the request) and the one extension (up to 14 calendar days, with its reason), which owes the Member a
  delay notice by the original deadline.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from fhir_clr.clr.config import extension_url
from fhir_clr.clr.duplicates import DuplicateCheck, DuplicateKind, DuplicateRules
from fhir_clr.clr.obligations import completed, kind_of
from fhir_clr.clr.rules.context import REFERRAL_PROFILE, ClrContext, Related, reference_of
from fhir_clr.clr.rules.tasks import ReferralTaskEvents
from fhir_clr.clr.workflow import ROLE_PLAN, TERMINAL_STATUSES
from fhir_clr.engine.rules import Caller, PlanningContext
from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.clone import clone
from fhir_clr.store.port import Change

FLAG_SYSTEM_KEY = "referral-flags"
PLAN_CALLER = Caller(None, ROLE_PLAN)
"""Changes the server makes on the plan's behalf (closing Tasks after a denial)."""


class ReferralEvents:
    """Checks CLR Referral writes and derives their extra changes."""

    def __init__(self, context: ClrContext, tasks: ReferralTaskEvents) -> None:
        self.context = context
        self.tasks = tasks
        self.duplicates = DuplicateRules(context.rules, context.codes)
        self._conf = context.rules["noticing"]
        self._flags = context.rules["duplicates"]["flags"]
        self._auth_url = context.workflow.noticing.authorization_url
        self._clock_url = extension_url(context.rules, "authorization-clock")

    async def decide(self, previous: dict[str, Any] | None, proposed: dict[str, Any], planning: PlanningContext
                     ) -> tuple[dict[str, Any], list[Change]]:
        """The normalized referral and every extra change of this write; raises 403/422."""
        referral = self._normalized(proposed)
        if previous is None:
            return await self._received(referral, planning.now)
        return await self._updated(previous, referral, planning)

    # ---- normalization -----------------------------------------------------------------------------------

    def _normalized(self, referral: dict[str, Any]) -> dict[str, Any]:
        """The referral with ``code`` as the canonical CLR service coding (422 outside the ValueSet)."""
        if "code" not in referral:
            raise FhirError(422, "required", "A CLR Referral needs its service (ServiceRequest.code)",
                            expression="ServiceRequest.code")
        code = self.context.code_list("clr-services").parse_concept(referral["code"], "ServiceRequest.code")
        return {**referral, "code": code}

    def _decision(self, referral: dict[str, Any]) -> Any:
        return next((e for e in referral.get("extension", ()) if isinstance(e, dict) and e.get("url") ==
                     self._auth_url), None)

    def _decided_status(self, referral: dict[str, Any]) -> str | None:
        status = self.context.noticing.facts(referral).authorization_status
        return status if status in self._conf["decided_authorization_statuses"] else None

    # ---- a new referral ----------------------------------------------------------------------------------

    async def _received(self, referral: dict[str, Any], now: datetime) -> tuple[dict[str, Any], list[Change]]:
        noticing = self.context.noticing
        if not noticing.is_tracked(noticing.facts(referral)):
            return referral, []
        if noticing.facts(referral).type_contradicted:  # noticing follows who referred; the plan takes a look
            referral = self._flagged(referral, self._flags["referral_type_mismatch"])
        check = await self._check_duplicates(referral, now)
        changes: list[Change] = []
        if check.kind is DuplicateKind.ALREADY_AUTHORIZED and self._decided_status(referral) is None:
            referral = self._flagged({**referral, "status": "revoked", "extension": [
                *referral.get("extension", ()), self.duplicates.denial_extension(now)]},
                self._flags["already_authorized"])
        elif check.kind is DuplicateKind.OPEN_REFERRAL:
            referral = self._flagged(referral, self._flags["open_referral"])
            changes += await self._flag_others(check.matches)
            changes += [self.context.create(o) for o in noticing.on_duplicate_open(referral, now)]
        if (status := self._decided_status(referral)) is not None:
            if status in self._conf["approved_authorization_statuses"]:
                moment = noticing.facts(referral).decided or now
                referral = self._with_default_period(referral, moment if isinstance(moment, datetime) else
                                                     datetime.combine(moment, now.timetz()))
            obligations = noticing.on_authorization_decided(referral, None, now)
        else:
            obligations = noticing.on_referral_received(referral, now)
        return referral, changes + [self.context.create(o) for o in obligations]

    async def _check_duplicates(self, referral: dict[str, Any], now: datetime) -> DuplicateCheck:
        subject = reference_of(referral.get("subject"))
        coding = referral["code"]["coding"][0]
        if subject is None:
            return DuplicateCheck(DuplicateKind.NONE)
        others = await self.context.find("ServiceRequest", [
            ("_profile", REFERRAL_PROFILE), ("subject", subject), ("code", f"{coding['system']}|{coding['code']}")])
        return self.duplicates.check(referral, [o.body for o in others], now)

    def _flagged(self, referral: dict[str, Any], flag: str) -> dict[str, Any]:
        coding = self.context.code_list(FLAG_SYSTEM_KEY).coding(flag)
        meta = clone(referral.get("meta") or {})
        tags = meta.setdefault("tag", [])
        if not any(t.get("system") == coding["system"] and t.get("code") == flag for t in tags):
            tags.append({"system": coding["system"], "code": flag, "display": coding.get("display")})
        return {**referral, "meta": meta}

    async def _flag_others(self, references: list[str]) -> list[Change]:
        changes = []
        for reference in references:
            other = await self.context.read(reference)
            if other is None:
                continue
            flagged = self._flagged(other.body, self._flags["open_referral"])
            if flagged["meta"] != other.body.get("meta"):
                changes.append(self.context.update(other, flagged))
        return changes

    # ---- an updated referral -----------------------------------------------------------------------------

    async def _updated(self, previous: dict[str, Any], referral: dict[str, Any], planning: PlanningContext
                       ) -> tuple[dict[str, Any], list[Change]]:
        now = planning.now
        if self._decision(previous) != self._decision(referral) and planning.caller.role != ROLE_PLAN:
            raise FhirError(403, "forbidden", "Only the plan records the authorization decision",
                            expression=f"ServiceRequest.extension('{self._auth_url}')")
        decided = self._decided_status(referral)
        newly_decided = decided is not None and decided != self._decided_status(previous)
        clock_changes = await self._clock_changed(previous, referral, planning, newly_decided)
        if not newly_decided:
            return referral, clock_changes
        reference = f"ServiceRequest/{referral['id']}"
        noticing = self.context.noticing
        moment = noticing.facts(referral).decided or now
        when = moment if isinstance(moment, datetime) else datetime.combine(moment, now.timetz())
        if decided in self._conf["approved_authorization_statuses"]:
            referral = self._with_default_period(referral, when)
        open_tasks = await self.context.open_referral_tasks(reference)
        task_reference = f"Task/{open_tasks[0].stored.resource_id}" if open_tasks else None
        changes = clock_changes + [self.context.create(o) for o in noticing.on_authorization_decided(
            referral, task_reference, now)]
        for obligation in await self.context.open_obligations(planning, focus=reference):
            if kind_of(obligation.body) == "authorization-decision":
                changes.append(self.context.update(obligation, completed(obligation.body, when, reference)))
        if decided in self._conf["denied_authorization_statuses"]:
            if referral.get("status") in self.context.rules["duplicates"]["open_service_request_statuses"]:
                referral = {**referral, "status": "revoked"}
            for task in open_tasks:
                changes += await self._close_denied(task, referral, when, planning)
        return referral, changes

    async def _clock_changed(self, previous: dict[str, Any], referral: dict[str, Any], planning: PlanningContext,
                             deciding: bool) -> list[Change]:
        """Checks a change of the authorization clock and moves the open decision obligation's deadline (a
        first extension also owes the Member a delay notice); nothing when the clock did not change."""
        noticing = self.context.noticing
        before, after = noticing.clock(previous), noticing.clock(referral)
        if before == after:
            return []
        where = f"ServiceRequest.extension('{self._clock_url}')"
        if planning.caller.role != ROLE_PLAN:
            raise FhirError(403, "forbidden", "Only the plan records the authorization clock", expression=where)
        if self._decided_status(previous) is not None:
            raise FhirError(422, "business-rule", "The authorization decision is recorded; its clock can no longer "
                            "change", expression=where)
        extension = (after.get("extended-days"), after.get("extension-reason"))
        if before.get("extended-days") is not None and extension != (before.get("extended-days"),
                                                                     before.get("extension-reason")):
            raise FhirError(422, "business-rule", "The authorization decision may be extended only once",
                            expression=f"{where}.extension('extended-days')")
        limit = noticing.deadlines.extension_calendar_days
        if extension[0] is not None and not 1 <= int(extension[0]) <= limit:
            raise FhirError(422, "business-rule", f"An extension adds at most {limit} calendar days",
                            expression=f"{where}.extension('extended-days')")
        if (extension[0] is None) != (not str(extension[1] or "").strip()):
            raise FhirError(422, "required", "An extension records both its days and its reason",
                            expression=f"{where}.extension('extension-reason')")
        if deciding or referral.get("priority") in self._conf["expedited_priorities"]:
            return []  # the decision completes the obligation; an expedited clock counts hours, not this
        reference = f"ServiceRequest/{referral['id']}"
        due = noticing.routine_decision_due(referral).isoformat()
        changes = []
        for obligation in await self.context.open_obligations(planning, focus=reference):
            if kind_of(obligation.body) == "authorization-decision":
                moved = clone(obligation.body)
                moved["restriction"]["period"]["end"] = due
                changes.append(self.context.update(obligation, moved))
        if extension[0] is not None and before.get("extended-days") is None:
            original = noticing.routine_decision_due(referral, extended=False)
            changes += [self.context.create(o) for o in noticing.on_decision_extended(referral, original,
                                                                                      planning.now)]
        return changes

    def _with_default_period(self, referral: dict[str, Any], start: datetime) -> dict[str, Any]:
        """An approval recorded without a period gets the service's configured authorization length (ECM: 12
        months) from the decision date; other services keep what the plan sent."""
        extension = self._decision(referral)
        if extension is None or any(p.get("url") == "period" for p in extension.get("extension", ())):
            return referral
        deadlines = self.context.noticing.deadlines
        end = deadlines.authorization_period_end(start, self.context.noticing.facts(referral).service)
        if end is None:
            return referral
        period = {"url": "period", "valuePeriod": {"start": deadlines.local_date(start).isoformat(),
                                                   "end": end.isoformat()}}
        completed_extension = {**extension, "extension": [*extension["extension"], period]}
        return {**referral, "extension": [completed_extension if e is extension else e
                                          for e in referral["extension"]]}

    async def _close_denied(self, task: Related, referral: dict[str, Any], when: datetime,
                            planning: PlanningContext) -> list[Change]:
        """The changes closing an open referral Task because its authorization was denied."""
        if task.body.get("status") in TERMINAL_STATUSES:
            return []
        reason = self.context.rules["workflow"]["denial_closure_reasons"][0]
        closing = self.context.workflow.closing(task.body, reason, when)
        closed, extra = await self.tasks.decide(task.body, closing, task.stored.resource_id,
                                                replace(planning, caller=PLAN_CALLER), referral)
        return [self.context.update(task, closed), *extra]
