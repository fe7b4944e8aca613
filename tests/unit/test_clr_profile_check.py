"""The CLR StructureDefinitions enforced: cardinalities, extension slices and definitions, required bindings."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel import profile_check
from tests.bundled import REFERENCE

CHECKER = REFERENCE.profiles

BASE = "http://fhir-clr.org/fhir"
SD = f"{BASE}/StructureDefinition"


def referral() -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "meta": {"profile": [f"{SD}/clr-referral"]}, "status": "active",
            "intent": "order", "authoredOn": "2026-11-02", "subject": {"reference": "Patient/p"},
            "requester": {"reference": "Organization/o"},
            "code": {"coding": [{"system": f"{BASE}/CodeSystem/clr-services", "code": "ecm"}]},
            "extension": [{"url": f"{SD}/referral-type",
                           "valueCoding": {"system": f"{BASE}/CodeSystem/referral-type", "code": "1"}},
                          {"url": f"{SD}/authorization-decision", "extension": [
                              {"url": "status", "valueCoding": {"system": f"{BASE}/CodeSystem/authorization-status",
                                                                "code": "approved"}},
                              {"url": "date", "valueDateTime": "2026-11-05"}]}]}


def obligation() -> dict[str, Any]:
    return {"resourceType": "Task", "meta": {"profile": [f"{SD}/clr-notice-obligation"]}, "status": "requested",
            "intent": "order", "code": {"coding": [{"system": f"{BASE}/CodeSystem/notice-kinds",
                                                    "code": "inquiry-response"}]},
            "focus": {"reference": "ServiceRequest/r"}, "restriction": {"period": {"end": "2026-11-30"}}}


def paths(resource: dict[str, Any]) -> list[str | None]:
    return [issue.expression for issue in CHECKER.check(resource)]


def test_every_structure_definition_compiles() -> None:
    checker = CHECKER
    assert {"clr-referral", "clr-referral-task", "clr-notice", "clr-notice-obligation"} <= {
        url.rsplit("/", 1)[1] for url in checker.profiles}
    assert checker.extensions[f"{SD}/authorization-decision"].subs["status"][0] == 1


def test_valid_resources_pass_and_foreign_profiles_are_ignored() -> None:
    assert paths(referral()) == []
    assert paths(obligation()) == []
    foreign = {"resourceType": "Task", "meta": {"profile": ["http://example.org/StructureDefinition/x"]}}
    assert paths(foreign) == []


def test_each_violation_names_its_element() -> None:
    missing_type = referral()
    missing_type["extension"] = missing_type["extension"][1:]
    assert paths(missing_type) == [f"ServiceRequest.extension('{SD}/referral-type')"]
    twice = referral()
    twice["extension"].append(copy.deepcopy(twice["extension"][0]))
    assert paths(twice) == [f"ServiceRequest.extension('{SD}/referral-type')"]
    wrong_type = referral()
    wrong_type["extension"][0] = {"url": f"{SD}/referral-type", "valueString": "1"}
    assert paths(wrong_type) == [f"ServiceRequest.extension('{SD}/referral-type')"]
    no_status = referral()
    no_status["extension"][1]["extension"] = no_status["extension"][1]["extension"][1:]
    assert paths(no_status) == [f"ServiceRequest.extension('{SD}/authorization-decision').extension('status')"]
    outside = referral()
    outside["code"] = {"coding": [{"system": f"{BASE}/CodeSystem/clr-services", "code": "teleportation"}]}
    assert paths(outside) == ["ServiceRequest.code"]
    no_due = obligation()
    no_due["restriction"]["period"] = {"start": "2026-11-01"}
    assert paths(no_due) == ["Task.restriction.period.end"]
    unknown = {"resourceType": "Task", "meta": {"profile": [f"{SD}/clr-made-up"]}}
    assert paths(unknown) == ["Task.meta.profile"]


def test_lenient_extension_codes_become_canonical() -> None:
    body = referral()
    body["extension"][0]["valueCoding"] = {"code": "1. referred by an external entity"}
    normalized = profile_check.normalize_extension_codes(CHECKER, body)
    assert normalized["extension"][0]["valueCoding"]["system"] == f"{BASE}/CodeSystem/referral-type"
    assert body["extension"][0]["valueCoding"] == {"code": "1. referred by an external entity"}  # not mutated
    body["extension"][1]["extension"][0]["valueCoding"] = {"code": "maybe"}
    with pytest.raises(FhirError) as refused:
        profile_check.normalize_extension_codes(CHECKER, body)
    assert refused.value.issues[0].expression == (
        f"ServiceRequest.extension('{SD}/authorization-decision').extension('status')")
