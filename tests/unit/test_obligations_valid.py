"""Every CLR Notice Obligation Task the server builds is a valid R4 resource that satisfies its CLR profile: the
write rules store them without the model validation (``ClrContext.create``/``update`` pass ``trusted``), and these
tests are what makes that safe. Each kind is built the way the server builds it, then as the server closes it
(completed by a notice or an event, cancelled) or re-dates it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from fhir_clr.clr.noticing import Noticing
from fhir_clr.clr.obligations import cancelled, completed, is_obligation, kind_of
from fhir_clr.fhirmodel.clone import clone
from fhir_clr.fhirmodel.validate import validate_resource
from tests.bundled import CODES, REFERENCE, RULES

BASE = "http://fhir-clr.org/fhir"
NOW = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
TASK = "Task/t1"
NOTICING = Noticing(RULES, CODES)


def referral(referral_type: str = "1") -> dict[str, Any]:
    """An authorized, routine CLR Referral for ECM from a clinic."""
    return {"resourceType": "ServiceRequest", "id": "r1", "status": "active", "intent": "order",
            "meta": {"profile": [f"{BASE}/StructureDefinition/clr-referral"]}, "authoredOn": "2026-02-20",
            "subject": {"reference": "Patient/p1"}, "requester": {"reference": "Organization/clinic"},
            "performer": [{"reference": "Organization/provider"}],
            "code": {"coding": [{"system": f"{BASE}/CodeSystem/clr-services", "code": "ecm"}]},
            "extension": [{"url": f"{BASE}/StructureDefinition/referral-type", "valueCoding": {"code": referral_type}},
                          {"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": [
                              {"url": "status", "valueCoding": {"code": "approved"}},
                              {"url": "date", "valueDateTime": NOW.isoformat()}]}]}


def built() -> list[dict[str, Any]]:
    """One obligation of every kind, from the builder the write rules call for it."""
    return [*NOTICING.on_referral_received(referral(), NOW), *NOTICING.on_duplicate_open(referral(), NOW),
            NOTICING.on_rtf_received("DocumentReference/f1", NOW),
            *NOTICING.on_authorization_decided(referral(), TASK, NOW),
            *NOTICING.on_decision_extended(referral(), date(2026, 3, 20), NOW),
            *NOTICING.on_loop_closed(referral(), TASK, "services-received", NOW),
            *NOTICING.on_inquiry(referral(), TASK, NOW, {"reference": "Patient/p1"}),
            *NOTICING.on_status_recorded(referral(), TASK, NOW, NOW), *NOTICING.on_pending(referral(), TASK, NOW, NOW)]


OBLIGATIONS = {kind_of(o): o for o in built()}


def redated(obligation: dict[str, Any], due: date) -> dict[str, Any]:
    """``obligation`` due on another day, as the referral rules move a routine decision's deadline."""
    moved = clone(obligation)
    moved["restriction"]["period"]["end"] = due.isoformat()
    return moved


def test_every_kind_of_obligation_is_built() -> None:
    assert set(OBLIGATIONS) == {
        "authorization-decision", "duplicate-coordination", "rtf-processing", "authorization-decision-member",
        "authorization-decision-referring-entity", "authorization-delay-member", "loop-closure-referring-entity",
        "inquiry-response", "status-update", "pending-follow-up"}


@pytest.mark.parametrize("kind", sorted(OBLIGATIONS, key=str))
@pytest.mark.parametrize("state", ["open", "re-dated", "completed by a notice", "completed by an event", "cancelled"])
def test_what_the_server_builds_passes_full_validation(kind: str, state: str) -> None:
    obligation = {**OBLIGATIONS[kind], "id": "o1"}
    written = {"open": obligation, "re-dated": redated(obligation, NOW.date().replace(day=20)),
               "completed by a notice": completed(obligation, NOW, "Communication/c1"),
               "completed by an event": completed(obligation, NOW.date()),
               "cancelled": cancelled(obligation, "The referral is no longer pending")}[state]
    assert is_obligation(written)
    assert validate_resource(written, "Task") is written
    assert REFERENCE.profiles.check(written) == []
