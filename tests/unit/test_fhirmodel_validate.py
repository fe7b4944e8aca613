"""The R4 validation gate: valid resources pass unchanged; every failure class gives status 400, the right
issue code and element path, all problems together, and no echo of non-code values."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.validate import is_valid_id, validate_id, validate_resource
from tools.perf_search_extract import REFERRAL_TASK


def task(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "status": "requested", "intent": "order", **extra}


def patient(**extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "name": [{"family": "Garcia", "given": ["Ana"]}], **extra}


def failure(data: object, expected_type: str | None = None, **kwargs: Any) -> FhirError:
    with pytest.raises(FhirError) as caught:
        validate_resource(data, expected_type, **kwargs)
    assert caught.value.status == 400
    return caught.value


def issues(error: FhirError) -> set[tuple[str, str | None]]:
    return {(issue.code, issue.expression) for issue in error.issues}


def all_text(error: FhirError) -> str:
    return " ".join(issue.message for issue in error.issues)


SERVICE_REQUEST = {
    "resourceType": "ServiceRequest", "id": "sr-1", "status": "active", "intent": "order",
    "code": {"coding": [{"system": "urn:example:clr:service", "code": "ecm"}]},
    "subject": {"reference": "Patient/p1"}, "authoredOn": "2026-09-30",
    "occurrencePeriod": {"start": "2026-10-01", "end": "2026-12-31"},
    "extension": [{"url": "urn:example:clr:referral-type", "valueCode": "ecm"}],
}

BUNDLE = {
    "resourceType": "Bundle", "type": "transaction",
    "entry": [
        {"fullUrl": "urn:uuid:9d3f1b5e-0000-4000-8000-000000000001", "resource": patient(gender="female"),
         "request": {"method": "POST", "url": "Patient"}},
        {"resource": task(), "request": {"method": "PUT", "url": "Task/t1"}},
    ],
}


@pytest.mark.parametrize("resource", [REFERRAL_TASK, SERVICE_REQUEST, patient(
    id="p-1.a", gender="female", birthDate="1980-02-29", telecom=[{"system": "phone", "value": "555"}],
    name=[{"use": "official", "family": "Garcia", "given": ["Ana", None], "_given": [None, {
        "extension": [{"url": "urn:example:x", "valueString": "y"}]}]}])])
def test_valid_resources_pass_unchanged(resource: dict[str, Any]) -> None:
    before = copy.deepcopy(resource)
    assert validate_resource(resource, resource["resourceType"]) is resource
    assert resource == before


def test_valid_bundle_needs_for_storage_false() -> None:
    assert validate_resource(BUNDLE, "Bundle", for_storage=False) is BUNDLE
    assert issues(failure(BUNDLE, "Bundle")) == {("not-supported", "resourceType")}


@pytest.mark.parametrize(("body", "code"), [
    ([], "structure"), ("Task", "structure"), ({"status": "requested"}, "required"),
    ({"resourceType": 7}, "structure"), ({"resourceType": "Spaceship"}, "not-supported"),
    ({"resourceType": "SubscriptionTopic", "status": "active"}, "not-supported"),
])
def test_body_and_resource_type(body: object, code: str) -> None:
    assert failure(body).issues[0].code == code


def test_resource_type_must_match_expected() -> None:
    assert issues(failure(patient(), "Task")) == {("invalid", "resourceType")}


def test_unknown_element() -> None:
    assert issues(failure(task(favouriteColour="blue"))) == {("structure", "Task.favouriteColour")}


def test_wrong_type() -> None:
    error = failure(task(**{"for": {"reference": 12}}, description=["a"]))
    assert issues(error) == {("value", "Task.for.reference"), ("value", "Task.description")}


def test_missing_required_elements() -> None:
    error = failure({"resourceType": "Task"})
    assert issues(error) == {("required", "Task.status"), ("required", "Task.intent")}


def test_required_binding_on_code() -> None:
    error = failure(task(status="bogus"))
    assert issues(error) == {("code-invalid", "Task.status")}
    assert "'bogus'" in error.issues[0].message and "in-progress" in error.issues[0].message


def test_required_bindings_in_data_types_and_backbones() -> None:
    error = failure(patient(gender="x", name=[{"use": "nick", "family": "Garcia"}], contact=[{"gender": "y"}],
                            telecom=[{"system": "pager-ish", "value": "1"}]))
    assert issues(error) == {("code-invalid", "Patient.gender"), ("code-invalid", "Patient.name[0].use"),
                             ("code-invalid", "Patient.contact[0].gender"),
                             ("code-invalid", "Patient.telecom[0].system")}


def test_required_binding_inside_extension_value() -> None:
    error = failure(task(extension=[{"url": "urn:example:x", "valueQuantity": {"value": 1, "comparator": "=="}}]))
    assert issues(error) == {("code-invalid", "Task.extension[0].value.comparator")}


def test_required_binding_on_codeable_concept() -> None:
    good = {"resourceType": "Condition", "subject": {"reference": "Patient/p1"}, "clinicalStatus": {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]}}
    assert validate_resource(good) is good
    error = failure({**good, "clinicalStatus": {"text": "active"}})
    assert issues(error) == {("code-invalid", "Condition.clinicalStatus")}


@pytest.mark.parametrize(("extra", "path"), [
    ({"identifier": []}, "Task.identifier"),
    ({"meta": {}}, "Task.meta"),
    ({"description": ""}, "Task.description"),
    ({"description": " \t "}, "Task.description"),
    ({"note": [{"text": "   "}]}, "Task.note[0].text"),
    ({"description": None}, "Task.description"),
    ({"input": [None]}, "Task.input[0]"),
])
def test_json_rules(extra: dict[str, Any], path: str) -> None:
    assert ("structure", path) in issues(failure(task(**extra)))


@pytest.mark.parametrize("bad_id", ["a" * 65, "has_underscore", "slash/id", ""])
def test_resource_id_format(bad_id: str) -> None:
    error = failure(task(id=bad_id))
    assert error.issues[0].expression == "Task.id" and error.issues[0].code in ("value", "structure")
    assert not is_valid_id(bad_id)
    with pytest.raises(FhirError) as caught:
        validate_id(bad_id)
    assert caught.value.status == 400 and caught.value.issues[0].code == "value"
    if bad_id:
        assert bad_id not in caught.value.issues[0].message + all_text(error)


def test_legal_ids() -> None:
    assert is_valid_id("a" * 64) and is_valid_id("A-1.b")
    validate_id("abc-123")


def test_instant_without_timezone() -> None:
    error = failure(task(meta={"lastUpdated": "2026-10-02T15:04:05"}))
    assert issues(error) == {("value", "Task.meta.lastUpdated")}


def test_choice_types_are_named_without_type_suffix() -> None:
    error = failure(task(output=[{"type": {"text": "result"}, "valueReference": "Patient/1"}]))
    assert issues(error) == {("structure", "Task.output[0].value")}


def test_contained_resources_are_checked_with_their_path() -> None:
    error = failure(task(contained=[
        {"resourceType": "Patient", "id": "p1", "gender": "x", "birthDate": "1999-13-01"},
        {"resourceType": "SubscriptionTopic", "id": "t1"},
        {"resourceType": "Patient", "id": "p_2", "favouriteColour": "blue"},
    ]))
    found = issues(error)
    assert {("code-invalid", "Task.contained[0].gender"), ("value", "Task.contained[0].birthDate"),
            ("not-supported", "Task.contained[1].resourceType"), ("value", "Task.contained[2].id"),
            ("structure", "Task.contained[2].favouriteColour")} <= found


def test_bundle_entries_are_checked_with_their_path() -> None:
    bundle = copy.deepcopy(BUNDLE)
    bundle["entry"][1]["resource"]["status"] = "bogus"
    bundle["entry"][1]["request"]["method"] = "FETCH"
    del bundle["entry"][0]["resource"]["name"][0]["family"]
    bundle["entry"][0]["resource"]["name"][0]["given"] = []
    error = failure(bundle, for_storage=False)
    assert issues(error) == {("code-invalid", "Bundle.entry[1].resource.status"),
                             ("code-invalid", "Bundle.entry[1].request.method"),
                             ("structure", "Bundle.entry[0].resource.name[0].given")}


def test_nested_resource_without_usable_type_is_reported_not_crashed() -> None:
    for bad in ({"resourceType": 5}, {"id": "x"}, {"resourceType": "MedicinalProduct"}):
        error = failure(task(contained=[bad]))
        assert error.issues[0].expression == "Task.contained[0].resourceType"


def test_several_problems_are_reported_together_in_check_order() -> None:
    error = failure(task(status="bogus", identifier=[], authoredOn="2026-13-01", foo=1))
    codes = [issue.code for issue in error.issues]
    assert codes == ["structure", "value", "structure", "code-invalid"]
    assert error.issues[0].code == error.outcome()["issue"][0]["code"]
    assert len(error.outcome()["issue"]) == 4


def test_one_issue_per_element() -> None:
    error = failure(task(id="x" * 70, status=" "))
    assert issues(error) == {("value", "Task.id"), ("structure", "Task.status")}


@pytest.mark.parametrize("extra", [
    {"birthDate": "Ana-Garcia-1980"}, {"birthDate": "1980-02-30"}, {"deceasedDateTime": "Ana Garcia"},
    {"multipleBirthInteger": "Ana Garcia"}, {"name": [{"family": 123456789}]}, {"name": "Ana Garcia"},
    {"address": [{"line": ["12 Secret Street", 987654]}]},
])
def test_messages_do_not_echo_values(extra: dict[str, Any]) -> None:
    error = failure(patient(**extra))
    text = all_text(error) + str(error.outcome())
    for value in ("Ana", "Garcia", "1980", "123456789", "Secret", "987654"):
        assert value not in text
