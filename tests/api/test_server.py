"""CapabilityStatement truthfulness, $validate, probes and error shapes."""

from __future__ import annotations

import httpx

from tests.api.helpers import FHIR_JSON, issue_expressions, patient, task


def test_capability_statement_matches_what_is_served(client: httpx.Client) -> None:
    statement = client.get("/metadata").json()
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1" and statement["kind"] == "instance"
    rest = statement["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch", "history-system"}
    types = {r["type"]: r for r in rest["resource"]}
    assert {"Task", "ServiceRequest", "Patient", "Binary"} <= set(types)
    assert "SubscriptionTopic" not in types
    for resource_type, entry in types.items():
        # every advertised type really answers a search and a history request
        assert client.get(f"/{resource_type}", params={"_count": 1}).status_code == 200, resource_type
        for param in entry["searchParam"]:
            assert param["type"] in {"token", "reference", "date", "string", "number", "quantity", "uri"}
    task_params = {p["name"] for p in types["Task"]["searchParam"]}
    assert {"owner", "status", "focus", "patient", "output", "_id", "_lastUpdated"} <= task_params
    assert "supporting-info" in {p["name"] for p in types["ServiceRequest"]["searchParam"]}


def test_validate_operation(client: httpx.Client) -> None:
    ok = client.post("/Task/$validate", json=task(), headers=FHIR_JSON)
    assert ok.status_code == 200 and ok.json()["issue"][0]["severity"] == "information"
    bad = client.post("/Task/$validate", json=task(status="bogus"), headers=FHIR_JSON)
    assert bad.status_code == 200
    assert "Task.status" in issue_expressions(bad.json())
    wrapped = {"resourceType": "Parameters", "parameter": [{"name": "resource", "resource": patient()},
                                                           {"name": "mode", "valueCode": "create"}]}
    assert client.post("/Patient/$validate", json=wrapped, headers=FHIR_JSON).json()["issue"][0][
        "severity"] == "information"
    unknown_profile = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": patient()}, {"name": "profile", "valueUri": "http://example.org/nope"}]}
    assert client.post("/Patient/$validate", json=unknown_profile, headers=FHIR_JSON).status_code == 400
    # $validate never writes
    assert client.get("/Task", params={"status": "bogus"}).status_code in (200, 400)


def test_probes(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ready"}


def test_unknown_route_and_method_give_operation_outcomes(client: httpx.Client) -> None:
    unknown = client.get("/Patient/1/2/3/4")
    assert unknown.status_code == 404 and unknown.json()["resourceType"] == "OperationOutcome"
    wrong_method = client.put("/", json={}, headers=FHIR_JSON)
    assert wrong_method.status_code == 405 and wrong_method.json()["resourceType"] == "OperationOutcome"


def test_conformance_resources_are_served_and_searchable(client: httpx.Client) -> None:
    profile = client.get("/StructureDefinition/clr-referral")
    assert profile.status_code == 200 and profile.json()["url"].endswith("/StructureDefinition/clr-referral")
    found = client.get("/CodeSystem", params={"url": "http://fhir-clr.org/fhir/CodeSystem/referral-status"}).json()
    assert found["total"] == 1
    assert client.get("/SearchParameter/Task-due-date").json()["code"] == "due-date"
    assert client.get("/OperationDefinition/clr-worklist").status_code == 200
    assert client.get("/ValueSet", params={"_summary": "count"}).json()["total"] >= 10


def test_metadata_modes(client: httpx.Client) -> None:
    assert client.get("/metadata", params={"mode": "full"}).json()["resourceType"] == "CapabilityStatement"
    terminology = client.get("/metadata", params={"mode": "terminology"})
    assert terminology.status_code == 400 and terminology.json()["issue"][0]["expression"] == ["mode"]
