"""Per-organization access on a live, non-dev server: reads, searches (``_include``, ``_revinclude``, chains,
``_has``), history, batch and transaction Bundles and ``$validate`` see only what the caller's Organization
may see (404, never 403, outside it); writes keep the caller a party; the audit trail records every
interaction without values and only the plan reads it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import FHIR_JSON, patient, task, unique
from tests.api.security_client import access_token, http_for, new_client, start_secured
from tests.api.subscription_helpers import wait_until
from tests.conftest import LiveServer

PLAN = new_client("plan-app", "Organization/plan", "plan", ["system/*.cruds"])
CBO_A = new_client("cbo-a-app", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"])
CBO_B = new_client("cbo-b-app", "Organization/cbo-b", "servicing-provider", ["system/*.cruds"], ec=True)


@dataclass
class World:
    """The server, one HTTP client per organization and the ids of the seeded referrals."""

    server: LiveServer
    plan: httpx.Client
    a: httpx.Client
    b: httpx.Client
    ids: dict[str, str]


def _create(http: httpx.Client, body: dict[str, Any]) -> str:
    response = http.post(f"/{body['resourceType']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _ids(bundle: dict[str, Any], resource_type: str | None = None) -> set[str]:
    return {e["resource"]["id"] for e in bundle.get("entry", [])
            if resource_type is None or e["resource"]["resourceType"] == resource_type}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """Two referrals: one assigned to cbo-a (patient pa), one to cbo-b (patient pb)."""
    data_dir: Path = tmp_path_factory.mktemp("access-server")
    server = start_secured(data_dir, PLAN, CBO_A, CBO_B)
    plan = http_for(server.base_url, access_token(server.base_url, PLAN))
    ids: dict[str, str] = {}
    for org in ("plan", "cbo-a", "cbo-b"):
        assert plan.put(f"/Organization/{org}", json={"resourceType": "Organization", "id": org, "name": org},
                        headers=FHIR_JSON).status_code in (200, 201)
    for side in ("a", "b"):
        ids[f"p{side}"] = _create(plan, patient(family=f"Family{side.upper()}"))
        ids[f"sr{side}"] = _create(plan, {
            "resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "subject": {"reference": f"Patient/{ids[f'p{side}']}"}, "requester": {"reference": "Organization/plan"},
            "performer": [{"reference": f"Organization/cbo-{side}"}]})
        ids[f"t{side}"] = _create(plan, task(owner=f"Organization/cbo-{side}", requester={
            "reference": "Organization/plan"}, focus={"reference": f"ServiceRequest/{ids[f'sr{side}']}"},
            **{"for": {"reference": f"Patient/{ids[f'p{side}']}"}}))
        ids[f"proc{side}"] = _create(plan, {
            "resourceType": "Procedure", "status": "completed", "subject": {"reference": f"Patient/{ids[f'p{side}']}"},
            "basedOn": [{"reference": f"ServiceRequest/{ids[f'sr{side}']}"}]})
    a = http_for(server.base_url, access_token(server.base_url, CBO_A))
    b = http_for(server.base_url, access_token(server.base_url, CBO_B))
    yield World(server, plan, a, b, ids)
    for http in (plan, a, b):
        http.close()
    server.stop()


def test_read_is_404_outside_the_organization(world: World) -> None:
    ids = world.ids
    for path in (f"Task/{ids['ta']}", f"ServiceRequest/{ids['sra']}", f"Patient/{ids['pa']}",
                 f"Procedure/{ids['proca']}"):
        assert world.a.get(f"/{path}").status_code == 200, path
        refused = world.b.get(f"/{path}")
        assert refused.status_code == 404, path
        assert world.b.get(f"/{path}/_history/1").status_code == 404, path
    assert world.b.get(f"/Task/{ids['ta']}").json()["issue"][0]["code"] == "not-found"
    assert world.b.get("/Organization/cbo-a").status_code == 200  # directory data is shared


def test_search_and_includes_stay_inside(world: World) -> None:
    ids = world.ids
    tasks = world.b.get("/Task", params={"_include": "Task:patient", "_revinclude": "Provenance:target"}).json()
    assert _ids(tasks, "Task") == {ids["tb"]} and _ids(tasks, "Patient") == {ids["pb"]}
    patients = world.a.get("/Patient", params={"_revinclude": ["Task:patient", "ServiceRequest:subject"]}).json()
    assert _ids(patients, "Patient") == {ids["pa"]}
    assert _ids(patients) == {ids["pa"], ids["ta"], ids["sra"]}
    wide = world.b.get("/ServiceRequest", params={"_include": "*", "_revinclude": "*"}).json()
    assert ids["pa"] not in _ids(wide) and ids["ta"] not in _ids(wide) and ids["sra"] not in _ids(wide)
    assert world.plan.get("/Task", params={"_id": f"{ids['ta']},{ids['tb']}"}).json()["total"] == 2


def test_chains_and_has(world: World) -> None:
    ids = world.ids
    chained = world.b.get("/Task", params={"patient.family": "FamilyA"}).json()
    assert _ids(chained) == set()
    own = world.a.get("/Task", params={"patient.family": "FamilyA"}).json()
    assert _ids(own) == {ids["ta"]}
    probe = world.b.get("/Patient", params={"_has:Task:patient:status": "requested"})
    assert probe.status_code == 403
    assert len(world.plan.get("/Patient", params={"_has:Task:patient:owner": "Organization/cbo-a"}).json()[
        "entry"]) == 1


def test_history_stays_inside(world: World) -> None:
    ids = world.ids
    assert world.b.get(f"/Task/{ids['ta']}/_history").status_code == 404
    assert world.a.get(f"/Task/{ids['ta']}/_history").status_code == 200
    type_history = world.b.get("/Task/_history").json()
    assert _ids(type_history) == {ids["tb"]}
    system_history = _ids(world.b.get("/_history", params={"_count": 500}).json())
    assert ids["pb"] in system_history and not {ids["pa"], ids["ta"], ids["sra"], ids["proca"]} & system_history


def test_bundles_check_each_entry(world: World) -> None:
    ids = world.ids
    batch = {"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": f"Task/{ids['ta']}"}},
        {"request": {"method": "GET", "url": f"Task/{ids['tb']}"}},
        {"request": {"method": "GET", "url": "Patient"}}]}
    entries = world.b.post("/", json=batch, headers=FHIR_JSON).json()["entry"]
    assert [e["response"]["status"][:3] for e in entries] == ["404", "200", "200"]
    assert _ids(entries[2]["resource"]) == {ids["pb"]}
    steal = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": task(owner="Organization/cbo-b", id=ids["ta"]),
         "request": {"method": "PUT", "url": f"Task/{ids['ta']}"}}]}
    assert world.b.post("/", json=steal, headers=FHIR_JSON).status_code == 404
    foreign = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": task(owner="Organization/cbo-a"), "request": {"method": "POST", "url": "Task"}}]}
    assert world.b.post("/", json=foreign, headers=FHIR_JSON).status_code == 403
    assert world.a.get(f"/Task/{ids['ta']}").json()["owner"]["reference"] == "Organization/cbo-a"


def test_writes_keep_the_caller_a_party(world: World) -> None:
    ids = world.ids
    assert world.b.post("/Task", json=task(owner="Organization/cbo-a"), headers=FHIR_JSON).status_code == 403
    own = world.b.post("/Task", json=task(owner="Organization/cbo-b"), headers=FHIR_JSON)
    assert own.status_code == 201
    current = world.a.get(f"/Task/{ids['ta']}").json()
    assert world.b.put(f"/Task/{ids['ta']}", json=current, headers=FHIR_JSON).status_code == 404
    # a delete of something the caller cannot see answers like one of an unknown id, and deletes nothing
    unknown = world.b.delete(f"/Task/{unique('never')}")
    hidden = world.b.delete(f"/Task/{ids['ta']}")
    assert (hidden.status_code, hidden.content) == (unknown.status_code, unknown.content)
    assert world.a.get(f"/Task/{ids['ta']}").status_code == 200
    patch = [{"op": "replace", "path": "/status", "value": "accepted"}]
    assert world.b.patch(f"/Task/{ids['ta']}", json=patch,
                         headers={"Content-Type": "application/json-patch+json"}).status_code == 404
    hand_off = {**current, "owner": {"reference": "Organization/cbo-b"}}
    assert world.a.put(f"/Task/{ids['ta']}", json=hand_off, headers=FHIR_JSON).status_code == 403
    assert world.a.put("/Organization/cbo-a", json={"resourceType": "Organization", "id": "cbo-a", "name": "x"},
                       headers=FHIR_JSON).status_code == 403
    # directory data is the plan's: a provider deletes none of it either (it could before: 200, then 410)
    assert world.b.delete("/Organization/cbo-a").status_code == 403
    entry = {"request": {"method": "DELETE", "url": "Organization/plan"}}
    assert world.b.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]},
                        headers=FHIR_JSON).status_code == 403
    assert world.a.get("/Organization/cbo-a").status_code == world.a.get("/Organization/plan").status_code == 200


def test_preconditions_do_not_reveal_hidden_resources(world: World) -> None:
    """If-Match on a hidden resource answers exactly as on an id that never existed."""
    stale = 'W/"99"'
    patch = [{"op": "replace", "path": "/status", "value": "accepted"}]

    def answers(target: str) -> list[tuple[int, bytes]]:
        body = {**task(owner="Organization/cbo-a"), "id": target}
        responses = [
            world.a.put(f"/Task/{target}", json=body, headers={**FHIR_JSON, "If-Match": stale}),
            world.a.delete(f"/Task/{target}", headers={"If-Match": stale}),
            world.a.patch(f"/Task/{target}", json=patch,
                          headers={"Content-Type": "application/json-patch+json", "If-Match": stale})]
        return [(r.status_code, r.content.replace(target.encode(), b"<id>")) for r in responses]

    hidden = answers(world.ids["tb"])  # cbo-b's Task, out of cbo-a's reach
    assert hidden == answers(unique("never"))
    assert [status for status, _ in hidden] == [404, 412, 404]


def test_transaction_conditional_reference_cannot_find_hidden_resources(world: World) -> None:
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [{
        "resource": task(owner="Organization/cbo-a", **{"for": {"reference": "Patient?family=FamilyB"}}),
        "request": {"method": "POST", "url": "Task"}}]}
    response = world.a.post("/", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 404, response.text  # as if FamilyB did not exist


def test_validate_operation_respects_reach(world: World) -> None:
    ids = world.ids
    body = world.a.get(f"/Task/{ids['ta']}").json()
    assert world.b.post(f"/Task/{ids['ta']}/$validate", json=body, headers=FHIR_JSON).status_code == 404
    assert world.a.post(f"/Task/{ids['ta']}/$validate", json=body, headers=FHIR_JSON).status_code == 200


def _audit(world: World, since: str, **params: str) -> list[dict[str, Any]]:
    """The plan's search of the audit trail: the events recorded at or after ``since`` (ISO, milliseconds)."""
    bundle = world.plan.get("/AuditEvent", params={"_count": 1000, **params}).json()
    return [e["resource"] for e in bundle.get("entry", []) if e["resource"]["recorded"] >= since]


def test_audit_trail(world: World) -> None:
    secret = unique("SecretName")
    since = datetime.now(UTC).isoformat(timespec="milliseconds")
    world.b.get("/Patient", params={"family": secret})
    world.b.get(f"/Task/{world.ids['ta']}")

    def searches(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["subtype"][0]["code"] == "search-type"
                and "family" in str(e.get("entity", [{}])[0].get("detail", ""))]

    def refused(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e.get("entity", [{}])[0].get("what", {}).get("reference") ==
                f"Task/{world.ids['ta']}"]

    # the trail is appended in the background (every 0.2 s), and B's earlier requests are in it too: wait for
    # these two requests' own events
    wait_until(lambda: bool(searches(_audit(world, since, altid="cbo-b-app"))
                            and refused(_audit(world, since, altid="cbo-b-app"))), what="B's two requests audited")
    events = _audit(world, since, altid="cbo-b-app")
    assert searches(events)[0]["agent"][0]["who"]["reference"] == "Organization/cbo-b"
    assert refused(events)[0]["outcomeDesc"] == "HTTP 404" and refused(events)[0]["outcome"] == "4"
    dump = str(_audit(world, "", altid="cbo-b-app"))  # every event of B's, those of earlier tests too
    assert secret not in dump and "FamilyA" not in dump and "FamilyB" not in dump
    # only the plan reads the trail, and nobody writes it
    assert _ids(world.a.get("/AuditEvent").json()) == set()
    assert world.a.get(f"/AuditEvent/{events[0]['id']}").status_code == 404
    forged = {"resourceType": "AuditEvent", "type": {"code": "rest"}, "recorded": "2024-01-01T00:00:00Z",
              "agent": [{"requestor": True}], "source": {"observer": {"display": "x"}}}
    assert world.plan.post("/AuditEvent", json=forged, headers=FHIR_JSON).status_code == 403


def test_bulk_export_is_limited_to_the_requester(world: World) -> None:
    """A CBO's export holds only its own referrals; another client cannot see the job or its files."""
    started = world.a.get("/$export", params={"_type": "Task,Patient"},
                          headers={"Prefer": "respond-async"})
    assert started.status_code == 202, started.text
    status_url = started.headers["Content-Location"]
    for _ in range(200):
        response = world.a.get(status_url)
        if response.status_code == 200:
            break
        time.sleep(0.05)
    manifest = response.json()
    assert manifest["requiresAccessToken"] is True
    ids: dict[str, set[str]] = {}
    for item in manifest["output"]:
        lines = world.a.get(item["url"]).content.splitlines()
        ids.setdefault(item["type"], set()).update(httpx.Response(200, content=line).json()["id"] for line in lines)
    assert ids == {"Task": {world.ids["ta"]}, "Patient": {world.ids["pa"]}}
    assert world.b.get(status_url).status_code == 404
    assert world.b.get(manifest["output"][0]["url"]).status_code == 404
    assert httpx.get(manifest["output"][0]["url"]).status_code == 401


def test_subscriptions_belong_to_their_subscriber(world: World) -> None:
    body = {"resourceType": "Subscription", "status": "off", "reason": "ours",
            "criteria": "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task",
            "channel": {"type": "rest-hook", "endpoint": "https://8.8.8.8/hook", "payload": "application/fhir+json"}}
    made = world.a.post("/Subscription", json=body, headers=FHIR_JSON)
    assert made.status_code == 201, made.text
    subscription = made.json()
    assert subscription["extension"] == [{"url": "http://fhir-clr.org/fhir/StructureDefinition/subscriber",
                                          "valueReference": {"reference": "Organization/cbo-a"}}]
    assert world.b.get(f"/Subscription/{subscription['id']}").status_code == 404
    assert world.b.get(f"/Subscription/{subscription['id']}/$status").status_code == 404
    assert world.plan.get(f"/Subscription/{subscription['id']}").status_code == 200
    assert _ids(world.b.get("/Subscription").json()) == set()
