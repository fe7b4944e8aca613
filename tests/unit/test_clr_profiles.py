"""The CLR conformance resources in profiles/: valid R4, consistent canonicals, search parameters that the
registry loads and that extract the CLR fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhir_clr.fhirmodel.validate import validate_resource
from fhir_clr.search.registry import SearchParamRegistry

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
BASE = "http://fhir-clr.org/fhir"
RESOURCE_FILES = sorted(p for p in PROFILES.glob("*.json") if p.name != "package.json" and not p.name.startswith("."))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", RESOURCE_FILES, ids=lambda p: p.name)
def test_every_profiles_file_is_valid_r4(path: Path) -> None:
    data = _load(path)
    if data["resourceType"] == "Bundle":
        validate_resource(data, for_storage=False)
        for entry in data["entry"]:
            validate_resource(entry["resource"])
    else:
        validate_resource(data)


@pytest.mark.parametrize("path", [p for p in RESOURCE_FILES if not p.name.startswith("search-parameters-")],
                         ids=lambda p: p.name)
def test_clr_resources_are_versioned_under_our_canonical(path: Path) -> None:
    data = _load(path)
    assert data["url"] == f"{BASE}/{data['resourceType']}/{data['id']}"
    assert data["version"] == "0.1.0"
    assert path.name == f"{data['resourceType']}-{data['id']}.json"
    if data["resourceType"] == "CodeSystem":
        assert data["content"] == "complete" and data["count"] == len(data["concept"])
        assert _load(PROFILES / f"ValueSet-{data['id']}.json")["compose"]["include"][0]["system"] == data["url"]


def test_package_manifest_and_index() -> None:
    package = _load(PROFILES / "package.json")
    assert package["name"] == "fhir-clr.r4" and package["fhirVersions"] == ["4.0.1"]
    assert package["dependencies"] == {"hl7.fhir.r4.core": "4.0.1", "hl7.fhir.us.sdoh-clinicalcare": "2.3.0"}
    index = _load(PROFILES / ".index.json")
    listed = {entry["filename"] for entry in index["files"]}
    assert listed == {p.name for p in RESOURCE_FILES if not p.name.startswith("search-parameters-")}


def test_referral_task_derives_from_sdohcc() -> None:
    task = _load(PROFILES / "StructureDefinition-clr-referral-task.json")
    assert task["baseDefinition"] == ("http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
                                      "SDOHCC-TaskForReferralManagement")
    elements = {e["id"]: e for e in task["differential"]["element"]}
    assert elements["Task.businessStatus"]["min"] == 1
    assert elements["Task.businessStatus"]["binding"] == {"strength": "required",
                                                          "valueSet": f"{BASE}/ValueSet/referral-status|0.1.0"}
    assert elements["Task.extension:date-of-referral-status-update"]["min"] == 1


def test_every_bound_value_set_and_extension_profile_exists() -> None:
    urls = {_load(p)["url"] for p in RESOURCE_FILES if not p.name.startswith("search-parameters-")}
    for path in PROFILES.glob("StructureDefinition-*.json"):
        for element in _load(path)["differential"]["element"]:
            if "binding" in element:
                assert element["binding"]["valueSet"].split("|")[0] in urls, (path.name, element["id"])
            for type_ in element.get("type", ()):
                for profile in type_.get("profile", ()):
                    assert profile in urls, (path.name, element["id"])


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.from_directory(PROFILES)


def test_registry_loads_clr_search_parameters(registry: SearchParamRegistry) -> None:
    for resource_type, code in [("Task", "referral-status"), ("Task", "closure-reason"), ("Task", "status-date"),
                                ("Task", "closure-date"), ("Task", "due-date"), ("ServiceRequest", "referral-type"),
                                ("ServiceRequest", "service"), ("ServiceRequest", "authorization-status"),
                                ("ServiceRequest", "authorization-date"), ("Communication", "notice-channel")]:
        definition = registry.get(resource_type, code)
        assert definition is not None and definition.url.startswith(BASE), (resource_type, code)


def test_clr_task_search_values(registry: SearchParamRegistry) -> None:
    task = {"resourceType": "Task", "id": "t1", "status": "completed", "intent": "order",
            "businessStatus": {"coding": [{"system": f"{BASE}/CodeSystem/referral-status", "code": "5"}]},
            "statusReason": {"coding": [{"system": f"{BASE}/CodeSystem/loop-closure-reason",
                                         "code": "services-received"}]},
            "extension": [{"url": f"{BASE}/StructureDefinition/date-of-referral-status-update",
                           "valueDateTime": "2026-03-02T10:00:00-08:00"},
                          {"url": f"{BASE}/StructureDefinition/referral-loop-closure-date", "valueDate": "2026-03-02"}],
            "restriction": {"period": {"end": "2026-03-04"}}}
    entries = registry.extract(task)
    tokens = {(param, system, code) for param, system, code in entries.tokens}
    assert ("referral-status", f"{BASE}/CodeSystem/referral-status", "5") in tokens
    assert ("closure-reason", f"{BASE}/CodeSystem/loop-closure-reason", "services-received") in tokens
    dated = {param for param, _lo, _hi in entries.dates}
    assert {"status-date", "closure-date", "due-date"} <= dated


def test_clr_referral_search_values(registry: SearchParamRegistry) -> None:
    referral = {"resourceType": "ServiceRequest", "id": "r1", "status": "active", "intent": "order",
                "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": f"{BASE}/CodeSystem/clr-services", "code": "ecm"}]},
                "extension": [
                    {"url": f"{BASE}/StructureDefinition/referral-type",
                     "valueCoding": {"system": f"{BASE}/CodeSystem/referral-type", "code": "1"}},
                    {"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": [
                        {"url": "status", "valueCoding": {"system": f"{BASE}/CodeSystem/authorization-status",
                                                          "code": "approved"}},
                        {"url": "date", "valueDateTime": "2026-03-02T09:00:00-08:00"}]}]}
    entries = registry.extract(referral)
    tokens = {(param, system, code) for param, system, code in entries.tokens}
    assert ("referral-type", f"{BASE}/CodeSystem/referral-type", "1") in tokens
    assert ("service", f"{BASE}/CodeSystem/clr-services", "ecm") in tokens
    assert ("authorization-status", f"{BASE}/CodeSystem/authorization-status", "approved") in tokens
    assert "authorization-date" in {param for param, _lo, _hi in entries.dates}


@pytest.mark.parametrize("path", sorted(PROFILES.glob("StructureDefinition-*.json")), ids=lambda p: p.name)
def test_differential_follows_the_base_element_order(path: Path) -> None:
    definition = _load(path)
    elements = definition["differential"]["element"]
    assert elements[0]["path"] == definition["type"]
    order = get_fhir_model_class(definition["type"]).elements_sequence()
    top = [e["path"].split(".")[1] for e in elements[1:]]
    positions = [next(i for i, known in enumerate(order) if known == name or
                      (name.endswith("[x]") and known.startswith(name.removesuffix("[x]")))) for name in top]
    assert positions == sorted(positions), path.name
