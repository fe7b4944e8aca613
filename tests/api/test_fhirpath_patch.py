"""FHIRPath Patch (a Parameters body) over the PATCH interaction, with httpx, fhirpy and in a transaction."""

from __future__ import annotations

from typing import Any

import httpx
from fhirpy import SyncFHIRClient

from tests.api.helpers import FHIR_JSON, patient, unique


def operation(kind: str, path: str, **parts: Any) -> dict[str, Any]:
    """One ``operation`` parameter; ``value`` may be a primitive (valueString), an int or a dict of parts."""
    built: list[dict[str, Any]] = [{"name": "type", "valueCode": kind}, {"name": "path", "valueString": path}]
    for name, value in parts.items():
        if isinstance(value, dict):
            built.append({"name": name, "part": [{"name": k, "valueString": v} for k, v in value.items()]})
        elif isinstance(value, int):
            built.append({"name": name, "valueInteger": value})
        else:
            built.append({"name": name, "valueString": value})
    return {"name": "operation", "part": built}


def fhirpath_patch(*operations: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": list(operations)}


def _member(client: httpx.Client) -> str:
    body = patient(identifier=[{"system": "urn:test:mrn", "value": unique("mrn")},
                               {"system": "urn:test:other", "value": "x"}],
                   birthDate="1980-02-03")
    body["name"] = [{"use": "official", "family": "Garcia", "given": ["Ana", "Maria"]}, {"family": "Lopez"}]
    return client.post("/Patient", json=body, headers=FHIR_JSON).json()["id"]


def test_every_operation_type(client: httpx.Client) -> None:
    rid = _member(client)
    patch = fhirpath_patch(
        operation("replace", "Patient.birthDate", value="1981-04-05"),
        operation("add", "Patient", name="gender", value="female"),
        operation("add", "Patient", name="telecom", value={"system": "phone", "value": "555-0100"}),
        operation("add", "Patient.name[1]", name="given", value="Rosa"),
        operation("delete", "Patient.name.where(use='official').given[1]"),
        operation("delete", "Patient.identifier.where(system='urn:test:other')"),
        operation("insert", "Patient.name", index=0, value={"family": "Zamora"}),
        operation("move", "Patient.name", source=2, destination=1),
        operation("delete", "Patient.deceased"),  # selects nothing: no change
    )
    answer = client.patch(f"/Patient/{rid}", json=patch, headers=FHIR_JSON)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert result["meta"]["versionId"] == "2"
    assert result["birthDate"] == "1981-04-05" and result["gender"] == "female"
    assert result["telecom"] == [{"system": "phone", "value": "555-0100"}]
    assert [n["family"] for n in result["name"]] == ["Zamora", "Lopez", "Garcia"]
    assert result["name"][1]["given"] == ["Rosa"] and result["name"][2]["given"] == ["Ana"]
    assert [i["system"] for i in result["identifier"]] == ["urn:test:mrn"]
    assert client.get(f"/Patient/{rid}").json() == result


def test_refusals_leave_the_resource_alone(client: httpx.Client) -> None:
    rid = _member(client)
    cases = [
        (fhirpath_patch(operation("replace", "Patient.name", value={"family": "X"})), 422),  # two names
        (fhirpath_patch(operation("replace", "Patient.birthDate", value="not-a-date")), 400),  # invalid result
        (fhirpath_patch(operation("replace", "Patient.id", value="other")), 422),  # the id is fixed
        (fhirpath_patch(operation("delete", "Patient")), 422),
        (fhirpath_patch(operation("insert", "Patient.name", index=9, value={"family": "X"})), 422),
        (fhirpath_patch(operation("explode", "Patient.name")), 400),
        (fhirpath_patch(operation("add", "Patient", value="x")), 400),  # no name part
        (fhirpath_patch(operation("replace", "Patient.name.where(", value="x")), 400),
        ({"resourceType": "Parameters"}, 400),
        ({"resourceType": "Patient"}, 415),  # a FHIR JSON body that is not a Parameters
    ]
    for body, status in cases:
        answer = client.patch(f"/Patient/{rid}", json=body, headers=FHIR_JSON)
        assert answer.status_code == status, (body, answer.text)
        assert answer.json()["resourceType"] == "OperationOutcome"
    assert client.get(f"/Patient/{rid}").json()["meta"]["versionId"] == "1"


def test_if_match_and_conditional_fhirpath_patch(client: httpx.Client) -> None:
    rid = _member(client)
    mrn = client.get(f"/Patient/{rid}").json()["identifier"][0]["value"]
    patch = fhirpath_patch(operation("replace", "Patient.birthDate", value="1970-01-01"))
    stale = client.patch(f"/Patient/{rid}", json=patch, headers={**FHIR_JSON, "If-Match": 'W/"9"'})
    assert stale.status_code == 412
    answer = client.patch("/Patient", params={"identifier": f"urn:test:mrn|{mrn}"}, json=patch, headers=FHIR_JSON)
    assert answer.status_code == 200 and answer.json()["birthDate"] == "1970-01-01"


def test_fhirpath_patch_in_a_transaction(client: httpx.Client) -> None:
    rid = _member(client)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": fhirpath_patch(operation("replace", "Patient.birthDate", value="1990-09-09")),
        "request": {"method": "PATCH", "url": f"Patient/{rid}"}}]}
    answer = client.post("/", json=bundle, headers=FHIR_JSON)
    assert answer.status_code == 200, answer.text
    assert client.get(f"/Patient/{rid}").json()["birthDate"] == "1990-09-09"


def test_capability_statement_lists_fhirpath_patch(client: httpx.Client) -> None:
    assert "application/fhir+json" in client.get("/metadata").json()["patchFormat"]


def test_fhirpy_sends_a_fhirpath_patch(live_server, client: httpx.Client) -> None:
    rid = _member(client)
    fhir = SyncFHIRClient(live_server.base_url)
    patched = fhir.execute(f"Patient/{rid}", method="patch",
                           data=fhirpath_patch(operation("add", "Patient", name="gender", value="other")))
    assert patched["gender"] == "other" and patched["meta"]["versionId"] == "2"
    assert fhir.reference("Patient", rid).to_resource()["gender"] == "other"
