"""Issue 17, findings 1-4, on a live secured server: every road a request can take (single, batch and
transaction entries, conditional forms, patch, history, export) decides visibility before anything else, and
what cbo-b may not see answers byte for byte (ids aside) like what does not exist. Also: a provider still
registers its own Members and referrals, and the plan's own behaviour is unchanged."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.api.helpers import FHIR_JSON, patient, task, unique
from tests.api.security_client import access_token, http_for, new_client, start_secured
from tests.conftest import LiveServer

PLAN = new_client("plan-app", "Organization/plan", "plan", ["system/*.cruds"])
CBO_A = new_client("cbo-a-app", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"])
CBO_B = new_client("cbo-b-app", "Organization/cbo-b", "servicing-provider", ["system/*.cruds"], ec=True)
CIN = "urn:oid:2.16.840.1.113883.3.1004"
MARKERS = (b"FamilyA", b"FamilyPlanOnly", b"Organization/cbo-a")
"""Stored content of A's resources (and the plan's) that must never reach cbo-b."""
PATCH_JSON = {"Content-Type": "application/json-patch+json"}
FAILING_TEST = [{"op": "test", "path": "", "value": 0}]


class World:
    """The server, one HTTP client per organization and the seeded ids."""

    def __init__(self, server: LiveServer, plan: httpx.Client, a: httpx.Client, b: httpx.Client) -> None:
        self.server, self.plan, self.a, self.b = server, plan, a, b
        self.ids: dict[str, str] = {}
        self.since = ""


def _create(http: httpx.Client, body: dict[str, Any]) -> str:
    response = http.post(f"/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A referral of the plan to cbo-a (Patient pa, ServiceRequest sra, Task ta, Condition ca), a Member the
    plan registered without any referral (Patient pplan), and a Task of cbo-a the plan deleted (tdel)."""
    data_dir: Path = tmp_path_factory.mktemp("paths-server")
    server = start_secured(data_dir, PLAN, CBO_A, CBO_B)
    plan = http_for(server.base_url, access_token(server.base_url, PLAN))
    for org in ("plan", "cbo-a", "cbo-b"):
        assert plan.put(f"/Organization/{org}", json={"resourceType": "Organization", "id": org, "name": org},
                        headers=FHIR_JSON).status_code in (200, 201)
    world = World(server, plan, http_for(server.base_url, access_token(server.base_url, CBO_A)),
                  http_for(server.base_url, access_token(server.base_url, CBO_B)))
    ids = world.ids
    ids["cin_a"], ids["cin_plan"] = unique("CINA"), unique("CINP")
    ids["pa"] = _create(plan, patient(family="FamilyA", identifier=[{"system": CIN, "value": ids["cin_a"]}]))
    ids["pplan"] = _create(plan, patient(family="FamilyPlanOnly",
                                         identifier=[{"system": CIN, "value": ids["cin_plan"]}]))
    ids["ca"] = _create(plan, {"resourceType": "Condition", "subject": {"reference": f"Patient/{ids['pa']}"},
                               "code": {"text": "FamilyA housing need"}})
    ids["sra"] = _create(plan, {
        "resourceType": "ServiceRequest", "status": "active", "intent": "order",
        "subject": {"reference": f"Patient/{ids['pa']}"}, "requester": {"reference": "Organization/plan"},
        "performer": [{"reference": "Organization/cbo-a"}]})
    ids["ta"] = _create(plan, task(owner="Organization/cbo-a", requester={"reference": "Organization/plan"},
                                   focus={"reference": f"ServiceRequest/{ids['sra']}"},
                                   output=[{"type": {"text": "finding"},
                                            "valueReference": {"reference": f"Condition/{ids['ca']}"}}],
                                   **{"for": {"reference": f"Patient/{ids['pa']}"}}))
    time.sleep(0.01)
    world.since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 2))
    ids["tdel"] = _create(plan, task(owner="Organization/cbo-a", description="FamilyA old task"))
    assert plan.delete(f"/Task/{ids['tdel']}").status_code in (200, 204)
    yield world
    for http in (plan, world.a, world.b):
        http.close()
    server.stop()


def _answer(response: httpx.Response, *ids: str) -> tuple[int, bytes]:
    """Status and body with the given ids blanked, for comparing "hidden" with "absent"."""
    body = response.content
    for value in ids:
        body = body.replace(value.encode(), b"<id>")
    return response.status_code, body


def _clean(response: httpx.Response) -> None:
    for marker in MARKERS:
        assert marker not in response.content, (marker, response.text)


def _transaction(http: httpx.Client, *entries: dict[str, Any], kind: str = "transaction") -> httpx.Response:
    return http.post("/", json={"resourceType": "Bundle", "type": kind, "entry": list(entries)}, headers=FHIR_JSON)


def _patch_entry(url: str, operations: list[Any]) -> dict[str, Any]:
    data = base64.b64encode(orjson.dumps(operations)).decode()
    return {"resource": {"resourceType": "Binary", "contentType": "application/json-patch+json", "data": data},
            "request": {"method": "PATCH", "url": url}}


# ---- finding 1: PATCH decides visibility before reading, and never echoes the document -------------------

def _failing_patches(http: httpx.Client, url: str) -> list[httpx.Response]:
    """The same failing ``test`` patch as a transaction entry, a batch entry and a plain PATCH."""
    return [_transaction(http, _patch_entry(url, FAILING_TEST)),
            _transaction(http, _patch_entry(url, FAILING_TEST), kind="batch"),
            http.patch(f"/{url}", json=FAILING_TEST, headers=PATCH_JSON)]


def test_failing_patch_test_on_hidden_resources_answers_like_unknown(world: World) -> None:
    never = unique("never")
    for kind, hidden_id in (("Task", world.ids["ta"]), ("Patient", world.ids["pa"])):
        hidden = _failing_patches(world.b, f"{kind}/{hidden_id}")
        absent = _failing_patches(world.b, f"{kind}/{never}")
        for seen, unknown in zip(hidden, absent, strict=True):
            _clean(seen)
            assert _answer(seen, hidden_id) == _answer(unknown, never)
        assert [r.status_code for r in hidden] == [404, 200, 404]
        assert hidden[1].json()["entry"][0]["response"]["status"].startswith("404")


def test_failing_patch_test_names_the_operation_not_the_document(world: World) -> None:
    own = _create(world.b, task(owner="Organization/cbo-b", description="SecretDescription"))
    operations = [{"op": "replace", "path": "/status", "value": "accepted"}, {"op": "test", "path": "", "value": 0}]
    for response in (world.b.patch(f"/Task/{own}", json=operations, headers=PATCH_JSON),
                     _transaction(world.b, _patch_entry(f"Task/{own}", operations))):
        assert response.status_code == 422, response.text
        assert "operation 1 (test '')" in response.text and "SecretDescription" not in response.text
    missing = world.b.patch(f"/Task/{own}", json=[{"op": "remove", "path": "/note/0"}], headers=PATCH_JSON)
    assert missing.status_code == 422 and "SecretDescription" not in missing.text


# ---- finding 2: visibility never comes from references the caller writes ---------------------------------

def test_references_to_hidden_resources_are_refused_like_unknown_ones(world: World) -> None:
    ids, never = world.ids, unique("never")
    cases = [("for", lambda ref: {"for": {"reference": ref}}, "Patient", ids["pa"]),
             ("for", lambda ref: {"for": {"reference": ref}}, "Patient", ids["pplan"]),
             ("output", lambda ref: {"output": [{"type": {"text": "x"}, "valueReference": {"reference": ref}}]},
              "Condition", ids["ca"]),
             ("focus", lambda ref: {"focus": {"reference": ref}}, "ServiceRequest", ids["sra"])]
    for _, element, target_type, hidden_id in cases:
        for send in (lambda body: world.b.post("/Task", json=body, headers=FHIR_JSON),
                     lambda body: _transaction(world.b, {"resource": body, "request": {"method": "POST",
                                                                                       "url": "Task"}})):
            hidden = send(task(owner="Organization/cbo-b", **element(f"{target_type}/{hidden_id}")))
            absent = send(task(owner="Organization/cbo-b", **element(f"{target_type}/{never}")))
            assert hidden.status_code == 422, hidden.text
            assert _answer(hidden, hidden_id) == _answer(absent, never)
            assert "which does not exist" in hidden.text
    for path in (f"Patient/{ids['pa']}", f"Patient/{ids['pa']}/_history", f"Condition/{ids['ca']}",
                 f"Patient/{ids['pplan']}"):
        assert world.b.get(f"/{path}").status_code == 404, path
    assert ids["pa"] not in world.b.get("/Patient").text


def test_odd_spellings_of_a_hidden_reference_are_refused_too(world: World) -> None:
    """Whitespace, ``./``, trailing slashes, queries, fragments and absolute URLs in any host spelling: each is
    either refused as malformed or checked like ``ServiceRequest/<id>`` (found by an outside review)."""
    hidden = world.ids["sra"]
    base = world.server.base_url
    spellings = [f" ServiceRequest/{hidden}", f"\tServiceRequest/{hidden}", f"ServiceRequest/{hidden}/",
                 f"./ServiceRequest/{hidden}", f"{base}/ServiceRequest/{hidden}?x", f"{base}/ServiceRequest/{hidden}#x",
                 f"{base}//ServiceRequest/{hidden}", f"{base.upper()}/ServiceRequest/{hidden}",
                 f"http://localhost:1/ServiceRequest/{hidden}", f"https://elsewhere.example/fhir/ServiceRequest/{hidden}",
                 "Patient?identifier=urn:cin|X"]
    for reference in spellings:
        response = world.b.post("/Task", json=task(owner="Organization/cbo-b", focus={"reference": reference}),
                                headers=FHIR_JSON)
        assert response.status_code == 422, (reference, response.text)
        assert all(marker not in response.content for marker in MARKERS)
    assert world.b.get("/Task", params={"focus": hidden}).json().get("entry", []) == []


def test_conditional_put_by_a_plan_members_cin_creates_the_callers_own(world: World) -> None:
    ids = world.ids
    body = patient(family="Bs own", identifier=[{"system": CIN, "value": ids["cin_plan"]}])
    known = world.b.put("/Patient", params={"identifier": f"{CIN}|{ids['cin_plan']}"}, json=body,
                        headers=FHIR_JSON)
    fresh_cin = unique("CINX")
    unknown = world.b.put("/Patient", params={"identifier": f"{CIN}|{fresh_cin}"},
                          json={**body, "identifier": [{"system": CIN, "value": fresh_cin}]}, headers=FHIR_JSON)
    assert known.status_code == unknown.status_code == 201, known.text
    assert known.json()["id"] != ids["pplan"]
    stored = world.plan.get(f"/Patient/{ids['pplan']}").json()
    assert stored["meta"]["versionId"] == "1" and stored["name"][0]["family"] == "FamilyPlanOnly"
    again = world.b.put("/Patient", params={"identifier": f"{CIN}|{ids['cin_plan']}"}, json=body,
                        headers=FHIR_JSON)
    assert again.status_code == 200 and again.json()["id"] == known.json()["id"]  # B's own now matches


def test_a_provider_registers_its_own_member_and_referral(world: World) -> None:
    member = world.b.post("/Patient", json=patient(family="BMember", meta={"tag": [
        {"system": "https://fhir-clr.org/CodeSystem/created-by", "code": "Organization/cbo-a"}]}),
        headers=FHIR_JSON)
    assert member.status_code == 201, member.text
    assert member.json()["meta"]["tag"] == [{"system": "https://fhir-clr.org/CodeSystem/created-by",
                                             "code": "Organization/cbo-b"}]  # server-set, not forgeable
    member_id = member.json()["id"]
    referral = _create(world.b, {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                                 "subject": {"reference": f"Patient/{member_id}"},
                                 "requester": {"reference": "Organization/cbo-b"}})
    assert world.b.get(f"/ServiceRequest/{referral}").status_code == 200
    rewritten = {**{k: v for k, v in member.json().items() if k != "meta"}, "gender": "female"}
    updated = world.b.put(f"/Patient/{member_id}", json=rewritten, headers=FHIR_JSON)
    assert updated.status_code == 200 and updated.json()["meta"]["tag"][0]["code"] == "Organization/cbo-b"
    assert world.a.get(f"/Patient/{member_id}").status_code == 404
    bundle = _transaction(world.b, {
        "fullUrl": "urn:uuid:4a0b2c1e-0000-4000-8000-000000000001", "resource": patient(family="BMember2"),
        "request": {"method": "POST", "url": "Patient"}}, {
        "resource": {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
                     "subject": {"reference": "urn:uuid:4a0b2c1e-0000-4000-8000-000000000001"},
                     "requester": {"reference": "Organization/cbo-b"}},
        "request": {"method": "POST", "url": "ServiceRequest"}})
    assert bundle.status_code == 200, bundle.text
    for entry in bundle.json()["entry"]:
        assert world.b.get(f"/{entry['response']['location'].split('/_history')[0]}").status_code == 200
    assert "tag" not in world.plan.get(f"/Patient/{world.ids['pplan']}").json().get("meta", {})


# ---- finding 3: deleted ids are neither taken over nor readable, nor listed ------------------------------

def test_deleted_ids_of_others_answer_like_unknown(world: World) -> None:
    deleted, never = world.ids["tdel"], unique("never")

    def put(target: str) -> httpx.Response:
        return world.b.put(f"/Task/{target}", json=task(owner="Organization/cbo-b", id=target), headers=FHIR_JSON)

    assert _answer(put(deleted), deleted) == _answer(put(never), never)
    assert put(deleted).status_code == 404
    assert world.b.get(f"/Task/{deleted}/_history/1").status_code == 404
    assert world.a.get(f"/Task/{deleted}/_history/1").status_code == 200  # A's own old version
    assert world.plan.get(f"/Task/{deleted}").status_code == 410


def _export_deleted(http: httpx.Client, since: str) -> set[str]:
    started = http.get("/$export", params={"_type": "Task", "_since": since}, headers={"Prefer": "respond-async"})
    assert started.status_code == 202, started.text
    for _ in range(300):
        response = http.get(started.headers["Content-Location"])
        if response.status_code == 200:
            break
        time.sleep(0.05)
    found: set[str] = set()
    for item in response.json().get("deleted", []):
        for line in http.get(item["url"]).content.splitlines():
            found.update(e["request"]["url"] for e in orjson.loads(line)["entry"])
    return found


def test_export_deleted_list_follows_the_policy(world: World) -> None:
    deleted = f"Task/{world.ids['tdel']}"
    assert deleted in _export_deleted(world.a, world.since)
    assert deleted not in _export_deleted(world.b, world.since)
    assert deleted in _export_deleted(world.plan, world.since)


def test_history_versions_are_read_by_their_own_parties(world: World) -> None:
    moved = _create(world.plan, task(owner="Organization/cbo-b", description="first"))
    current = world.plan.get(f"/Task/{moved}").json()
    assert world.plan.put(f"/Task/{moved}", json={**current, "owner": {"reference": "Organization/cbo-a"}},
                          headers=FHIR_JSON).status_code == 200
    assert world.b.get(f"/Task/{moved}/_history/1").status_code == 200
    assert world.b.get(f"/Task/{moved}/_history/2").status_code == 404
    assert world.a.get(f"/Task/{moved}/_history/1").status_code == 404
    versions = [e["resource"]["meta"]["versionId"] for e in world.a.get(f"/Task/{moved}/_history").json()["entry"]]
    assert versions == ["2"]
    type_history = world.b.get("/Task/_history", params={"_count": 500}).json()
    assert {(e["resource"]["id"], e["resource"]["meta"]["versionId"]) for e in type_history.get("entry", [])
            if e["resource"]["id"] == moved} == {(moved, "1")}


# ---- finding 4: no existence or version oracles -----------------------------------------------------------

def test_transaction_if_match_and_put_answer_like_unknown(world: World) -> None:
    hidden, never = world.ids["ta"], unique("never")
    for entry in (lambda target: {"request": {"method": "DELETE", "url": f"Task/{target}", "ifMatch": 'W/"1"'}},
                  lambda target: {"resource": task(owner="Organization/cbo-b", id=target),
                                  "request": {"method": "PUT", "url": f"Task/{target}", "ifMatch": 'W/"1"'}},
                  lambda target: {"resource": task(owner="Organization/cbo-b", id=target),
                                  "request": {"method": "PUT", "url": f"Task/{target}"}}):
        seen, absent = _transaction(world.b, entry(hidden)), _transaction(world.b, entry(never))
        _clean(seen)
        assert _answer(seen, hidden) == _answer(absent, never)
        assert b"has version" not in seen.content
    assert _transaction(world.b, {"resource": task(owner="Organization/cbo-b", id=hidden),
                                  "request": {"method": "PUT", "url": f"Task/{hidden}"}}).status_code == 404
    # a PUT in the same transaction does not make a hidden id count as "written by this transaction"
    referral = world.ids["sra"]

    def linked(target: str) -> httpx.Response:
        return _transaction(world.b, {
            "resource": task(owner="Organization/cbo-b", focus={"reference": f"ServiceRequest/{target}"}),
            "request": {"method": "POST", "url": "Task"}}, {
            "resource": {"resourceType": "ServiceRequest", "id": target, "status": "active", "intent": "order",
                         "subject": {"reference": "Patient/x"}, "requester": {"reference": "Organization/cbo-b"}},
            "request": {"method": "PUT", "url": f"ServiceRequest/{target}"}})

    seen = linked(referral)
    assert seen.status_code == 422 and _answer(seen, referral) == _answer(linked(never), never)
    assert world.a.get(f"/Task/{hidden}").json()["meta"]["versionId"] == "1"


def test_conditional_put_by_cin_answers_alike_for_members_and_unknown(world: World) -> None:
    for cin in (world.ids["cin_a"], unique("CINY")):
        body = patient(family="Probe", identifier=[{"system": CIN, "value": cin}])
        entry = {"resource": body, "request": {"method": "PUT", "url": f"Patient?identifier={CIN}|{cin}"}}
        assert _transaction(world.b, entry).status_code == 200
        response = world.b.put("/Patient", params={"identifier": f"{CIN}|{cin}"}, json=body, headers=FHIR_JSON)
        assert response.status_code == 200  # the transaction above created B's own match
    assert world.plan.get(f"/Patient/{world.ids['pa']}").json()["meta"]["versionId"] == "1"


def test_the_plan_keeps_update_as_create(world: World) -> None:
    chosen = unique("plan-chosen")
    made = world.plan.put(f"/Patient/{chosen}", json=patient(id=chosen), headers=FHIR_JSON)
    assert made.status_code == 201 and "tag" not in made.json().get("meta", {})
    again = world.plan.put(f"/Task/{world.ids['tdel']}", json=task(owner="Organization/cbo-a", id=world.ids[
        "tdel"]), headers=FHIR_JSON)
    assert again.status_code == 201
    assert world.plan.delete(f"/Task/{world.ids['tdel']}").status_code in (200, 204)
    b_chosen = unique("b-chosen")
    assert world.b.put(f"/Patient/{b_chosen}", json=patient(id=b_chosen), headers=FHIR_JSON).status_code == 404


def test_a_linked_provider_reads_the_plans_records_but_does_not_change_them(world: World) -> None:
    """cbo-a sees its referral's Member and Condition (the plan linked them) but may not rewrite or delete them,
    nor any directory entry; what its own client created it changes freely (found by an outside review: a
    provider could delete a Member other providers' referrals point at)."""
    member, condition = f"/Patient/{world.ids['pa']}", f"/Condition/{world.ids['ca']}"
    for path in (member, condition):
        assert world.a.get(path).status_code == 200
        patched = world.a.patch(path, json=[{"op": "add", "path": "/language", "value": "es"}],
                                headers=PATCH_JSON)
        assert patched.status_code == 403, patched.text
        assert world.a.delete(path).status_code == 403
        assert world.plan.get(path).json()["meta"]["versionId"] == "1"
    for org in ("cbo-a", "plan"):
        assert world.a.delete(f"/Organization/{org}").status_code == 403
        assert world.plan.get(f"/Organization/{org}").status_code == 200
    own = _create(world.a, patient(family="RegisteredByA"))
    changed = world.a.patch(f"/Patient/{own}", json=[{"op": "add", "path": "/active", "value": True}],
                            headers=PATCH_JSON)
    assert changed.status_code == 200, changed.text
    assert world.a.delete(f"/Patient/{own}").status_code == 200
