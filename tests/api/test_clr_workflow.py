"""CLR referral workflow over HTTP: a plan system and a provider move a referral Task through its statuses on a
live dev-mode server whose clock is fixed (``FHIR_CLR_FIXED_NOW``), so notice due dates are exact.

The fixed "now" is Tuesday 24 November 2026, 10:00 in California: two business days later crosses Thanksgiving
(26th), the day after Thanksgiving (a California state holiday) and a weekend, landing on Monday 30 November.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.clr_helpers import (
    CLOSURE_URL,
    DATE_URL,
    STATUS_SYSTEM,
    created,
    fixed_clock_client,
    member,
    organization,
    referral_body,
    referral_task_body,
    status_code,
    with_status,
)
from tests.api.helpers import FHIR_JSON, issue_expressions, unique

FIXED_NOW = "2026-11-24T18:00:00+00:00"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client of a dev-mode live server with the fixed clock (overrides the shared server's ``client``)."""
    yield from fixed_clock_client(Path(tmp_path_factory.mktemp("clr-server")), FIXED_NOW)


def open_referral(client: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    """A CLR Referral (external Referring Entity, ECM) and its referral Task, Pending since 2 November."""
    subject, clinic, provider = member(client), organization(client, "clinic"), organization(client, "provider")
    referral = created(client, referral_body(subject, clinic))
    return referral, created(client, referral_task_body(referral, provider))


def put(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.put(f"/Task/{body['id']}", json=body, headers=FHIR_JSON)


def accepted(client: httpx.Client, task: dict[str, Any]) -> dict[str, Any]:
    response = put(client, with_status(task, "Accepted", "2026-11-09", "accepted"))
    assert response.status_code == 200, response.text
    return response.json()


def test_referral_closed_with_services_received_completes_it_and_owes_the_closure_notice(
        client: httpx.Client) -> None:
    referral, task = open_referral(client)
    assert referral["code"]["coding"][0]["code"] == "ecm"
    assert task["businessStatus"]["coding"][0]["system"] == STATUS_SYSTEM and status_code(task) == "3"
    task = accepted(client, task)
    response = put(client, with_status(task, "4. Outreach Initiated", "2026-11-16", "in-progress"))
    assert response.status_code == 200, response.text
    task = response.json()
    assert task["businessStatus"] == {"coding": [{"system": STATUS_SYSTEM, "version": "0.1.0", "code": "4",
                                                  "display": "Outreach Initiated"}], "text": "Outreach Initiated"}
    response = put(client, with_status(task, "Referral Loop Closed", "2026-11-24", "completed",
                                       statusReason={"text": "services received"}))
    assert response.status_code == 200, response.text
    closed = response.json()
    assert closed["statusReason"]["coding"][0]["code"] == "services-received"
    assert {"url": CLOSURE_URL, "valueDate": "2026-11-24"} in closed["extension"]

    assert client.get(f"/ServiceRequest/{referral['id']}").json()["status"] == "completed"
    found = client.get("/Task", params={"part-of": f"Task/{task['id']}", "status": "requested"}).json()
    obligations = [e["resource"] for e in found.get("entry", [])]
    assert [(o["code"]["coding"][0]["code"], o["restriction"]["period"]["end"]) for o in obligations] == [
        ("loop-closure-referring-entity", "2026-11-30")]
    assert obligations[0]["restriction"]["recipient"] == [referral["requester"]]
    clocks = client.get("/Task", params={"part-of": f"Task/{task['id']}", "status": "completed,cancelled",
                                         "_sort": "due-date"}).json()
    assert sorted((e["resource"]["code"]["coding"][0]["code"], e["resource"]["status"],
                   e["resource"]["restriction"]["period"]["end"]) for e in clocks["entry"]) == [
        ("pending-follow-up", "cancelled", "2026-12-02"),  # 30 days after Pending on 2 November
        ("status-update", "completed", "2026-12-02"),  # a month after each status's own date
        ("status-update", "completed", "2026-12-09"),
        ("status-update", "completed", "2026-12-16")]

    history = client.get(f"/Task/{task['id']}/_history").json()
    statuses = [(status_code(e["resource"]),
                 next(x["valueDateTime"] for x in e["resource"]["extension"] if x["url"] == DATE_URL))
                for e in reversed(history["entry"])]
    assert statuses == [("3", "2026-11-02"), ("1", "2026-11-09"), ("4", "2026-11-16"), ("5", "2026-11-24")]


def test_closing_without_a_reason_is_refused_and_changes_nothing(client: httpx.Client) -> None:
    referral, task = open_referral(client)
    task = accepted(client, task)
    response = put(client, with_status(task, "5", "2026-11-24", "completed"))
    assert response.status_code == 422
    assert "Task.statusReason" in issue_expressions(response.json())
    assert client.get(f"/Task/{task['id']}").json()["meta"]["versionId"] == task["meta"]["versionId"]
    assert client.get(f"/ServiceRequest/{referral['id']}").json()["status"] == "active"
    assert client.get("/Task", params={"part-of": f"Task/{task['id']}", "code": "loop-closure-referring-entity"}
                      ).json().get("entry", []) == []


def test_a_reported_status_may_skip_states_and_a_reason_only_fits_its_status(client: httpx.Client) -> None:
    _, task = open_referral(client)
    response = put(client, with_status(task, "Outreach Initiated", "2026-11-09", "in-progress",
                                       statusReason={"text": "Services Received"}))
    assert response.status_code == 422
    outcome = response.json()
    assert issue_expressions(outcome) == ["Task.statusReason"]
    assert client.get(f"/Task/{task['id']}").json()["meta"]["versionId"] == task["meta"]["versionId"]
    response = put(client, with_status(task, "Outreach Initiated", "2026-11-09", "in-progress"))
    assert response.status_code == 200, response.text  # Pending → Outreach Initiated: accepted and reached out
    assert response.json()["status"] == "in-progress"


def test_a_declined_referral_records_its_decline_reason(client: httpx.Client) -> None:
    _, task = open_referral(client)
    response = put(client, with_status(task, "2. Declined", "2026-11-09", "rejected",
                                       statusReason={"text": "Provider Lacks Capacity"}))
    assert response.status_code == 200, response.text
    assert response.json()["statusReason"]["coding"][0]["code"] == "capacity"


def test_codes_outside_the_value_sets_are_refused(client: httpx.Client) -> None:
    referral, task = open_referral(client)
    response = put(client, with_status(task, "9. Teleported", "2026-11-09", "accepted"))
    assert response.status_code == 422
    assert issue_expressions(response.json()) == ["Task.businessStatus"]
    response = client.put(f"/ServiceRequest/{referral['id']}", json={**referral, "code": {"text": "Teleportation"}},
                          headers=FHIR_JSON)
    assert response.status_code == 422
    assert issue_expressions(response.json()) == ["ServiceRequest.code"]
    assert client.get(f"/ServiceRequest/{referral['id']}").json()["meta"]["versionId"] == "1"


def test_unprofiled_task_focused_on_a_clr_referral_follows_the_rules(client: httpx.Client) -> None:
    _, task = open_referral(client)
    body = with_status(task, "Outreach Initiated", "2026-11-09", "in-progress", statusReason={"text": "other"})
    del body["meta"]
    response = put(client, body)
    assert response.status_code == 422
    assert issue_expressions(response.json()) == ["Task.statusReason"]


def test_transaction_closing_a_referral_commits_its_side_effects_with_it(client: httpx.Client) -> None:
    referral, task = open_referral(client)
    task = accepted(client, task)
    closing = with_status(task, "5. Referral Loop Closed", "2026-11-24", "completed",
                          statusReason={"text": "Services Received"})
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": closing, "request": {"method": "PUT", "url": f"Task/{task['id']}"}}]}
    response = client.post("/", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    assert response.json()["entry"][0]["response"]["status"].startswith("200")
    assert client.get(f"/ServiceRequest/{referral['id']}").json()["status"] == "completed"
    found = client.get("/Task", params={"part-of": f"Task/{task['id']}", "status": "requested"}).json()
    assert [e["resource"]["restriction"]["period"]["end"] for e in found["entry"]] == ["2026-11-30"]


def test_transaction_with_a_refused_referral_change_changes_nothing(client: httpx.Client) -> None:
    _, task = open_referral(client)
    patient = {"resourceType": "Patient", "name": [{"family": unique("member")}]}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient, "request": {"method": "POST", "url": "Patient"}},
        {"resource": with_status(task, "4", "2026-11-09", "in-progress", statusReason={"text": "other"}),
         "request": {"method": "PUT", "url": f"Task/{task['id']}"}}]}
    response = client.post("/", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 422
    assert client.get("/Patient", params={"family": patient["name"][0]["family"]}).json().get("entry", []) == []
    assert client.get(f"/Task/{task['id']}").json()["meta"]["versionId"] == task["meta"]["versionId"]


def test_transaction_creating_a_referral_and_its_task_starts_every_clock(client: httpx.Client) -> None:
    subject, clinic, provider = member(client), organization(client, "clinic"), organization(client, "provider")
    referral = referral_body(subject, clinic)
    task = referral_task_body({**referral, "id": "placeholder"}, provider)
    task["focus"] = {"reference": "urn:uuid:6d1f0c1e-5d0a-4a53-9a59-0d6f1b2a7c11"}
    del task["meta"]  # unprofiled: a CLR Task because its focus is the CLR Referral of the same Bundle
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:6d1f0c1e-5d0a-4a53-9a59-0d6f1b2a7c11", "resource": referral,
         "request": {"method": "POST", "url": "ServiceRequest"}},
        {"resource": task, "request": {"method": "POST", "url": "Task"}}]}
    response = client.post("/", json=bundle, headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    task_id = response.json()["entry"][1]["response"]["location"].split("/")[1]
    stored = client.get(f"/Task/{task_id}").json()
    assert stored["businessStatus"]["coding"][0]["system"] == STATUS_SYSTEM
    clocks = client.get("/Task", params={"part-of": f"Task/{task_id}"}).json()
    assert sorted(e["resource"]["code"]["coding"][0]["code"] for e in clocks["entry"]) == [
        "pending-follow-up", "status-update"]


def test_a_declined_referral_is_reassigned_by_the_plan_and_its_loop_stays_open(client: httpx.Client) -> None:
    """Provider A declines (lacks capacity); the plan gives the referral to provider B with a new Pending Task;
    the referral stays open, B closes the loop, the Referring Entity's closure notice is owed, and the timeline
    shows both providers."""
    referral, first = open_referral(client)
    declined = put(client, with_status(first, "2", "2026-11-06", "rejected", statusReason={"text": "capacity"}))
    assert declined.status_code == 200, declined.text
    assert client.get(f"/ServiceRequest/{referral['id']}").json()["status"] == "active"
    other = organization(client, "second-provider")
    second = created(client, referral_task_body(referral, other, since="2026-11-09"))
    assert (second["status"], second["businessStatus"]["coding"][0]["code"]) == ("requested", "3")
    closing = with_status(second, "5", "2026-11-20", "completed", statusReason={"text": "Services Received"})
    assert put(client, closing).status_code == 200
    notices = client.get("/Task", params={"part-of": f"Task/{second['id']}",
                                          "code": "loop-closure-referring-entity"}).json()["entry"]
    assert [n["resource"]["restriction"]["recipient"] for n in notices] == [[referral["requester"]]]
    assert client.get(f"/ServiceRequest/{referral['id']}").json()["status"] == "completed"
    page = client.get(f"/console/referrals/{referral['id']}")
    assert page.status_code == 200
    first_name = client.get(f"/{first['owner']['reference']}").json()["name"]
    second_name = client.get(f"/{other}").json()["name"]
    history = page.text.split('id="status-history"', 1)[1].split("</table>", 1)[0]
    assert history.index(first_name) < history.index("Declined") < history.index(second_name)
    assert "capacity" in history and "Services Received" in history
