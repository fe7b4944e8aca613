"""Which notices a referral event calls for (clr-spec §2) and when they are due, as CLR Notice Obligation Tasks.

Rules, all driven by the ``noticing`` section of the rules configuration and the code lists:
- a service flagged ``clr-excluded`` (Sobering Centers) gets no obligations at all;
- a referral identified by the MCP gets none (the plan is the Referring Entity);
- a self or caretaker referral: only the Member's authorization decision notice;
- any other referral: the Member's and the Referring Entity's authorization decision notices, and the
  loop-closure notice to the Referring Entity, except when the loop closed because of a denial (the denial
  notice suffices). A provider referring to its own service is still a Referring Entity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_of, extension_url
from fhir_clr.clr.deadlines import Deadlines, parse_moment


@dataclass(frozen=True, slots=True)
class ReferralFacts:
    """What noticing needs to know about a CLR Referral (ServiceRequest)."""

    reference: str | None
    referral_type: str | None
    service: str | None
    excluded: bool
    authorization_status: str | None
    decided: datetime | date | None
    subject: dict[str, Any] | None
    requester: dict[str, Any] | None
    stated_type: str | None = None
    """The Referral Type code as it came in (``referral_type`` is who referred, when the two disagree)."""

    @property
    def type_contradicted(self) -> bool:
        """True when the stated Referral Type disagrees with who referred."""
        return self.stated_type is not None and self.stated_type != self.referral_type


class Noticing:
    """Builds obligation Tasks for referral events."""

    def __init__(self, rules: dict[str, Any], codes: CodeLists) -> None:
        self.rules = rules
        self.codes = codes
        self.deadlines = Deadlines(self.rules)
        self._conf: dict[str, Any] = self.rules["noticing"]
        self._kinds = self.codes["notice-kinds"]
        self._profile = extension_url(self.rules, "clr-notice-obligation")
        self.authorization_url = extension_url(self.rules, "authorization-decision")
        """The URL of the authorization-decision extension on a CLR Referral."""

    # ---- facts -------------------------------------------------------------------------------------------

    def facts(self, referral: dict[str, Any]) -> ReferralFacts:
        """The noticing-relevant facts of a CLR Referral ServiceRequest."""
        services = self.codes["clr-services"]
        service = services.code_of(referral.get("code")) if referral.get("code") else None
        referral_type = None
        if (ext := extension_of(referral, extension_url(self.rules, "referral-type"))) is not None:
            referral_type = self.codes["referral-type"].code_of(ext.get("valueCoding"))
        status, decided = None, None
        if (ext := extension_of(referral, self.authorization_url)) is not None:
            parts = {p.get("url"): p for p in ext.get("extension", ()) if isinstance(p, dict)}
            status = self.codes["authorization-status"].code_of(parts.get("status", {}).get("valueCoding"))
            decided = parse_moment(parts.get("date", {}).get("valueDateTime"))
        excluded = bool(service and services.concepts[service].properties.get("clr-excluded"))
        reference = f"ServiceRequest/{referral['id']}" if referral.get("id") else None
        return ReferralFacts(reference, self._who_referred(referral, referral_type), service, excluded, status,
                             decided, referral.get("subject"), referral.get("requester"), referral_type)

    def _who_referred(self, referral: dict[str, Any], stated: str | None) -> str | None:
        """The Referral Type who referred calls for: a self-referral when the requester is the Member or a
        RelatedPerson (family, friend, neighbor, guardian), whatever code came in; an external referral when a
        self-referral code names a practitioner (a teacher or clinician acting professionally); otherwise the
        stated code (an Organization requester may stand for whoever referred, as on a MIF)."""
        requester = referral.get("requester")
        reference = requester.get("reference") if isinstance(requester, dict) else None
        if not isinstance(reference, str) or "/" not in reference:
            return stated
        kind = reference.split("/", 1)[0]
        self_types: list[str] = self._conf["self_referral_types"]
        external: list[str] = self._conf["external_referral_types"]
        if kind in self._conf["self_referring_requesters"]:
            return stated if stated in self_types else self_types[0]
        if stated in self_types and kind in self._conf["professional_requesters"]:
            return external[0]
        return stated

    def is_tracked(self, facts: ReferralFacts) -> bool:
        """False for services excluded from CLR (no timers, no notices)."""
        return not facts.excluded

    def _noticed(self, facts: ReferralFacts) -> bool:
        return self.is_tracked(facts) and facts.referral_type not in self._conf["mcp_identified_types"]

    def _to_referring_entity(self, facts: ReferralFacts) -> bool:
        return self._noticed(facts) and facts.referral_type not in self._conf["self_referral_types"]

    # ---- events ------------------------------------------------------------------------------------------

    def on_referral_received(self, referral: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
        """The obligation to decide the authorization request a new referral is (routine, or expedited when the
        referral's priority is one of ``expedited_priorities``); none for services excluded from CLR."""
        facts = self.facts(referral)
        if not self.is_tracked(facts):
            return []
        received = parse_moment(referral.get("authoredOn")) or now
        expedited = referral.get("priority") in self._conf["expedited_priorities"]
        if expedited and not isinstance(received, datetime):
            received = now if self.deadlines.local_date(now) == received else datetime.combine(
                received, time.min, self.deadlines.timezone)
        due = self.deadlines.authorization_decision_due(received, expedited=expedited) if expedited else \
            self.routine_decision_due(referral, received)
        return [self.obligation("authorization-decision", facts, None, received, due, None)]

    def clock(self, referral: dict[str, Any]) -> dict[str, Any]:
        """The referral's authorization-clock parts by name (``information-received``, ``extended-days``,
        ``extension-reason``): their values, empty when the plan recorded none."""
        ext = extension_of(referral, extension_url(self.rules, "authorization-clock"))
        parts = [p for p in (ext or {}).get("extension", ()) if isinstance(p, dict)]
        values: dict[Any, Any] = {p.get("url"): next((v for k, v in p.items() if k.startswith("value")), None)
                                  for p in parts}
        return values

    def routine_decision_due(self, referral: dict[str, Any], received: datetime | date | None = None,
                             *, extended: bool = True) -> date:
        """The routine decision's last day for ``referral`` (received ``received``, default its authoredOn),
        counting the information received and, unless ``extended`` is False, the extension."""
        clock = self.clock(referral)
        moment = received or parse_moment(referral.get("authoredOn"))
        assert moment is not None
        days = int(clock.get("extended-days") or 0) if extended else 0
        return self.deadlines.routine_decision_due(moment, parse_moment(clock.get("information-received")), days)

    def on_duplicate_open(self, referral: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
        """The obligation to coordinate a referral with another open one for the same Member and service: due
        with the authorization decision, since the Member's choice of provider is part of that decision."""
        facts = self.facts(referral)
        if not self.is_tracked(facts):
            return []
        received = parse_moment(referral.get("authoredOn")) or now
        return [self.obligation("duplicate-coordination", facts, None, received,
                                self.deadlines.authorization_decision_due(received), None)]

    def on_rtf_received(self, document_reference: str, received: datetime | date) -> dict[str, Any]:
        """The obligation to process (ingest and clean) a received Return Transmission File."""
        facts = ReferralFacts(document_reference, None, None, False, None, None, None, None)
        return self.obligation("rtf-processing", facts, None, received,
                               self.deadlines.rtf_processing_due(received), None)

    def on_authorization_decided(self, referral: dict[str, Any], task_reference: str | None,
                                 now: datetime) -> list[dict[str, Any]]:
        """Obligations when the plan records a decision on the referral's authorization request."""
        facts = self.facts(referral)
        if not self._noticed(facts) or facts.authorization_status not in self._conf["decided_authorization_statuses"]:
            return []
        decided = facts.decided or now
        local = self.deadlines.local_date
        # a decision recorded after the fact owes its notices from the decision, so each period starts by its end
        start = decided if local(decided) < local(now) else now
        out = [self.obligation("authorization-decision-member", facts, task_reference, start,
                               self.deadlines.member_decision_notice_due(decided), facts.subject)]
        if self._to_referring_entity(facts):
            moment = decided if isinstance(decided, datetime) else now
            out.append(self.obligation("authorization-decision-referring-entity", facts, task_reference, start,
                                       self.deadlines.referring_entity_decision_notice_due(moment), facts.requester))
        return out

    def on_decision_extended(self, referral: dict[str, Any], original_due: date, now: datetime
                             ) -> list[dict[str, Any]]:
        """The delay notice the Member is owed when the plan extends the authorization decision: due by the
        original deadline (the Member learns of the delay before it happens)."""
        facts = self.facts(referral)
        if not self._noticed(facts):
            return []
        start = now if self.deadlines.local_date(now) <= original_due else original_due
        return [self.obligation("authorization-delay-member", facts, None, start, original_due, facts.subject)]

    def on_loop_closed(self, referral: dict[str, Any], task_reference: str, closure_reason: str | None,
                       processed: datetime) -> list[dict[str, Any]]:
        """Obligations when the referral loop closes; ``processed`` is when the closing status was processed."""
        facts = self.facts(referral)
        denied = closure_reason in self.rules["workflow"]["denial_closure_reasons"] \
            or facts.authorization_status in self._conf["denied_authorization_statuses"]
        if denied or not self._to_referring_entity(facts):
            return []
        return [self.obligation("loop-closure-referring-entity", facts, task_reference, processed,
                                self.deadlines.loop_closure_notice_due(processed), facts.requester)]

    def on_inquiry(self, referral: dict[str, Any], task_reference: str | None, received: datetime,
                   inquirer: dict[str, Any] | None) -> list[dict[str, Any]]:
        """Obligation to answer a status inquiry from ``inquirer`` (a Reference to the Member or Referring Entity)."""
        facts = self.facts(referral)
        if not self.is_tracked(facts):
            return []
        return [self.obligation("inquiry-response", facts, task_reference, received,
                                self.deadlines.inquiry_response_due(received), inquirer)]

    def on_status_recorded(self, referral: dict[str, Any], task_reference: str, status_date: datetime | date,
                           now: datetime) -> list[dict[str, Any]]:
        """The obligation that follows any recorded status of an open referral: refresh it within the freshness
        period (counted from the status's own date)."""
        facts = self.facts(referral)
        if not self.is_tracked(facts):
            return []
        return [self.obligation("status-update", facts, task_reference, now,
                                self.deadlines.status_update_due(status_date), None)]

    def keeps_pending(self, status_code: str | None) -> bool:
        """True for the Referral Statuses whose duration the extended-open clock watches (Pending)."""
        return status_code in self._conf["extended_open_statuses"]

    def on_pending(self, referral: dict[str, Any], task_reference: str, since: datetime | date,
                   now: datetime) -> list[dict[str, Any]]:
        """The obligation to follow up a referral still pending after its service's threshold, counted from
        ``since`` (when it became pending)."""
        facts = self.facts(referral)
        if not self.is_tracked(facts):
            return []
        return [self.obligation("pending-follow-up", facts, task_reference, now,
                                self.deadlines.extended_open_due(since, facts.service), None)]

    # ---- the obligation resource -------------------------------------------------------------------------

    def obligation(self, kind: str, facts: ReferralFacts, task_reference: str | None, start: datetime | date,
                   due: datetime | date, recipient: dict[str, Any] | None) -> dict[str, Any]:
        """A CLR Notice Obligation Task of ``kind`` about ``facts.reference``, part of the referral Task when
        there is one, due ``due``."""
        restriction: dict[str, Any] = {"period": {"start": start.isoformat(), "end": due.isoformat()}}
        if recipient:
            restriction["recipient"] = [recipient]
        task: dict[str, Any] = {
            "resourceType": "Task",
            "meta": {"profile": [self._profile]},
            "status": "requested",
            "intent": "order",
            "code": {"coding": [self._kinds.coding(kind)]},
            "authoredOn": start.isoformat(),
            "restriction": restriction,
        }
        if task_reference:
            task["partOf"] = [{"reference": task_reference}]
        if facts.reference:
            task["focus"] = {"reference": facts.reference}
        if facts.subject:
            task["for"] = facts.subject
        return task
