"""The subscription topics the server writes as ``Basic`` are conformance data: on a live secured server every
authenticated client reads, searches and reads the history of them, while every other Basic stays inside its
organization, and no client (not even the plan) can create, change or delete a topic Basic, so none can use
that code to show data to other organizations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import FHIR_JSON
from tests.api.security_client import access_token, http_for, new_client, register
from tests.conftest import LiveServer

PLAN = new_client("topic-plan", "Organization/plan", "plan", ["system/*.cruds"])
CBO_A = new_client("topic-cbo-a", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"])
CBO_B = new_client("topic-cbo-b", "Organization/cbo-b", "servicing-provider", ["system/*.cruds"])
TOPIC_CODE = "http://hl7.org/fhir/fhir-types|SubscriptionTopic"
TOPIC_CODING = {"system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic"}


@dataclass
class World:
    """The server, one HTTP client per organization, the topic canonicals and two Basics that are not topics."""

    server: LiveServer
    plan: httpx.Client
    a: httpx.Client
    b: httpx.Client
    canonicals: set[str]
    b_basic: str
    plan_basic: str


def _basic(code: str) -> dict[str, Any]:
    return {"resourceType": "Basic", "code": {"coding": [{"system": "http://example.org/basic-kind", "code": code}]}}


def _created(response: httpx.Response) -> str:
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data_dir: Path = tmp_path_factory.mktemp("topic-access-server")
    for client in (PLAN, CBO_A, CBO_B):
        register(data_dir, client)
    server = LiveServer(data_dir, dev=False)
    server.start()
    plan, a, b = (http_for(server.base_url, access_token(server.base_url, c)) for c in (PLAN, CBO_A, CBO_B))
    listed = plan.get("/Subscription/$topic-list").json()
    canonicals = {p["valueCanonical"] for p in listed["parameter"] if p["name"] == "subscription-topic-canonical"}
    b_basic = _created(b.post("/Basic", json=_basic("b-private"), headers=FHIR_JSON))
    plan_basic = _created(plan.post("/Basic", json=_basic("plan-private"), headers=FHIR_JSON))
    yield World(server, plan, a, b, canonicals, b_basic, plan_basic)
    for http in (plan, a, b):
        http.close()
    server.stop()


def _topic_ids(http: httpx.Client, **params: str) -> set[str]:
    bundle = http.get("/Basic", params={"_count": "100", **params})
    assert bundle.status_code == 200, bundle.text
    return {e["resource"]["id"] for e in bundle.json().get("entry", [])}


def test_every_client_reads_and_searches_the_topics(world: World) -> None:
    expected = _topic_ids(world.plan, code=TOPIC_CODE)
    assert len(expected) == len(world.canonicals) > 0
    for http in (world.a, world.b):
        assert _topic_ids(http, code=TOPIC_CODE) == expected
        topic_id = sorted(expected)[0]
        read = http.get(f"/Basic/{topic_id}")
        assert read.status_code == 200 and read.json() == world.plan.get(f"/Basic/{topic_id}").json()
        history = http.get(f"/Basic/{topic_id}/_history").json()
        assert [e["resource"]["id"] for e in history["entry"]] == [topic_id]
        assert http.get(f"/Basic/{topic_id}/_history/1").status_code == 200
        assert http.get("/Basic", params={"code": TOPIC_CODE, "_summary": "count"}).json()["total"] == len(expected)


def test_other_basics_stay_inside_their_organization(world: World) -> None:
    topics = _topic_ids(world.plan, code=TOPIC_CODE)
    assert _topic_ids(world.a) == topics
    assert _topic_ids(world.b) == topics | {world.b_basic}
    assert _topic_ids(world.plan) >= topics | {world.b_basic, world.plan_basic}
    absent = world.a.get("/Basic/never-was-here")
    for hidden in (world.b_basic, world.plan_basic):
        answer = world.a.get(f"/Basic/{hidden}")
        assert answer.status_code == absent.status_code == 404
        assert answer.content.replace(hidden.encode(), b"ID") == absent.content.replace(b"never-was-here", b"ID")
        assert world.a.get(f"/Basic/{hidden}/_history").status_code == 404
    assert _topic_ids(world.a, code="http://example.org/basic-kind|b-private") == set()


def test_no_client_writes_or_deletes_a_topic(world: World) -> None:
    topic_id = sorted(_topic_ids(world.plan, code=TOPIC_CODE))[0]
    before = world.plan.get(f"/Basic/{topic_id}").json()
    forged = {"resourceType": "Basic", "code": {"coding": [TOPIC_CODING]},
              "extension": [{"url": "http://example.org/leak", "valueString": "visible to everyone?"}]}
    for http in (world.a, world.plan):
        assert http.post("/Basic", json=forged, headers=FHIR_JSON).status_code == 403
        changed = {**before, "extension": before["extension"][:1]}
        assert http.put(f"/Basic/{topic_id}", json=changed, headers=FHIR_JSON).status_code == 403
        patched = http.patch(f"/Basic/{topic_id}", content=b'[{"op": "remove", "path": "/extension/0"}]',
                             headers={"Content-Type": "application/json-patch+json"})
        assert patched.status_code == 403, patched.text
        assert http.delete(f"/Basic/{topic_id}").status_code == 403
        entry = {"request": {"method": "DELETE", "url": f"Basic/{topic_id}"}}
        bundle = http.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [entry]},
                           headers=FHIR_JSON)
        assert bundle.status_code == 403, bundle.text
    # turning one's own Basic into a topic would show it to every organization
    own = world.b.get(f"/Basic/{world.b_basic}").json()
    recoded = {**own, "code": {"coding": [TOPIC_CODING]}}
    assert world.b.put(f"/Basic/{world.b_basic}", json=recoded, headers=FHIR_JSON).status_code == 403
    assert world.plan.get(f"/Basic/{topic_id}").json() == before
    assert world.a.get(f"/Basic/{world.b_basic}").status_code == 404
    assert _topic_ids(world.a) == _topic_ids(world.plan, code=TOPIC_CODE)
