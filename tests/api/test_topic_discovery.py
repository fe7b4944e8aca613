"""Subscription topics are discoverable the R4 way: ``Subscription/$topic-list`` names every topic, and each
topic is served as a ``Basic`` with the R5 cross-version extensions, from which a client reads its triggers and
``canFilterBy``."""

from __future__ import annotations

import httpx

from tests.api.subscription_helpers import TASK_TOPIC

XVER = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic"


def _value(extension: dict) -> object:
    return next(v for k, v in extension.items() if k.startswith("value"))


def test_topic_list_and_basic_topics_agree_with_the_capability_statement(client: httpx.Client) -> None:
    listed = client.get("/Subscription/$topic-list").json()
    canonicals = {p["valueCanonical"] for p in listed["parameter"] if p["name"] == "subscription-topic-canonical"}
    statement = client.get("/metadata").json()
    [subscription_entry] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    advertised = {e["valueCanonical"] for e in subscription_entry["extension"]}
    assert canonicals == advertised and TASK_TOPIC in canonicals
    assert "topic-list" in {o["name"] for o in subscription_entry["operation"]}

    found = client.get("/Basic", params={"code": "http://hl7.org/fhir/fhir-types|SubscriptionTopic",
                                         "_count": "50"}).json()
    topics = {_value(next(e for e in r["extension"] if e["url"] == f"{XVER}.url")): r
              for r in (entry["resource"] for entry in found["entry"])}
    assert set(topics) == canonicals
    task_topic = topics[TASK_TOPIC]
    assert client.get(f"/Basic/{task_topic['id']}").json() == task_topic
    filters = {next(_value(p) for p in e["extension"] if p["url"] == "filterParameter")
               for e in task_topic["extension"] if e["url"] == f"{XVER}.canFilterBy"}
    assert filters == {"_lastUpdated", "code", "owner", "requester", "status"}
    [trigger] = [e for e in task_topic["extension"] if e["url"] == f"{XVER}.resourceTrigger"]
    assert {_value(p) for p in trigger["extension"] if p["url"] == "supportedInteraction"} == {
        "create", "update", "delete"}

