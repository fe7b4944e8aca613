"""Batch and transaction Bundles over HTTP."""

from __future__ import annotations

import httpx

from tests.api.helpers import FHIR_JSON, issue_expressions, organization, patient, task, unique


def entry(resource: dict, method: str = "POST", url: str | None = None, full_url: str | None = None,
          **request: str) -> dict:
    out = {"resource": resource, "request": {"method": method, "url": url or resource["resourceType"], **request}}
    if full_url:
        out["fullUrl"] = full_url
    return out


def bundle(kind: str, *entries: dict) -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": list(entries)}


def test_transaction_resolves_urn_uuid_references(client: httpx.Client) -> None:
    family = unique("Tx")
    body = bundle(
        "transaction",
        entry(task("urn:uuid:11111111-1111-1111-1111-111111111111",
                   **{"for": {"reference": "urn:uuid:22222222-2222-2222-2222-222222222222"}})),
        entry(organization("Tx Org"), full_url="urn:uuid:11111111-1111-1111-1111-111111111111"),
        entry(patient(family), full_url="urn:uuid:22222222-2222-2222-2222-222222222222"),
    )
    response = client.post("/", json=body, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response"
    statuses = [e["response"]["status"] for e in result["entry"]]
    assert statuses == ["201 Created"] * 3
    task_location = result["entry"][0]["response"]["location"]
    stored_task = client.get("/" + task_location.split("/_history")[0]).json()
    org_id = result["entry"][1]["response"]["location"].split("/")[1]
    patient_id = result["entry"][2]["response"]["location"].split("/")[1]
    assert stored_task["owner"]["reference"] == f"Organization/{org_id}"
    assert stored_task["for"]["reference"] == f"Patient/{patient_id}"


def test_transaction_is_all_or_nothing(client: httpx.Client) -> None:
    family = unique("Atomic")
    body = bundle("transaction", entry(patient(family)), entry(task(status="bogus")))
    response = client.post("/", json=body, headers=FHIR_JSON)
    assert response.status_code == 400
    assert any(e.startswith("Bundle.entry[1]") for e in issue_expressions(response.json()))
    assert client.get("/Patient", params={"family": family}).json()["total"] == 0


def test_transaction_conditional_reference_and_entries(client: httpx.Client) -> None:
    cin = unique("cin")
    client.post("/Patient", json=patient(identifier=[{"system": "urn:test:cin", "value": cin}]), headers=FHIR_JSON)
    body = bundle(
        "transaction",
        entry(task(**{"for": {"reference": f"Patient?identifier=urn:test:cin|{cin}"}})),
        entry(patient(identifier=[{"system": "urn:test:cin", "value": cin}]),
              ifNoneExist=f"identifier=urn:test:cin|{cin}"),
    )
    result = client.post("/", json=body, headers=FHIR_JSON).json()
    patient_id = client.get("/Patient", params={"identifier": f"urn:test:cin|{cin}"}).json()["entry"][0][
        "resource"]["id"]
    task_id = result["entry"][0]["response"]["location"].split("/")[1]
    assert client.get(f"/Task/{task_id}").json()["for"]["reference"] == f"Patient/{patient_id}"
    assert result["entry"][1]["response"]["status"] == "200 OK"  # matched, nothing created
    missing = bundle("transaction", entry(task(**{"for": {"reference": "Patient?identifier=urn:test:cin|none"}})))
    assert client.post("/", json=missing, headers=FHIR_JSON).status_code in (404, 412)


def test_transaction_update_delete_and_read(client: httpx.Client) -> None:
    keep = client.post("/Patient", json=patient("Keep"), headers=FHIR_JSON).json()
    drop = client.post("/Patient", json=patient("Drop"), headers=FHIR_JSON).json()
    body = bundle(
        "transaction",
        {"request": {"method": "GET", "url": f"Patient/{keep['id']}"}},
        entry({**patient("Kept"), "id": keep["id"]}, "PUT", f"Patient/{keep['id']}"),
        {"request": {"method": "DELETE", "url": f"Patient/{drop['id']}"}},
    )
    result = client.post("/", json=body, headers=FHIR_JSON).json()
    assert result["entry"][0]["resource"]["name"][0]["family"] == "Kept"  # GETs run after the writes
    assert result["entry"][1]["response"]["status"] == "200 OK"
    assert client.get(f"/Patient/{drop['id']}").status_code == 410


def test_transaction_refuses_overlapping_writes(client: httpx.Client) -> None:
    rid = unique("overlap")
    body = bundle("transaction", entry({**patient(), "id": rid}, "PUT", f"Patient/{rid}"),
                  {"request": {"method": "DELETE", "url": f"Patient/{rid}"}})
    assert client.post("/", json=body, headers=FHIR_JSON).status_code == 400


def test_batch_entries_succeed_or_fail_alone(client: httpx.Client) -> None:
    family = unique("Batch")
    body = bundle("batch", entry(patient(family)), entry(task(status="bogus")),
                  {"request": {"method": "GET", "url": f"Patient?family={family}"}})
    result = client.post("/", json=body, headers=FHIR_JSON).json()
    assert result["type"] == "batch-response"
    assert result["entry"][0]["response"]["status"] == "201 Created"
    assert result["entry"][1]["response"]["status"] == "400"
    assert result["entry"][1]["response"]["outcome"]["resourceType"] == "OperationOutcome"
    assert client.get("/Patient", params={"family": family}).json()["total"] == 1


def test_bundle_envelope_errors(client: httpx.Client) -> None:
    assert client.post("/", json={"resourceType": "Bundle", "type": "collection"}, headers=FHIR_JSON).status_code == 400
    bad_method = bundle("transaction", {"request": {"method": "FETCH", "url": "Patient"}})
    assert client.post("/", json=bad_method, headers=FHIR_JSON).status_code == 400
