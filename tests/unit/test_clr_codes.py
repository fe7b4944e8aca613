"""Lenient parsing of CLR code fields into canonical Codings, from the CodeSystems in profiles/."""

from __future__ import annotations

import pytest

from fhir_clr.clr.codes import CodeLists, bundled_code_lists
from fhir_clr.errors import FhirError

BASE = "http://fhir-clr.org/fhir"


@pytest.mark.parametrize("value", ["2", "2.", " 2. ", "2. Identified by the MCP", "2 identified by the mcp",
                                   "2)  Identified  BY the MCP", "identified by the MCP", "IDENTIFIED BY THE MCP",
                                   {"system": f"{BASE}/CodeSystem/referral-type", "code": "2"}, {"code": "2."},
                                   {"text": "Identified by the MCP"}, {"coding": [{"code": "2"}]}])
def test_referral_type_lenient(value: object) -> None:
    assert bundled_code_lists()["referral-type"].parse(value) == {
        "system": f"{BASE}/CodeSystem/referral-type", "version": "0.1.0", "code": "2",
        "display": "Identified by the MCP"}


@pytest.mark.parametrize(("key", "value", "code"), [
    ("referral-status", "3 Pending", "3"), ("referral-status", "referral loop closed", "5"),
    ("referral-status", "4. Outreach Initiated", "4"),
    ("loop-closure-reason", "Services Received", "services-received"),
    ("loop-closure-reason", "unable to reach member", "unable-to-reach"), ("loop-closure-reason", "OTHER", "other"),
    ("clr-services", "Recuperative Care (Medical Respite)", "recuperative-care"),
    ("ecm-population-of-focus", "1A", "1a"), ("authorization-status", "Denied", "denied"),
])
def test_other_lists(key: str, value: str, code: str) -> None:
    assert bundled_code_lists()[key].parse(value)["code"] == code


@pytest.mark.parametrize("value", ["9", "2. Self or Caretaker Referral", "", "  ", "Identified", 2, None,
                                   {"system": "urn:other", "code": "2"},
                                   {"coding": [{"system": f"{BASE}/CodeSystem/referral-type", "code": "7"}],
                                    "text": "2"}])
def test_unknown_values_name_the_value_set_not_the_value(value: object) -> None:
    with pytest.raises(FhirError) as caught:
        bundled_code_lists()["referral-type"].parse(value, "ServiceRequest.extension('referral-type')")
    error = caught.value
    assert error.status == 422 and error.issues[0].code == "code-invalid"
    assert error.issues[0].expression == "ServiceRequest.extension('referral-type')"
    assert "CLR Referral Type" in str(error) and f"{BASE}/ValueSet/referral-type" in str(error)


def test_codeable_concept_is_written_back_canonically() -> None:
    assert bundled_code_lists()["referral-status"].parse_concept({"text": "1. accepted"}) == {
        "coding": [{"system": f"{BASE}/CodeSystem/referral-status", "version": "0.1.0", "code": "1",
                    "display": "Accepted"}], "text": "Accepted"}


def test_sobering_centers_flagged_excluded() -> None:
    services = bundled_code_lists()["clr-services"]
    assert services.concepts["sobering-centers"].properties["clr-excluded"] is True
    assert not any(c.properties["clr-excluded"] for code, c in services.concepts.items() if code != "sobering-centers")


def test_replacing_a_code_system_changes_the_codes() -> None:
    lists = CodeLists([{"resourceType": "CodeSystem", "id": "referral-status", "url": "urn:plan:status",
                        "name": "PlanStatus", "version": "2", "concept": [{"code": "A", "display": "Assigned"}]}])
    assert lists["referral-status"].parse("a. assigned") == {"system": "urn:plan:status", "version": "2", "code": "A",
                                                             "display": "Assigned"}
