"""Duplicate referrals: same Member + same service, already authorized or still open."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_clr.clr.duplicates import DuplicateKind, DuplicateRules
from tests.bundled import CODES, RULES

BASE = "http://fhir-clr.org/fhir"
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)


def referral(id_: str, service: str = "ecm", member: str = "p1", status: str = "active",
             authorization: str | None = None, period: dict[str, str] | None = None) -> dict[str, Any]:
    """A CLR Referral for Patient/``member``."""
    out: dict[str, Any] = {"resourceType": "ServiceRequest", "id": id_, "status": status, "intent": "order",
                           "subject": {"reference": f"Patient/{member}"},
                           "code": {"coding": [{"system": f"{BASE}/CodeSystem/clr-services", "code": service}]}}
    if authorization:
        parts: list[dict[str, Any]] = [{"url": "status", "valueCoding": {"code": authorization}}]
        if period:
            parts.append({"url": "period", "valuePeriod": period})
        out["extension"] = [{"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": parts}]
    return out


@pytest.fixture(scope="module")
def rules() -> DuplicateRules:
    return DuplicateRules(RULES, CODES)


def test_no_duplicate_for_other_member_service_or_closed(rules: DuplicateRules) -> None:
    existing = [referral("a", member="p2", authorization="approved"), referral("b", service="housing-deposits"),
                referral("c", status="completed", authorization="approved"), referral("d", status="revoked")]
    assert rules.check(referral("new"), existing, NOW).kind is DuplicateKind.NONE
    assert rules.check(referral("a", member="p2"), [referral("a", member="p2")], NOW).kind is DuplicateKind.NONE


def test_already_authorized_wins_over_open(rules: DuplicateRules) -> None:
    existing = [referral("open"), referral("auth", authorization="approved",
                                           period={"start": "2025-09-01", "end": "2026-08-31"})]
    check = rules.check(referral("new"), existing, NOW)
    assert check.kind is DuplicateKind.ALREADY_AUTHORIZED and check.matches == ["ServiceRequest/auth"]


def test_expired_authorization_counts_as_open(rules: DuplicateRules) -> None:
    existing = [referral("old", authorization="approved", period={"start": "2025-01-01", "end": "2026-02-28"})]
    check = rules.check(referral("new"), existing, NOW)
    assert check.kind is DuplicateKind.OPEN_REFERRAL and check.matches == ["ServiceRequest/old"]


def test_open_referral_pending_authorization(rules: DuplicateRules) -> None:
    check = rules.check(referral("new"), [referral("first", authorization="pending")], NOW)
    assert check.kind is DuplicateKind.OPEN_REFERRAL and check.matches == ["ServiceRequest/first"]


def test_member_matched_by_identifier(rules: DuplicateRules) -> None:
    by_cin = {"identifier": {"system": "urn:cin", "value": "91234567A"}}
    new, other = referral("new"), referral("other", authorization="approved")
    new["subject"], other["subject"] = by_cin, {**by_cin, "reference": "Patient/p9"}
    assert rules.check(new, [other], NOW).kind is DuplicateKind.ALREADY_AUTHORIZED


def test_sobering_centers_never_duplicates(rules: DuplicateRules) -> None:
    existing = [referral("a", service="sobering-centers", authorization="approved")]
    assert rules.check(referral("new", service="sobering-centers"), existing, NOW).kind is DuplicateKind.NONE


def test_denial_extension(rules: DuplicateRules) -> None:
    extension = rules.denial_extension(NOW)
    parts = {p["url"]: p for p in extension["extension"]}
    assert extension["url"] == f"{BASE}/StructureDefinition/authorization-decision"
    assert parts["status"]["valueCoding"]["code"] == "denied"
    assert parts["date"]["valueDateTime"] == "2026-03-02T18:00:00+00:00"
    assert "already has an active authorization" in parts["denial-reason"]["valueCodeableConcept"]["text"]
