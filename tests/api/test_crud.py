"""REST behaviour of single-resource interactions, over HTTP against a live server."""

from __future__ import annotations

from email.utils import formatdate

import httpx

from tests.api.helpers import FHIR_JSON, issue_expressions, patient, task, unique


def create(client: httpx.Client, body: dict, **headers: str) -> httpx.Response:
    response = client.post(f"/{body['resourceType']}", json=body, headers={**FHIR_JSON, **headers})
    assert response.status_code == 201, response.text
    return response


def test_create_sets_id_meta_and_headers(client: httpx.Client) -> None:
    response = create(client, patient(id="client-chosen", meta={"versionId": "99"}))
    body = response.json()
    assert body["id"] != "client-chosen"
    assert body["meta"]["versionId"] == "1"
    assert body["meta"]["lastUpdated"].endswith("Z")
    assert response.headers["ETag"] == 'W/"1"'
    assert response.headers["Location"].endswith(f"/Patient/{body['id']}/_history/1")
    assert response.headers["Last-Modified"].endswith("GMT")
    assert response.headers["Content-Type"].startswith("application/fhir+json")


def test_read_vread_update_delete_lifecycle(client: httpx.Client) -> None:
    created = create(client, patient("Nguyen")).json()
    rid = created["id"]
    read = client.get(f"/Patient/{rid}")
    assert read.status_code == 200 and read.json()["name"][0]["family"] == "Nguyen"
    updated = client.put(f"/Patient/{rid}", json={**patient("Tran"), "id": rid}, headers=FHIR_JSON)
    assert updated.status_code == 200 and updated.json()["meta"]["versionId"] == "2"
    assert client.get(f"/Patient/{rid}/_history/1").json()["name"][0]["family"] == "Nguyen"
    assert client.get(f"/Patient/{rid}/_history/2").json()["name"][0]["family"] == "Tran"
    assert client.get(f"/Patient/{rid}/_history/7").status_code == 404
    deleted = client.delete(f"/Patient/{rid}")
    assert deleted.status_code == 200
    gone = client.get(f"/Patient/{rid}")
    assert gone.status_code == 410
    assert gone.json()["issue"][0]["code"] == "deleted"
    assert client.get(f"/Patient/{rid}/_history/3").status_code == 410
    assert client.delete(f"/Patient/{rid}").status_code == 200  # idempotent
    history = client.get(f"/Patient/{rid}/_history").json()
    assert history["type"] == "history"
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]
    assert "resource" not in history["entry"][0]
    assert history["entry"][0]["response"]["status"] == "200 OK"  # what the DELETE answered
    recreated = client.put(f"/Patient/{rid}", json={**patient("Back"), "id": rid}, headers=FHIR_JSON)
    assert recreated.status_code == 201 and recreated.json()["meta"]["versionId"] == "4"


def test_history_shows_the_method_and_status_of_each_interaction(client: httpx.Client) -> None:
    rid = unique("hist")
    assert client.put(f"/Patient/{rid}", json={**patient("Put"), "id": rid}, headers=FHIR_JSON).status_code == 201
    patched = client.patch(f"/Patient/{rid}", content=b'[{"op": "add", "path": "/gender", "value": "female"}]',
                           headers={"Content-Type": "application/json-patch+json"})
    assert patched.status_code == 200, patched.text
    fhirpath = {"resourceType": "Parameters", "parameter": [{"name": "operation", "part": [
        {"name": "type", "valueCode": "replace"}, {"name": "path", "valueString": "Patient.gender"},
        {"name": "value", "valueCode": "male"}]}]}
    assert client.patch(f"/Patient/{rid}", json=fhirpath, headers=FHIR_JSON).status_code == 200
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "request": {"method": "PATCH", "url": f"Patient/{rid}"},
        "resource": {"resourceType": "Binary", "contentType": "application/json-patch+json",
                     "data": "W3sib3AiOiAicmVtb3ZlIiwgInBhdGgiOiAiL2dlbmRlciJ9XQ=="}}]}  # remove /gender
    assert client.post("/", json=bundle, headers=FHIR_JSON).status_code == 200
    assert client.put(f"/Patient/{rid}", json={**patient("Again"), "id": rid}, headers=FHIR_JSON).status_code == 200
    assert client.delete(f"/Patient/{rid}").status_code == 200
    history = client.get(f"/Patient/{rid}/_history").json()
    assert [(e["request"]["method"], e["request"]["url"], e["response"]["status"]) for e in history["entry"]] == [
        ("DELETE", f"Patient/{rid}", "200 OK"), ("PUT", f"Patient/{rid}", "200 OK"),
        ("PATCH", f"Patient/{rid}", "200 OK"), ("PATCH", f"Patient/{rid}", "200 OK"),
        ("PATCH", f"Patient/{rid}", "200 OK"), ("PUT", f"Patient/{rid}", "201 Created")]
    posted = create(client, patient("Posted")).json()
    [entry] = client.get(f"/Patient/{posted['id']}/_history").json()["entry"]
    assert (entry["request"], entry["response"]["status"]) == ({"method": "POST", "url": "Patient"}, "201 Created")


def test_identical_update_writes_no_new_version(client: httpx.Client) -> None:
    created = create(client, patient("Same")).json()
    again = client.put(f"/Patient/{created['id']}", json={**patient("Same"), "id": created["id"]},
                       headers=FHIR_JSON)
    assert again.status_code == 200 and again.json()["meta"]["versionId"] == "1"


def test_update_as_create_with_client_id(client: httpx.Client) -> None:
    rid = unique("client")
    response = client.put(f"/Patient/{rid}", json={**patient(), "id": rid}, headers=FHIR_JSON)
    assert response.status_code == 201
    assert response.json()["id"] == rid


def test_update_id_rules(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    mismatch = client.put(f"/Patient/{rid}", json={**patient(), "id": "other"}, headers=FHIR_JSON)
    assert mismatch.status_code == 400 and "Patient.id" in issue_expressions(mismatch.json())
    missing = client.put(f"/Patient/{rid}", json=patient(), headers=FHIR_JSON)
    assert missing.status_code == 400


def test_unknown_type_and_id(client: httpx.Client) -> None:
    assert client.get("/Spaceship/1").status_code == 404
    assert client.get("/SubscriptionTopic").status_code == 404  # R4B-only type is not served
    response = client.get(f"/Patient/{unique()}")
    assert response.status_code == 404
    assert response.json()["resourceType"] == "OperationOutcome"


def test_validation_errors_name_the_element(client: httpx.Client) -> None:
    bad_status = client.post("/Task", json=task(status="bogus"), headers=FHIR_JSON)
    assert bad_status.status_code == 400
    assert "Task.status" in issue_expressions(bad_status.json())
    unknown_element = client.post("/Patient", json={**patient(), "favouriteColour": "blue"}, headers=FHIR_JSON)
    assert unknown_element.status_code == 400
    empty_array = client.post("/Patient", json={**patient(), "identifier": []}, headers=FHIR_JSON)
    assert empty_array.status_code == 400
    wrong_type = client.post("/Patient", json=task(), headers=FHIR_JSON)
    assert wrong_type.status_code == 400
    not_json = client.post("/Patient", content=b"{nope", headers=FHIR_JSON)
    assert not_json.status_code == 400 and not_json.json()["resourceType"] == "OperationOutcome"
    long_id = "x" * 65
    assert client.put(f"/Patient/{long_id}", json={**patient(), "id": long_id}, headers=FHIR_JSON).status_code == 400


def test_prefer_return(client: httpx.Client) -> None:
    minimal = client.post("/Patient", json=patient(), headers={**FHIR_JSON, "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b"" and "Location" in minimal.headers
    outcome = client.post("/Patient", json=patient(), headers={**FHIR_JSON, "Prefer": "return=OperationOutcome"})
    assert outcome.status_code == 201 and outcome.json()["resourceType"] == "OperationOutcome"


def test_content_negotiation(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    assert client.get(f"/Patient/{rid}", headers={"Accept": "application/fhir+xml"}).status_code == 406
    assert client.get(f"/Patient/{rid}?_format=xml").status_code == 406
    assert client.get(f"/Patient/{rid}", headers={"Accept": "application/xml"},
                      params={"_format": "json"}).status_code == 200
    assert client.get(f"/Patient/{rid}", headers={"Accept": "application/json"}).status_code == 200
    assert client.get(f"/Patient/{rid}",
                      headers={"Accept": "application/fhir+json; fhirVersion=3.0"}).status_code == 406
    xml = client.post("/Patient", content=b"<Patient/>", headers={"Content-Type": "application/fhir+xml"})
    assert xml.status_code == 415
    plain = client.post("/Patient", content=b"{}", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415


def test_conditional_read(client: httpx.Client) -> None:
    response = create(client, patient())
    rid = response.json()["id"]
    assert client.get(f"/Patient/{rid}", headers={"If-None-Match": 'W/"1"'}).status_code == 304
    assert client.get(f"/Patient/{rid}", headers={"If-None-Match": 'W/"0"'}).status_code == 200
    later = formatdate(usegmt=True)
    assert client.get(f"/Patient/{rid}", headers={"If-Modified-Since": later}).status_code == 304
    earlier = "Mon, 01 Jan 2001 00:00:00 GMT"
    assert client.get(f"/Patient/{rid}", headers={"If-Modified-Since": earlier}).status_code == 200


def test_if_match(client: httpx.Client) -> None:
    rid = create(client, patient()).json()["id"]
    body = {**patient("Lee"), "id": rid}
    stale = client.put(f"/Patient/{rid}", json=body, headers={**FHIR_JSON, "If-Match": 'W/"5"'})
    assert stale.status_code == 412
    fresh = client.put(f"/Patient/{rid}", json=body, headers={**FHIR_JSON, "If-Match": 'W/"1"'})
    assert fresh.status_code == 200
    assert client.delete(f"/Patient/{rid}", headers={"If-Match": 'W/"1"'}).status_code == 412


def test_json_patch(client: httpx.Client) -> None:
    rid = create(client, task(owner="Organization/p1")).json()["id"]
    patch_headers = {"Content-Type": "application/json-patch+json"}
    ops = [{"op": "replace", "path": "/status", "value": "accepted"}]
    patched = client.patch(f"/Task/{rid}", json=ops, headers=patch_headers)
    assert patched.status_code == 200 and patched.json()["status"] == "accepted"
    assert patched.json()["meta"]["versionId"] == "2"
    failing_test = [{"op": "test", "path": "/status", "value": "requested"}]
    assert client.patch(f"/Task/{rid}", json=failing_test, headers=patch_headers).status_code == 422
    invalid_result = [{"op": "replace", "path": "/status", "value": "bogus"}]
    assert client.patch(f"/Task/{rid}", json=invalid_result, headers=patch_headers).status_code == 400
    change_id = [{"op": "replace", "path": "/id", "value": "other"}]
    assert client.patch(f"/Task/{rid}", json=change_id, headers=patch_headers).status_code == 422
    malformed = client.patch(f"/Task/{rid}", json={"op": "nope"}, headers=patch_headers)
    assert malformed.status_code == 400
    for not_an_array in (b"null", b"7", b'"replace"'):  # found by schemathesis: a 500 before
        answer = client.patch(f"/Task/{rid}", content=not_an_array, headers=patch_headers)
        assert answer.status_code == 400 and "JSON array" in answer.text, answer.text
    assert client.get(f"/Task/{rid}").json()["meta"]["versionId"] == "2"


def test_type_and_system_history(client: httpx.Client) -> None:
    marker = unique("hist")
    created = create(client, patient(marker)).json()
    type_history = client.get("/Patient/_history", params={"_count": 5}).json()
    assert type_history["type"] == "history" and len(type_history["entry"]) <= 5
    assert any(e["fullUrl"].endswith(created["id"]) for e in type_history["entry"])
    system_history = client.get("/_history", params={"_count": 3}).json()
    assert len(system_history["entry"]) == 3
    assert any(link["relation"] == "next" for link in system_history["link"])
    next_url = next(link["url"] for link in system_history["link"] if link["relation"] == "next")
    second = client.get(next_url).json()
    first_ids = {(e["fullUrl"], e["response"]["etag"]) for e in system_history["entry"]}
    assert not first_ids & {(e["fullUrl"], e["response"]["etag"]) for e in second["entry"]}
    since = client.get("/Patient/_history", params={"_since": created["meta"]["lastUpdated"]}).json()
    assert all(e["resource"]["meta"]["lastUpdated"] >= created["meta"]["lastUpdated"]
               for e in since.get("entry", []) if "resource" in e)
