"""R4 core criteria subscriptions (``criteria = "Task?status=completed"``) against live servers and a real
receiver: created with third-party clients, activated without a handshake, notified with the resource (PUT
[endpoint]/Task/id) or an empty POST, delivered durably across a receiver outage, and never about resources
their owner cannot read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhirclient import client as smart_client
from fhirclient.models.subscription import Subscription as SmartSubscription
from fhirpy import SyncFHIRClient

from tests.api.helpers import FHIR_JSON, task, unique
from tests.api.security_client import access_token, http_for, new_client, register
from tests.api.subscription_helpers import FAST_RETRIES, failed_attempts, status_of, wait_until, webhook_server
from tests.api.webhook_receiver import Received, Receiver
from tests.conftest import LiveServer


def criteria_subscription(endpoint: str, criteria: str, tag: str, *, payload: bool = True) -> dict[str, Any]:
    """An R4 (non-Backport) rest-hook Subscription; ``tag`` is sent as a channel header to tell them apart."""
    channel: dict[str, Any] = {"type": "rest-hook", "endpoint": endpoint, "header": [f"X-Test-Tag: {tag}"]}
    if payload:
        channel["payload"] = "application/fhir+json"
    return {"resourceType": "Subscription", "status": "requested", "reason": "R4 criteria test",
            "criteria": criteria, "channel": channel}


def tagged(receiver: Receiver, tag: str) -> list[Received]:
    with receiver.lock:
        return [r for r in receiver.received if r.headers.get("x-test-tag") == tag]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    endpoint = Receiver().start()
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = webhook_server(tmp_path_factory.mktemp("criteria-subscriptions"))
    yield live
    live.stop()


@pytest.fixture()
def http(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=30, headers={"Accept": "application/fhir+json"}) as client:
        yield client


def test_fhirpy_criteria_subscription_gets_the_resource(server: LiveServer, receiver: Receiver,
                                                        http: httpx.Client) -> None:
    tag = unique("payload")
    fhir = SyncFHIRClient(server.base_url)
    created = fhir.resource("Subscription", **criteria_subscription(receiver.url, "Task?status=completed", tag))
    created.save()
    assert created["status"] == "requested"
    wait_until(lambda: status_of(http, created.id) == "active", what="activation without a handshake")
    assert tagged(receiver, tag) == []  # R4: no handshake request
    done = http.post("/Task", json=task(status="completed"), headers=FHIR_JSON).json()
    http.post("/Task", json=task(status="requested"), headers=FHIR_JSON)  # does not match
    receiver.wait_for(lambda: len(tagged(receiver, tag)) >= 1)
    [got] = tagged(receiver, tag)
    assert got.method == "PUT" and got.path == f"/hook/Task/{done['id']}"
    assert got.headers["content-type"].startswith("application/fhir+json")
    assert got.body["id"] == done["id"] and got.body["status"] == "completed"
    # An update that makes another Task match notifies it too.
    later = http.post("/Task", json=task(status="in-progress"), headers=FHIR_JSON).json()
    http.put(f"/Task/{later['id']}", json={**later, "status": "completed"}, headers=FHIR_JSON)
    receiver.wait_for(lambda: len(tagged(receiver, tag)) >= 2)
    assert tagged(receiver, tag)[1].path == f"/hook/Task/{later['id']}"
    assert tagged(receiver, tag)[1].body["meta"]["versionId"] == "2"


def test_smart_client_criteria_subscription_without_payload_gets_empty_posts(
        server: LiveServer, receiver: Receiver, http: httpx.Client) -> None:
    tag = unique("empty")
    smart = smart_client.FHIRClient(settings={"app_id": "fhir-clr-tests", "api_base": server.base_url + "/"})
    subscription = SmartSubscription(criteria_subscription(receiver.url, "Task?status=cancelled", tag, payload=False))
    subscription.create(smart.server)
    [stored] = http.get("/Subscription", params={"status": "requested,active"}).json()["entry"][-1:]
    subscription_id = stored["resource"]["id"]
    wait_until(lambda: SmartSubscription.read(subscription_id, smart.server).status == "active", what="activation")
    http.post("/Task", json=task(status="cancelled"), headers=FHIR_JSON)
    receiver.wait_for(lambda: len(tagged(receiver, tag)) >= 1)
    [got] = tagged(receiver, tag)
    assert got.method == "POST" and got.path == "/hook" and got.raw == b""
    assert "content-type" not in got.headers


def test_criteria_subscription_survives_the_receiver_being_down(server: LiveServer, http: httpx.Client) -> None:
    outage = Receiver().start()
    tag = unique("outage")
    subscribed = http.post("/Subscription", json=criteria_subscription(outage.url, "Task?status=on-hold", tag),
                           headers=FHIR_JSON).json()
    wait_until(lambda: status_of(http, subscribed["id"]) == "active", what="activation")
    outage.stop()
    held = [http.post("/Task", json=task(status="on-hold"), headers=FHIR_JSON).json()["id"] for _ in range(2)]
    # several attempts fail (connection refused) meanwhile; waited for rather than slept: a fixed second could
    # outlast the retries on a slow machine (FAST_RETRIES: 12 attempts within 1.2-2.4 s), ending in error
    wait_until(lambda: failed_attempts(http, subscribed["id"]) >= 2, what="deliveries failing during the outage")
    assert tagged(outage, tag) == []
    outage.start()
    try:
        outage.wait_for(lambda: len(tagged(outage, tag)) >= 2, timeout=20)
        assert [r.path for r in tagged(outage, tag)] == [f"/hook/Task/{i}" for i in held]  # in order, none lost
        assert status_of(http, subscribed["id"]) == "active"
    finally:
        outage.stop()


def test_bad_criteria_are_refused(http: httpx.Client, receiver: Receiver) -> None:
    for criteria, fragment in (("Task?no-such-param=1", "no-such-param"), ("Nope?status=1", "Nope"),
                               ("Task?_has:Task:focus:status=x", "_has")):
        answer = http.post("/Subscription", json=criteria_subscription(receiver.url, criteria, "x"), headers=FHIR_JSON)
        assert answer.status_code == 422, criteria
        outcome = answer.json()["issue"][0]
        assert outcome["expression"] == ["Subscription.criteria"] and fragment in outcome["details"]["text"]


PLAN = new_client("crit-plan", "Organization/plan", "plan", ["system/*.cruds"])
CBO_A = new_client("crit-cbo-a", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"])
CBO_B = new_client("crit-cbo-b", "Organization/cbo-b", "servicing-provider", ["system/*.cruds"])


def test_criteria_subscription_sees_only_what_its_owner_may_read(tmp_path: Path, receiver: Receiver) -> None:
    data_dir = tmp_path / "secured"
    data_dir.mkdir()
    for client in (PLAN, CBO_A, CBO_B):
        register(data_dir, client)
    live = LiveServer(data_dir, dict(FAST_RETRIES), dev=False)
    live.env["FHIR_CLR_LISTEN_URL"] = live.base_url
    live.start()
    try:
        plan = http_for(live.base_url, access_token(live.base_url, PLAN))
        b = http_for(live.base_url, access_token(live.base_url, CBO_B))
        for org in ("plan", "cbo-a", "cbo-b"):
            plan.put(f"/Organization/{org}", json={"resourceType": "Organization", "id": org, "name": org},
                     headers=FHIR_JSON)
        tag_b, tag_plan = unique("cbo-b"), unique("plan")
        mine = b.post("/Subscription", json=criteria_subscription(receiver.url, "Task?status=completed", tag_b),
                      headers=FHIR_JSON)
        assert mine.status_code == 201, mine.text
        theirs = plan.post("/Subscription", json=criteria_subscription(receiver.url, "Task?status=completed",
                                                                        tag_plan), headers=FHIR_JSON)
        assert theirs.status_code == 201
        wait_until(lambda: status_of(b, mine.json()["id"]) == "active", what="activation")
        wait_until(lambda: status_of(plan, theirs.json()["id"]) == "active", what="activation")
        hidden = plan.post("/Task", json=task(owner="Organization/cbo-a", status="completed",
                                              requester={"reference": "Organization/plan"}), headers=FHIR_JSON)
        seen = plan.post("/Task", json=task(owner="Organization/cbo-b", status="completed",
                                            requester={"reference": "Organization/plan"}), headers=FHIR_JSON)
        assert hidden.status_code == 201 and seen.status_code == 201
        receiver.wait_for(lambda: len(tagged(receiver, tag_plan)) >= 2 and len(tagged(receiver, tag_b)) >= 1)
        assert b.get(f"/Task/{hidden.json()['id']}").status_code == 404  # cbo-b may not read it
        assert [r.path for r in tagged(receiver, tag_b)] == [f"/hook/Task/{seen.json()['id']}"]
        assert {r.path for r in tagged(receiver, tag_plan)} == {f"/hook/Task/{hidden.json()['id']}",
                                                               f"/hook/Task/{seen.json()['id']}"}
    finally:
        live.stop()
