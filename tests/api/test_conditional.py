"""Conditional interactions and the concurrency guarantees, over HTTP against a live server."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.helpers import FHIR_JSON, patient, unique


def _identifier(value: str) -> list[dict]:
    return [{"system": "urn:test:mrn", "value": value}]


def test_conditional_create(client: httpx.Client) -> None:
    value = unique("mrn")
    headers = {**FHIR_JSON, "If-None-Exist": f"identifier=urn:test:mrn|{value}"}
    first = client.post("/Patient", json=patient(identifier=_identifier(value)), headers=headers)
    assert first.status_code == 201
    second = client.post("/Patient", json=patient(identifier=_identifier(value)), headers=headers)
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    client.post("/Patient", json=patient(identifier=_identifier(value)), headers=FHIR_JSON)  # a duplicate
    third = client.post("/Patient", json=patient(identifier=_identifier(value)), headers=headers)
    assert third.status_code == 412


def test_conditional_create_with_unknown_parameter_is_refused(client: httpx.Client) -> None:
    headers = {**FHIR_JSON, "If-None-Exist": "identifer=urn:test:mrn|x"}  # misspelt on purpose
    assert client.post("/Patient", json=patient(), headers=headers).status_code == 400


async def _parallel(live_url: str, requests: list[tuple[str, str, dict, dict]]) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=live_url, timeout=60) as http:
        return await asyncio.gather(*(http.request(m, u, json=b, headers=h) for m, u, b, h in requests))


def test_parallel_conditional_creates_leave_exactly_one(client: httpx.Client, live_server) -> None:
    value = unique("race")
    headers = {**FHIR_JSON, "If-None-Exist": f"identifier=urn:test:mrn|{value}"}
    body = patient(identifier=_identifier(value))
    responses = asyncio.run(_parallel(live_server.base_url, [("POST", "/Patient", body, headers)] * 20))
    assert sorted(r.status_code for r in responses).count(201) == 1
    assert all(r.status_code in (200, 201) for r in responses)
    assert len({r.json()["id"] for r in responses}) == 1
    found = client.get("/Patient", params={"identifier": f"urn:test:mrn|{value}"}).json()
    assert found["total"] == 1


def test_parallel_if_match_writers_one_wins(client: httpx.Client, live_server) -> None:
    rid = client.post("/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    requests = [("PUT", f"/Patient/{rid}", {**patient(f"Writer{i}"), "id": rid}, {**FHIR_JSON, "If-Match": 'W/"1"'})
                for i in range(20)]
    responses = asyncio.run(_parallel(live_server.base_url, requests))
    codes = sorted(r.status_code for r in responses)
    assert codes.count(200) == 1 and codes.count(412) == 19
    assert client.get(f"/Patient/{rid}").json()["meta"]["versionId"] == "2"


def test_parallel_writers_without_if_match_lose_no_update(client: httpx.Client, live_server) -> None:
    rid = client.post("/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    requests = [("PUT", f"/Patient/{rid}", {**patient(f"Writer{i}"), "id": rid}, FHIR_JSON) for i in range(20)]
    responses = asyncio.run(_parallel(live_server.base_url, requests))
    assert [r.status_code for r in responses] == [200] * 20, [r.text for r in responses if r.status_code != 200]
    history = client.get(f"/Patient/{rid}/_history", params={"_count": 50}).json()
    families = {e["resource"]["name"][0]["family"] for e in history["entry"]}
    assert len(history["entry"]) == 21
    assert {f"Writer{i}" for i in range(20)} <= families


def test_conditional_update_and_delete(client: httpx.Client) -> None:
    value = unique("cu")
    criteria = f"identifier=urn:test:mrn|{value}"
    created = client.put(f"/Patient?{criteria}", json=patient(identifier=_identifier(value)), headers=FHIR_JSON)
    assert created.status_code == 201
    rid = created.json()["id"]
    updated = client.put(f"/Patient?{criteria}", json=patient("Kim", identifier=_identifier(value)),
                         headers=FHIR_JSON)
    assert updated.status_code == 200 and updated.json()["id"] == rid
    assert updated.json()["meta"]["versionId"] == "2"
    wrong_id = client.put(f"/Patient?{criteria}", json={**patient(identifier=_identifier(value)), "id": "other"},
                          headers=FHIR_JSON)
    assert wrong_id.status_code == 400
    client.post("/Patient", json=patient(identifier=_identifier(value)), headers=FHIR_JSON)
    assert client.put(f"/Patient?{criteria}", json=patient(identifier=_identifier(value)),
                      headers=FHIR_JSON).status_code == 412
    assert client.delete(f"/Patient?{criteria}").status_code == 412
    lone = unique("cd")
    client.post("/Patient", json=patient(identifier=_identifier(lone)), headers=FHIR_JSON)
    assert client.delete(f"/Patient?identifier=urn:test:mrn|{lone}").status_code == 200
    assert client.get("/Patient", params={"identifier": f"urn:test:mrn|{lone}"}).json()["total"] == 0
    assert client.delete(f"/Patient?identifier=urn:test:mrn|{lone}").status_code == 200
