"""The minimum-necessary content of a Member's Notice of Action letter, taken from FHIR data: the letter
template sees a :class:`LetterFields` and nothing else (no identifiers, birth date, diagnoses or notes).

Where each field comes from: the Member's name and postal address from the Patient (for the envelope window);
the service, decision, decision date and denial reason from the CLR Referral's authorization-decision
extension (the referral is the ``focus`` of the obligation the letter is ``basedOn``, else its ``about``); the
composed notice text from the Communication's ``payload`` strings; the plan's contact and the enclosure titles
from the letters folder."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_of, extension_url
from fhir_clr.clr.deadlines import Deadlines, parse_moment
from fhir_clr.letters.folder import LettersFolder

NOT_MAILABLE_ADDRESS_USES = frozenset({"old", "billing"})
NOT_POSTAL_TYPES = frozenset({"physical"})


@dataclass(frozen=True, slots=True)
class LetterFields:
    """Everything a letter template may print."""

    letter_date: str
    member_name: str
    member_address: tuple[str, ...]
    service: str
    decision: str
    decision_date: str
    denial_reason: str | None
    notice_text: tuple[str, ...]
    plan_name: str
    plan_phone: str
    plan_hours: str
    plan_address: tuple[str, ...]
    enclosures: tuple[str, ...]


def spoken_date(day: date) -> str:
    """``December 2, 2026``."""
    return f"{day:%B} {day.day}, {day.year}"


def member_name(patient: dict[str, Any]) -> str:
    """The Member's name as addressed on a letter (official or usual name first), empty when none is recorded."""
    names = [n for n in patient.get("name", ()) if isinstance(n, dict) and n.get("use") not in ("old", "maiden")]
    names.sort(key=lambda n: {"official": 0, "usual": 1}.get(n.get("use", ""), 2))
    for name in names:
        parts = [*name.get("given", ()), name.get("family", "")]
        text = " ".join(p for p in parts if isinstance(p, str) and p) or name.get("text", "")
        if text:
            return str(text)
    return ""


def postal_address(patient: dict[str, Any]) -> tuple[str, ...]:
    """The lines of the Member's mailing address (a home or postal address first), empty when none is usable."""
    usable = [a for a in patient.get("address", ()) if isinstance(a, dict)
              and a.get("use") not in NOT_MAILABLE_ADDRESS_USES and a.get("type") not in NOT_POSTAL_TYPES
              and not (a.get("period") or {}).get("end")]
    usable.sort(key=lambda a: (a.get("type") != "postal", a.get("use") != "home"))
    for address in usable:
        lines = [line for line in address.get("line", ()) if isinstance(line, str) and line]
        city = ", ".join(p for p in (address.get("city"), address.get("state")) if isinstance(p, str) and p)
        last = " ".join(p for p in (city, address.get("postalCode")) if isinstance(p, str) and p)
        if lines and last:
            return (*lines, last)
    return ()


@dataclass(frozen=True, slots=True)
class Decision:
    """The authorization decision a letter tells of."""

    code: str
    display: str
    day: date
    denial_reason: str | None


class LetterFacts:
    """Reads the decision of a CLR Referral and builds a letter's fields."""

    def __init__(self, rules: dict[str, Any], codes: CodeLists, folder: LettersFolder) -> None:
        self.codes = codes
        self.folder = folder
        self.deadlines = Deadlines(rules)
        self._decision_url = extension_url(rules, "authorization-decision")
        self._decided = frozenset(rules["noticing"]["decided_authorization_statuses"])

    def decision(self, referral: dict[str, Any]) -> Decision | None:
        """The referral's recorded decision (one of the rules' decided statuses: approved, denied, modified), None
        when none is recorded."""
        extension = extension_of(referral, self._decision_url)
        parts = {p.get("url"): p for p in (extension or {}).get("extension", ()) if isinstance(p, dict)}
        statuses = self.codes["authorization-status"]
        code = statuses.code_of(parts.get("status", {}).get("valueCoding"))
        moment = parse_moment(parts.get("date", {}).get("valueDateTime"))
        if code is None or code not in self._decided or moment is None:
            return None
        reason = parts.get("denial-reason", {}).get("valueCodeableConcept") or {}
        reason_text = reason.get("text") or next((c.get("display") for c in reason.get("coding", ())
                                                  if isinstance(c, dict) and c.get("display")), None)
        return Decision(code, statuses.concepts[code].display, self.deadlines.local_date(moment), reason_text)

    def service(self, referral: dict[str, Any]) -> str:
        """The display name of the referral's service (ECM or a Community Support)."""
        services = self.codes["clr-services"]
        code = services.code_of(referral.get("code")) if referral.get("code") else None
        if code is not None:
            return services.concepts[code].display
        return str((referral.get("code") or {}).get("text") or "the requested service")

    def fields(self, communication: dict[str, Any], referral: dict[str, Any], patient: dict[str, Any],
               decision: Decision, day: date) -> LetterFields:
        """The fields of the letter ``communication`` asks for, printed on ``day``."""
        plan = self.folder.plan
        text = tuple(p["contentString"] for p in communication.get("payload", ())
                     if isinstance(p, dict) and isinstance(p.get("contentString"), str) and p["contentString"])
        return LetterFields(
            letter_date=spoken_date(day), member_name=member_name(patient), member_address=postal_address(patient),
            service=self.service(referral), decision=decision.display.lower(),
            decision_date=spoken_date(decision.day), denial_reason=decision.denial_reason, notice_text=text,
            plan_name=plan.name, plan_phone=plan.phone, plan_hours=plan.hours, plan_address=plan.address,
            enclosures=tuple(e.title for e in self.folder.enclosures_for(decision.code)))
