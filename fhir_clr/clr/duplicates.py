"""Duplicate referrals (clr-spec §5): the same Member referred again for the same service.

- The Member already holds an active authorization for the service: the new referral is recorded with an
  authorization decision of denied, reason "already has an active authorization", and the Referring Entity
  gets a notice saying so.
- Another referral for the service is still open: both are fully tracked and both are flagged for coordination.
Services excluded from CLR are never checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_url
from fhir_clr.clr.deadlines import Deadlines


class DuplicateKind(StrEnum):
    """What kind of duplicate a new referral is."""

    NONE = "none"
    ALREADY_AUTHORIZED = "already-authorized"
    OPEN_REFERRAL = "open-referral"


@dataclass(slots=True)
class DuplicateCheck:
    """The verdict on a new referral and the existing referrals it duplicates (``ServiceRequest/id``)."""

    kind: DuplicateKind
    matches: list[str] = field(default_factory=list)


def _member_keys(referral: dict[str, Any]) -> set[tuple[str, str]]:
    """How the referral names its Member: the subject reference and/or the subject identifier."""
    subject = referral.get("subject") or {}
    keys: set[tuple[str, str]] = set()
    if isinstance(subject.get("reference"), str):
        keys.add(("reference", subject["reference"]))
    identifier = subject.get("identifier") or {}
    if isinstance(identifier.get("value"), str):
        keys.add((identifier.get("system") or "", identifier["value"]))
    return keys


class DuplicateRules:
    """Finds duplicates of a new referral among the Member's existing referrals."""

    def __init__(self, rules: dict[str, Any], codes: CodeLists) -> None:
        self.rules = rules
        self.codes = codes
        self.deadlines = Deadlines(self.rules)
        self._conf: dict[str, Any] = self.rules["duplicates"]
        self._auth_url = extension_url(self.rules, "authorization-decision")

    def _service(self, referral: dict[str, Any]) -> str | None:
        return self.codes["clr-services"].code_of(referral.get("code")) if referral.get("code") else None

    def _authorization(self, referral: dict[str, Any]) -> dict[str, Any]:
        for ext in referral.get("extension", ()):
            if isinstance(ext, dict) and ext.get("url") == self._auth_url:
                parts: dict[Any, Any] = {p.get("url"): p for p in ext.get("extension", ()) if isinstance(p, dict)}
                return parts
        return {}

    def is_authorized_on(self, referral: dict[str, Any], day: date) -> bool:
        """True when the referral carries an approved authorization whose period (if any) covers ``day``."""
        parts = self._authorization(referral)
        status = self.codes["authorization-status"].code_of(parts.get("status", {}).get("valueCoding"))
        if status not in self.rules["noticing"]["approved_authorization_statuses"]:
            return False
        period = parts.get("period", {}).get("valuePeriod", {})
        start, end = period.get("start"), period.get("end")
        return (not start or start[:10] <= day.isoformat()) and (not end or day.isoformat() <= end[:10])

    def check(self, new: dict[str, Any], existing: list[dict[str, Any]], now: datetime) -> DuplicateCheck:
        """Classify ``new`` against ``existing`` referrals (any Member; only the same Member and service count)."""
        service = self._service(new)
        services = self.codes["clr-services"]
        if service is None or services.concepts[service].properties.get("clr-excluded"):
            return DuplicateCheck(DuplicateKind.NONE)
        member = _member_keys(new)
        today = self.deadlines.local_date(now)
        open_statuses = set(self._conf["open_service_request_statuses"])
        authorized: list[str] = []
        still_open: list[str] = []
        for other in existing:
            if other.get("id") is not None and other.get("id") == new.get("id"):
                continue
            if not member & _member_keys(other) or self._service(other) != service:
                continue
            if other.get("status") not in open_statuses:
                continue
            reference = f"ServiceRequest/{other.get('id')}"
            (authorized if self.is_authorized_on(other, today) else still_open).append(reference)
        if authorized:
            return DuplicateCheck(DuplicateKind.ALREADY_AUTHORIZED, authorized)
        if still_open:
            return DuplicateCheck(DuplicateKind.OPEN_REFERRAL, still_open)
        return DuplicateCheck(DuplicateKind.NONE)

    def denial_extension(self, now: datetime) -> dict[str, Any]:
        """The authorization-decision extension recording the denial of an already-authorized duplicate."""
        return {"url": self._auth_url, "extension": [
            {"url": "status", "valueCoding": self.codes["authorization-status"].coding("denied")},
            {"url": "date", "valueDateTime": now.isoformat()},
            {"url": "denial-reason", "valueCodeableConcept": {"text": self._conf["denial_reason_text"]}},
        ]}
