"""The minimum-necessary content of a CLR notice (clr-spec §2): the only values a notice template can reach.

A template gets the fields of :class:`NoticeFields` as its variables and nothing else: the service (ECM or which
Community Support), the authorization decision with its date and, when denied, its reason, the loop closure
reason and date, the referral's current status (for an inquiry response), the referral's id and date and how to
reach the plan. Never diagnoses, SMI/SUD or child-welfare details, free-text notes, or the Member's identity in a
notice to someone else (a Member's own notice names them, as its addressee).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_of, extension_url, value_of
from fhir_clr.clr.deadlines import Deadlines, parse_moment
from fhir_clr.clr.obligations import kind_of


@dataclass(frozen=True, slots=True)
class NoticeFields:
    """Everything a notice template may show; every value is a plain string (empty when it does not apply)."""

    notice_kind: str
    notice_title: str
    recipient_name: str
    service: str
    service_code: str
    referral_id: str
    referral_date: str
    authorization_decision: str
    authorization_code: str
    decision_date: str
    denial_reason: str
    loop_closure_reason: str
    loop_closure_date: str
    referral_status: str
    plan_name: str
    plan_phone: str
    plan_email: str

    def variables(self) -> dict[str, str]:
        """The template variables (field name -> value)."""
        return asdict(self)


FIELD_NAMES = frozenset(NoticeFields.__dataclass_fields__)
"""The names a notice template may use."""


def _day(value: Any, deadlines: Deadlines) -> str:
    moment = parse_moment(value) if isinstance(value, str) else value
    if isinstance(moment, datetime):
        return deadlines.local_date(moment).isoformat()
    return moment.isoformat() if isinstance(moment, date) else ""


def _text(concept: Any) -> str:
    """A CodeableConcept's coded display (the code list's words, never a note typed with it), else its text."""
    if not isinstance(concept, dict):
        return ""
    coding = next((c for c in concept.get("coding", ()) if isinstance(c, dict) and c.get("display")), None)
    return str((coding or {}).get("display") or concept.get("text") or "")


class FieldGatherer:
    """Builds :class:`NoticeFields` from an obligation, its referral (ServiceRequest) and referral Task."""

    def __init__(self, rules: dict[str, Any], codes: CodeLists) -> None:
        self.rules = rules
        self.codes = codes
        self.deadlines = Deadlines(rules)
        self._auth_url = extension_url(rules, "authorization-decision")
        self._closure_url = extension_url(rules, "referral-loop-closure-date")
        self._contact = rules.get("notices", {}).get("plan_contact", {})

    def gather(self, obligation: dict[str, Any], referral: dict[str, Any] | None, task: dict[str, Any] | None,
               recipient_name: str) -> NoticeFields:
        """The fields of the notice ``obligation`` asks for."""
        kind = kind_of(obligation) or ""
        kinds = self.codes["notice-kinds"]
        referral = referral or {}
        services = self.codes["clr-services"]
        service_code = services.code_of(referral["code"]) if referral.get("code") else None
        service = services.concepts[service_code].display if service_code else ""
        status = decided = denial = ""
        if (ext := extension_of(referral, self._auth_url)) is not None:
            parts = {p.get("url"): p for p in ext.get("extension", ()) if isinstance(p, dict)}
            status = self.codes["authorization-status"].code_of(parts.get("status", {}).get("valueCoding")) or ""
            decided = _day(parts.get("date", {}).get("valueDateTime"), self.deadlines)
            if status in self.rules["noticing"]["denied_authorization_statuses"]:
                denial = _text(value_of(parts.get("denial-reason")))
        decision = self.codes["authorization-status"].concepts[status].display if status else ""
        task = task or {}
        closed_on = _day(value_of(extension_of(task, self._closure_url)), self.deadlines)
        closure = _text(task.get("statusReason")) if closed_on else ""
        referral_status = _text(task.get("businessStatus"))
        return NoticeFields(
            notice_kind=kind, notice_title=kinds.concepts[kind].display if kind in kinds.concepts else kind,
            recipient_name=recipient_name, service=service, service_code=service_code or "",
            referral_id=str(referral.get("id", "")), referral_date=_day(referral.get("authoredOn"), self.deadlines),
            authorization_decision=decision, authorization_code=status, decision_date=decided, denial_reason=denial,
            loop_closure_reason=closure, loop_closure_date=closed_on, referral_status=referral_status,
            plan_name=str(self._contact.get("name", "")), plan_phone=str(self._contact.get("phone", "")),
            plan_email=str(self._contact.get("email", "")))
