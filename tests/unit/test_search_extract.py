"""Index extraction: every data type, choice elements, resolve() filtering, unions and the fhirpathpy
fallback, through the registry as the engine uses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fhir_clr.fhirmodel.allowlist import R4_RESOURCE_TYPES
from fhir_clr.search import extract
from fhir_clr.search.extract import compile_extractor
from fhir_clr.search.paths import compile_fast, split_union
from fhir_clr.search.registry import COLUMN_PARAMS, SearchParamRegistry
from fhir_clr.search.values import MAX_US, MIN_US, parse_date_range
from fhir_clr.store.query import IndexEntries

BASE = "https://clr.example.org/fhir"
PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def sp(code: str, base: str, param_type: str, expression: str, **extra: Any) -> dict[str, Any]:
    """A minimal SearchParameter resource."""
    return {"resourceType": "SearchParameter", "url": f"urn:test:sp:{base}-{code}", "name": code, "status": "active",
            "description": "test", "code": code, "base": [base], "type": param_type, "expression": expression,
            **extra}


SAMPLE_TASK: dict[str, Any] = {
    "resourceType": "Task", "id": "t1",
    "meta": {"profile": ["http://example.org/StructureDefinition/p|1.0"],
             "tag": [{"system": "urn:tag", "code": "x"}], "security": [{"system": "urn:sec", "code": "R"}],
             "source": "urn:source:1"},
    "identifier": [{"system": "urn:ids", "value": "A-1"}], "status": "requested", "intent": "order",
    "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
    "focus": {"reference": "ServiceRequest/sr1"}, "for": {"reference": "Patient/p1"},
    "authoredOn": "2026-10-01", "owner": {"reference": f"{BASE}/Organization/o1"},
    "requester": {"reference": "https://elsewhere.example.com/fhir/Organization/x"},
    "executionPeriod": {"start": "2026-10-01T10:00:00Z"},
    "output": [{"type": {"text": "t"}, "valueReference": {"reference": "Procedure/pr1"}},
               {"type": {"text": "t"}, "valueString": "not a reference"}],
}


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.from_directory(PROFILES, base_urls=[BASE])


def test_task_referral_extraction(registry: SearchParamRegistry) -> None:
    entries = registry.extract(SAMPLE_TASK)
    assert ("status", None, "requested") in entries.tokens
    assert ("identifier", "urn:ids", "A-1") in entries.tokens
    assert ("code", "http://hl7.org/fhir/CodeSystem/task-code", "fulfill") in entries.tokens
    assert ("_tag", "urn:tag", "x") in entries.tokens and ("_security", "urn:sec", "R") in entries.tokens
    refs = set(entries.references)
    assert {("focus", "ServiceRequest/sr1"), ("patient", "Patient/p1"), ("subject", "Patient/p1"),
            ("owner", "Organization/o1"), ("output", "Procedure/pr1"),
            ("requester", "https://elsewhere.example.com/fhir/Organization/x")} <= refs
    assert [r for r in refs if r[0] == "output"] == [("output", "Procedure/pr1")]
    assert ("authored-on", *parse_date_range("2026-10-01")) in entries.dates
    assert ("period", parse_date_range("2026-10-01T10:00:00Z")[0], MAX_US) in entries.dates
    assert ("_profile", "http://example.org/StructureDefinition/p") in entries.uris
    assert ("_source", "urn:source:1") in entries.uris
    assert not {p for p, *_ in entries.tokens} & {"_id", "_lastUpdated"}
    assert "_lastUpdated" not in entries.params()


def test_skipping_parameters_whose_elements_are_absent_changes_nothing(registry: SearchParamRegistry) -> None:
    """Extraction skips a parameter when the resource has none of the top-level elements it reads; the entries
    equal those of running every parameter, for the full sample and with each element removed in turn."""
    def every_parameter(resource: dict[str, Any]) -> IndexEntries:
        entries = IndexEntries()
        writer = extract.IndexWriter([BASE])
        for code, definition in registry.for_type("Task").items():
            if code not in COLUMN_PARAMS:
                writer.add(entries, definition.type, code, definition.extractor(resource))
        return entries

    assert registry.get("Task", "owner") is not None and registry.get("Task", "owner").roots == ("owner",)
    for dropped in [None, *(key for key in SAMPLE_TASK if key != "resourceType")]:
        resource = {k: v for k, v in SAMPLE_TASK.items() if k != dropped}
        assert registry.extract(resource) == every_parameter(resource), dropped


def test_choice_elements(registry: SearchParamRegistry) -> None:
    for value, expected in [
        ({"occurrenceDateTime": "2026-01-05"}, parse_date_range("2026-01-05")),
        ({"occurrencePeriod": {"end": "2026-02"}}, (MIN_US, parse_date_range("2026-02")[1])),
        ({"occurrenceTiming": {"event": ["2026-03-01"]}}, parse_date_range("2026-03-01")),
    ]:
        entries = registry.extract({"resourceType": "ServiceRequest", "status": "active", "intent": "order", **value})
        assert entries.dates == [("occurrence", *expected)]


def test_resolve_filters_by_reference_type(registry: SearchParamRegistry) -> None:
    for target, patient in [("Patient/p1", True), ("Group/g1", False), (f"{BASE}/Patient/p2", True),
                            ("#contained", False)]:
        entries = registry.extract({"resourceType": "Task", "for": {"reference": target}})
        assert any(p == "patient" for p, _ in entries.references) is patient, target
    typed = registry.extract({"resourceType": "Task", "for": {"type": "Patient", "identifier": {"value": "1"}}})
    assert ("patient:identifier", None, "1") in typed.tokens


def test_reference_identifier_and_canonical(registry: SearchParamRegistry) -> None:
    entries = registry.extract({
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "performer": [{"identifier": {"system": "urn:npi", "value": "123"}}],
        "instantiatesCanonical": ["http://example.org/PlanDefinition/pd|2.0"],
        "subject": {"reference": "Patient/p1/_history/4"},
    })
    assert ("performer:identifier", "urn:npi", "123") in entries.tokens
    assert ("instantiates-canonical", "http://example.org/PlanDefinition/pd") in entries.references
    assert ("subject", "Patient/p1") in entries.references


def test_strings_names_addresses_contact_points(registry: SearchParamRegistry) -> None:
    patient = {
        "resourceType": "Patient", "active": True, "gender": "female", "birthDate": "1980-05",
        "name": [{"family": "García", "given": ["Ana", "María"], "prefix": ["Dr."], "text": "Dr. Ana García"}],
        "address": [{"line": ["1 Main St"], "city": "Oakland", "state": "CA", "postalCode": "94601"}],
        "telecom": [{"system": "email", "value": "ana@example.org"}, {"system": "phone", "value": "555-0100"}],
        "deceasedBoolean": False,
    }
    entries = registry.extract(patient)
    assert ("family", "garcia", "García") in entries.strings
    assert {("given", "ana", "Ana"), ("given", "maria", "María")} <= set(entries.strings)
    assert ("name", "dr.", "Dr.") in entries.strings and ("name", "dr. ana garcia", "Dr. Ana García") in entries.strings
    assert ("address-city", "oakland", "Oakland") in entries.strings
    assert ("address", "1 main st", "1 Main St") in entries.strings
    assert ("address-postalcode", "94601", "94601") in entries.strings
    assert ("email", None, "ana@example.org") in entries.tokens and ("phone", None, "555-0100") in entries.tokens
    assert ("telecom", None, "555-0100") in entries.tokens
    assert ("email", None, "555-0100") not in entries.tokens
    assert ("active", None, "true") in entries.tokens and ("gender", None, "female") in entries.tokens
    assert ("deceased", None, "false") in entries.tokens
    assert ("birthdate", *parse_date_range("1980-05")) in entries.dates


def test_quantity_number_and_fallback_union(registry: SearchParamRegistry) -> None:
    entries = registry.extract({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
                                "valueQuantity": {"value": 1.50, "system": "http://unitsofmeasure.org",
                                                  "code": "mg"}})
    [(lo, hi, system, code)] = [q[1:] for q in entries.quantities if q[0] == "value-quantity"]
    assert (system, code) == ("http://unitsofmeasure.org", "mg")
    assert lo == pytest.approx(1.45) and hi == pytest.approx(1.55)
    unit_only = registry.extract({"resourceType": "Observation", "valueQuantity": {"value": 3, "unit": "kg"}})
    assert ("value-quantity", 2.5, 3.5, None, "kg") in unit_only.quantities
    strings = registry.extract({"resourceType": "Observation", "valueCodeableConcept": {"text": "Food Insecure"}})
    assert ("value-string", "food insecure", "Food Insecure") in strings.strings
    group = registry.extract({"resourceType": "Group", "type": "person", "actual": True, "quantity": 12})
    assert ("actual", None, "true") in group.tokens


def test_number_params() -> None:
    registry = SearchParamRegistry([sp("score", "Basic", "number", "Basic.extension('urn:score').value")])
    entries = registry.extract({"resourceType": "Basic", "extension": [{"url": "urn:score", "valueDecimal": 100}]})
    assert entries.numbers == [("score", 99.5, 100.5)]


def test_compile_fast_shapes() -> None:
    assert compile_fast("Task.owner", "Task") is not None
    assert compile_fast("Task.for.where(resolve() is Patient)", "Task") is not None
    assert compile_fast("(Observation.value as Quantity) | (Observation.value as SampledData)", "Observation")
    assert compile_fast("Observation.value.as(Quantity)", "Observation") is not None
    assert compile_fast("Resource.meta.tag", "Task") is not None
    email = compile_fast("Patient.telecom.where(system='email')", "Patient")
    assert email is not None
    assert email({"telecom": [{"system": "phone", "value": "1"}, {"system": "email", "value": "a@b"}]}) == \
        [({"system": "email", "value": "a@b"}, "ContactPoint")]
    assert compile_fast("Patient.deceased.exists() and Patient.deceased != false", "Patient") is None
    assert compile_fast("Task.nonexistent", "Task") is None
    assert compile_fast("Patient.name", "Task") is None
    walk = compile_fast("Observation.effective.ofType(Period)", "Observation")
    assert walk is not None
    assert walk({"effectiveDateTime": "2020", "effectivePeriod": {"start": "2020"}}) == [({"start": "2020"}, "Period")]


def test_fast_path_and_fhirpathpy_agree() -> None:
    resource = {"resourceType": "Task", "for": {"reference": "Patient/1"}, "focus": {"reference": "Group/2"},
                "output": [{"valueReference": {"reference": "Procedure/3"}}],
                "extension": [{"url": "http://x/a", "valueDateTime": "2026-11-02"},
                              {"url": "http://x/b", "valueCode": "b"}, {"url": "http://x/a", "valueDateTime": "2026"}]}
    for expression in ["Task.for.where(resolve() is Patient)", "Task.output.value.ofType(Reference)",
                       "Task.focus | Task.for", "Task.extension.where(url='http://x/a').value"]:
        fast = compile_fast(expression, "Task")
        assert fast is not None
        slow = extract._fallback(expression, "Task")
        assert [v for v, _ in fast(resource)] == [v for v, _ in slow(resource)], expression


def test_extension_call_selects_every_matching_extension() -> None:
    """``extension('url')`` is ``extension.where(url='url')`` (fhirpathpy itself returns only the first match)."""
    resource = {"resourceType": "Task", "extension": [
        {"url": "http://x/a", "valueDateTime": "2026-11-02"}, {"url": "http://x/b", "valueCode": "b"},
        {"url": "http://x/a", "valueDate": "2026"}]}
    walk = compile_fast("Task.extension('http://x/a').value", "Task")
    assert walk is not None
    assert walk(resource) == [("2026-11-02", "dateTime"), ("2026", "date")]
    none = compile_fast("Task.extension('http://x/none').value", "Task")
    assert none is not None and none(resource) == []


def test_split_union_respects_parentheses_and_quotes() -> None:
    assert split_union("A.b | (A.c as X) | A.d.where(x='a|b')") == ["A.b", "(A.c as X)", "A.d.where(x='a|b')"]


def test_registry_loading_and_precedence(tmp_path: Path) -> None:
    local = sp("status", "Task", "token", "Task.businessStatus")
    core = {**sp("status", "Task", "token", "Task.status"), "url": "http://hl7.org/fhir/SearchParameter/Task-status"}
    (tmp_path / "a.json").write_text(json.dumps(local))
    (tmp_path / "b.json").write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": core}, {"resource": {"resourceType": "Patient"}}]}))
    (tmp_path / "c.json").write_text(json.dumps({"resourceType": "StructureDefinition", "url": "urn:sd"}))
    (tmp_path / "d.json").write_text("not json")
    registry = SearchParamRegistry.from_directory(tmp_path)
    definition = registry.get("Task", "status")
    assert definition is not None and definition.url == local["url"]
    assert {r["url"] for r in registry.resources()} == {local["url"]}
    assert registry.types() == {"Task"} and registry.get("Patient", "status") is None


def test_every_profile_parameter_compiles(registry: SearchParamRegistry) -> None:
    for resource_type in registry.types():
        for code, definition in registry.for_type(resource_type).items():
            assert definition.code == code and definition.expression
            assert isinstance(definition.extractor({"resourceType": resource_type}), list)
            compile_extractor(definition.expression, resource_type)  # compiles standalone too


def test_every_served_type_has_its_base_parameters(registry: SearchParamRegistry) -> None:
    bundle = json.loads((PROFILES / "search-parameters-r4.json").read_text(encoding="utf-8"))
    expected: dict[str, set[str]] = {t: {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"}
                                     for t in R4_RESOURCE_TYPES}
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert resource["type"] not in ("composite", "special")
        for base in resource["base"]:
            if base in R4_RESOURCE_TYPES:
                expected[base].add(resource["code"])
    for resource_type, codes in expected.items():
        assert codes <= set(registry.for_type(resource_type)), resource_type
    assert {"owner", "requester", "status", "focus", "patient", "code", "output"} <= set(registry.for_type("Task"))
    assert "supporting-info" in registry.for_type("ServiceRequest")
    assert registry.get("Task", "output").url.startswith("http://hl7.org/fhir/us/sdoh-clinicalcare/")


def test_created_by_tag_is_indexed_for_every_type(registry: SearchParamRegistry) -> None:
    """The access policy finds what a provider created through ``_tag`` (``docs/security.md``)."""
    from fhir_clr.engine.access import CREATED_BY_SYSTEM

    tag = {"meta": {"tag": [{"system": CREATED_BY_SYSTEM, "code": "Organization/a"}]}}
    for body in ({"resourceType": "Patient", **tag}, {"resourceType": "Condition", **tag},
                 {"resourceType": "Task", "status": "requested", "intent": "order", **tag}):
        index = registry.extract(body)
        assert ("_tag", CREATED_BY_SYSTEM, "Organization/a") in index.tokens, body["resourceType"]
