"""``If-None-Match: *`` on PUT (create only if absent), over HTTP, with httpx and two third-party clients."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import requests
from fhirclient import client as smart_client
from fhirclient.models.patient import Patient as SmartPatient
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import MultipleResourcesFound

from tests.api.helpers import FHIR_JSON, patient, unique

CREATE_ONLY = {**FHIR_JSON, "If-None-Match": "*"}


def test_put_if_none_match_creates_once_then_412(client: httpx.Client) -> None:
    rid = unique("inm")
    first = client.put(f"/Patient/{rid}", json={**patient(), "id": rid}, headers=CREATE_ONLY)
    assert first.status_code == 201 and first.json()["meta"]["versionId"] == "1"
    again = client.put(f"/Patient/{rid}", json={**patient("Other"), "id": rid}, headers=CREATE_ONLY)
    assert again.status_code == 412
    assert again.json()["resourceType"] == "OperationOutcome"
    assert "If-None-Match" in again.json()["issue"][0]["details"]["text"]
    current = client.get(f"/Patient/{rid}").json()
    assert current["meta"]["versionId"] == "1" and current["name"][0]["family"] == "Garcia"
    # A deleted resource is absent: a create-only PUT brings it back.
    assert client.delete(f"/Patient/{rid}").status_code == 200
    revived = client.put(f"/Patient/{rid}", json={**patient(), "id": rid}, headers=CREATE_ONLY)
    assert revived.status_code == 201 and revived.json()["meta"]["versionId"] == "3"
    # Without the header an update still replaces.
    assert client.put(f"/Patient/{rid}", json={**patient("New"), "id": rid}, headers=FHIR_JSON).status_code == 200


def test_put_if_none_match_with_an_etag_is_refused(client: httpx.Client) -> None:
    rid = unique("inm")
    answer = client.put(f"/Patient/{rid}", json={**patient(), "id": rid},
                        headers={**FHIR_JSON, "If-None-Match": 'W/"1"'})
    assert answer.status_code == 400
    assert client.get(f"/Patient/{rid}").status_code == 404


def test_parallel_create_only_puts_one_wins(live_server) -> None:
    rid = unique("inm-race")

    async def race() -> list[int]:
        async with httpx.AsyncClient(base_url=live_server.base_url, timeout=60) as http:
            answers = await asyncio.gather(*(
                http.put(f"/Patient/{rid}", json={**patient(f"Writer{i}"), "id": rid}, headers=CREATE_ONLY)
                for i in range(12)))
        return sorted(a.status_code for a in answers)

    codes = asyncio.run(race())
    assert codes.count(201) == 1 and codes.count(412) == 11


def test_transaction_put_entry_with_if_none_match(client: httpx.Client) -> None:
    rid = unique("inm-tx")
    client.put(f"/Patient/{rid}", json={**patient(), "id": rid}, headers=FHIR_JSON)
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": {**patient("Tx"), "id": rid},
        "request": {"method": "PUT", "url": f"Patient/{rid}", "ifNoneMatch": "*"}}]}
    answer = client.post("/", json=bundle, headers=FHIR_JSON)
    assert answer.status_code == 412
    assert client.get(f"/Patient/{rid}").json()["meta"]["versionId"] == "1"


def test_fhirpy_create_only_update(live_server) -> None:
    rid = unique("inm-fhirpy")
    fhir = SyncFHIRClient(live_server.base_url, extra_headers={"If-None-Match": "*"})
    created = fhir.resource("Patient", id=rid, name=[{"family": "Fhirpy"}])
    created.save()
    assert created["meta"]["versionId"] == "1"
    again = fhir.resource("Patient", id=rid, name=[{"family": "Changed"}])
    with pytest.raises(MultipleResourcesFound, match="If-None-Match"):  # fhirpy's name for any 412
        again.save()
    assert SyncFHIRClient(live_server.base_url).reference("Patient", rid).to_resource()["name"][0]["family"] \
        == "Fhirpy"


def test_smart_fhirclient_create_only_update(live_server) -> None:
    rid = unique("inm-smart")
    settings = {"app_id": "fhir-clr-tests", "api_base": live_server.base_url + "/"}
    writer = smart_client.FHIRClient(settings=settings)
    writer.server.session.headers["If-None-Match"] = "*"  # the writer's every request is create-only
    reader = smart_client.FHIRClient(settings=settings)
    member = SmartPatient({"resourceType": "Patient", "id": rid, "name": [{"family": "Smart"}]})
    member.update(writer.server)
    assert SmartPatient.read(rid, reader.server).name[0].family == "Smart"
    member.name[0].family = "Changed"
    with pytest.raises(requests.HTTPError) as refused:
        member.update(writer.server)
    assert refused.value.response.status_code == 412
    assert SmartPatient.read(rid, reader.server).name[0].family == "Smart"
