"""Which notices each referral origin gets, and their due dates, as CLR Notice Obligation Tasks."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from fhir_clr.clr.noticing import Noticing
from fhir_clr.fhirmodel.validate import validate_resource
from tests.bundled import CODES, RULES

BASE = "http://fhir-clr.org/fhir"
DECIDED = datetime(2025, 11, 26, 20, 0, tzinfo=UTC)  # Wednesday before Thanksgiving, 12:00 in California
PROCESSED = datetime(2025, 12, 24, 17, 0, tzinfo=UTC)  # Christmas Eve, 09:00 in California
TASK = "Task/t1"


def referral(referral_type: str, service: str = "ecm", authorization: str | None = "approved",
             requester: str = "Organization/clinic") -> dict[str, Any]:
    """A CLR Referral ServiceRequest."""
    extensions: list[dict[str, Any]] = [{"url": f"{BASE}/StructureDefinition/referral-type",
                                         "valueCoding": {"code": referral_type}}]
    if authorization:
        extensions.append({"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": [
            {"url": "status", "valueCoding": {"code": authorization}},
            {"url": "date", "valueDateTime": DECIDED.isoformat()}]})
    return {"resourceType": "ServiceRequest", "id": "r1", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/p1"}, "requester": {"reference": requester},
            "performer": [{"reference": "Organization/provider"}],
            "code": {"coding": [{"system": f"{BASE}/CodeSystem/clr-services", "code": service}]},
            "extension": extensions}


@pytest.fixture(scope="module")
def noticing() -> Noticing:
    return Noticing(RULES, CODES)


def summary(obligations: list[dict[str, Any]]) -> list[tuple[str, str, str | None]]:
    return [(o["code"]["coding"][0]["code"], o["restriction"]["period"]["end"],
             o["restriction"].get("recipient", [{}])[0].get("reference")) for o in obligations]


def test_external_referral_decision_notices(noticing: Noticing) -> None:
    obligations = noticing.on_authorization_decided(referral("1"), TASK, DECIDED)
    assert summary(obligations) == [
        ("authorization-decision-member", "2025-12-02", "Patient/p1"),  # Thanksgiving + day after skipped
        ("authorization-decision-referring-entity", "2025-11-27T20:00:00+00:00", "Organization/clinic")]
    for obligation in obligations:
        validate_resource(obligation)
        assert obligation["partOf"] == [{"reference": TASK}]
        assert obligation["focus"] == {"reference": "ServiceRequest/r1"}
        assert obligation["meta"]["profile"] == [f"{BASE}/StructureDefinition/clr-notice-obligation"]


def test_self_referral_member_only(noticing: Noticing) -> None:
    assert [s[0] for s in summary(noticing.on_authorization_decided(referral("3"), TASK, DECIDED))] == [
        "authorization-decision-member"]
    assert noticing.on_loop_closed(referral("3"), TASK, "services-received", PROCESSED) == []


def test_mcp_identified_no_notices(noticing: Noticing) -> None:
    assert noticing.on_authorization_decided(referral("2"), TASK, DECIDED) == []
    assert noticing.on_loop_closed(referral("2"), TASK, "services-received", PROCESSED) == []


def test_sobering_centers_get_nothing(noticing: Noticing) -> None:
    sobering = referral("1", "sobering-centers")
    assert noticing.on_authorization_decided(sobering, TASK, DECIDED) == []
    assert noticing.on_loop_closed(sobering, TASK, "services-received", PROCESSED) == []
    assert noticing.on_inquiry(sobering, TASK, PROCESSED, {"reference": "Patient/p1"}) == []
    assert noticing.on_status_recorded(sobering, TASK, PROCESSED, PROCESSED) == []
    assert noticing.on_pending(sobering, TASK, PROCESSED, PROCESSED) == []
    assert noticing.on_duplicate_open(sobering, PROCESSED) == []


def test_loop_closure_notice_due_two_business_days_after_processing(noticing: Noticing) -> None:
    assert summary(noticing.on_loop_closed(referral("1"), TASK, "services-received", PROCESSED)) == [
        ("loop-closure-referring-entity", "2025-12-29", "Organization/clinic")]


def test_cs_provider_referring_to_its_own_service_still_gets_closure_notice(noticing: Noticing) -> None:
    own = referral("1", "housing-deposits", requester="Organization/provider")
    assert summary(noticing.on_loop_closed(own, TASK, "member-declined", PROCESSED)) == [
        ("loop-closure-referring-entity", "2025-12-29", "Organization/provider")]


def test_denial_closed_loop_needs_no_closure_notice(noticing: Noticing) -> None:
    assert noticing.on_loop_closed(referral("1"), TASK, "authorization-denied", PROCESSED) == []
    assert noticing.on_loop_closed(referral("1", authorization="denied"), TASK, "other", PROCESSED) == []
    denied = noticing.on_authorization_decided(referral("1", authorization="denied"), TASK, DECIDED)
    assert [s[0] for s in summary(denied)] == ["authorization-decision-member",
                                                "authorization-decision-referring-entity"]


def test_undecided_authorization_has_no_decision_notices(noticing: Noticing) -> None:
    assert noticing.on_authorization_decided(referral("1", authorization="pending"), TASK, DECIDED) == []
    assert noticing.on_authorization_decided(referral("1", authorization=None), TASK, DECIDED) == []


def test_inquiry_and_status_clocks(noticing: Noticing) -> None:
    inquiry = noticing.on_inquiry(referral("3"), TASK, datetime(2026, 3, 30, 20, 0, tzinfo=UTC),
                                  {"reference": "Patient/p1"})
    assert summary(inquiry) == [("inquiry-response", "2026-04-01", "Patient/p1")]  # Cesar Chavez Day skipped
    since = datetime(2026, 1, 31, 18, 0, tzinfo=UTC)
    clocks = noticing.on_status_recorded(referral("2"), TASK, since, PROCESSED) + noticing.on_pending(
        referral("2"), TASK, since, PROCESSED)
    assert [(s[0], s[1]) for s in summary(clocks)] == [("status-update", "2026-02-28"),
                                                        ("pending-follow-up", "2026-03-02")]
    assert noticing.keeps_pending("3") and not noticing.keeps_pending("1")


def test_referral_received_owes_the_authorization_decision(noticing: Noticing) -> None:
    received = referral("1", authorization=None)
    received["authoredOn"] = "2025-11-21"  # Friday: 5 business days skip Thanksgiving and the day after
    obligations = noticing.on_referral_received(received, PROCESSED)
    assert summary(obligations) == [("authorization-decision", "2025-12-02", None)]
    assert "partOf" not in obligations[0] and obligations[0]["focus"] == {"reference": "ServiceRequest/r1"}
    validate_resource(obligations[0])
    expedited = {**received, "priority": "urgent", "authoredOn": "2025-11-21T10:00:00-08:00"}
    assert summary(noticing.on_referral_received(expedited, PROCESSED)) == [
        ("authorization-decision", "2025-11-24T10:00:00-08:00", None)]
    assert noticing.on_referral_received(referral("1", "sobering-centers"), PROCESSED) == []


def test_rtf_received_owes_processing_in_five_business_days(noticing: Noticing) -> None:
    obligation = noticing.on_rtf_received("DocumentReference/f1", datetime(2025, 11, 26, 18, 0, tzinfo=UTC))
    assert summary([obligation]) == [("rtf-processing", "2025-12-05", None)]
    assert obligation["focus"] == {"reference": "DocumentReference/f1"} and "for" not in obligation
