"""Subscription topics (trigger evaluation), the endpoint (SSRF) policy, channel negotiation details and the
notification Bundle shapes, without a server."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_clr.errors import FhirError
from fhir_clr.outbound.policy import EndpointPolicy, EndpointRefused
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.subscriptions.channel import ChannelReader
from fhir_clr.subscriptions.notifications import Event, StatusFacts, notification_bundle
from fhir_clr.subscriptions.topics import TopicCatalog
from tests.api.subscription_helpers import CLOSED_TOPIC, DUE_TOPIC, STATUS_TOPIC, TASK_TOPIC, subscription

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
TASK_PROFILE = "http://fhir-clr.org/fhir/StructureDefinition/clr-referral-task"
DATE_URL = "http://fhir-clr.org/fhir/StructureDefinition/date-of-referral-status-update"


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.from_directory(PROFILES)


@pytest.fixture(scope="module")
def topics(registry: SearchParamRegistry) -> TopicCatalog:
    return TopicCatalog.from_directory(PROFILES / "topics", registry)


def referral_task(status: str = "requested", code: str = "3", date: str = "2026-11-02") -> dict:
    return {"resourceType": "Task", "id": "t1", "meta": {"profile": [TASK_PROFILE],
                                                         "lastUpdated": "2026-11-02T10:00:00Z"},
            "status": status, "intent": "order", "businessStatus": {"coding": [{"code": code}]},
            "extension": [{"url": DATE_URL, "valueDateTime": date}]}


def test_every_topic_file_loads(topics: TopicCatalog) -> None:
    assert len(topics.all()) == 7
    assert topics.get(TASK_TOPIC + "|1.0") is topics.get(TASK_TOPIC)


def test_sdohcc_task_topic_skips_drafts_and_plans_but_reports_deletes(topics: TopicCatalog) -> None:
    topic = topics.get(TASK_TOPIC)
    assert topic is not None
    order = {"resourceType": "Task", "id": "a", "status": "requested", "intent": "order"}
    assert topic.fires("Task", "create", None, order)
    assert not topic.fires("Task", "create", None, {**order, "status": "draft"})
    assert not topic.fires("Task", "create", None, {**order, "intent": "plan"})
    assert topic.fires("Task", "delete", order, None)
    assert not topic.fires("ServiceRequest", "create", None, order)


def test_referral_status_topic_fires_on_status_or_date_changes_only(topics: TopicCatalog) -> None:
    topic = topics.get(STATUS_TOPIC)
    assert topic is not None
    before = referral_task()
    assert topic.fires("Task", "create", None, before)
    assert topic.fires("Task", "update", before, referral_task("accepted", "1"))
    assert topic.fires("Task", "update", before, referral_task(date="2026-11-03"))
    assert not topic.fires("Task", "update", before, {**before, "note": [{"text": "called"}]})
    plain = {k: v for k, v in before.items() if k != "meta"}
    assert not topic.fires("Task", "update", plain, {**plain, "status": "accepted"})


def test_loop_closed_and_obligation_due_topics(topics: TopicCatalog) -> None:
    closed, due = topics.get(CLOSED_TOPIC), topics.get(DUE_TOPIC)
    assert closed is not None and due is not None
    assert closed.fires("Task", "update", referral_task("in-progress"), referral_task("completed", "6"))
    assert not closed.fires("Task", "update", referral_task("completed", "6"), referral_task("completed", "6"))
    obligation = {"resourceType": "Task", "id": "o", "status": "requested", "intent": "order",
                  "meta": {"profile": ["http://fhir-clr.org/fhir/StructureDefinition/clr-notice-obligation"]}}
    assert due.fires("Task", "create", None, obligation)
    assert not due.fires("Task", "update", obligation, obligation)


def test_endpoint_policy() -> None:
    strict = EndpointPolicy.from_entries([])
    for url, reason in [("http://8.8.8.8/x", "https"), ("https://127.0.0.1/x", "non-public"),
                        ("https://[::1]/x", "non-public"), ("https://169.254.169.254/latest", "non-public"),
                        ("https://192.168.1.10/x", "non-public"), ("ftp://8.8.8.8", "https"),
                        ("https://user:pw@8.8.8.8/x", "credentials"), ("https://no-such-host.invalid/x", "resolve")]:
        with pytest.raises(EndpointRefused, match=reason):
            strict.check(url)
    strict.check("https://8.8.8.8/hook")
    allowed = EndpointPolicy.from_entries(["127.0.0.1", "10.0.0.0/8", "hooks.internal"])
    allowed.check("http://127.0.0.1:9/x")
    allowed.check("https://10.2.3.4/x")
    with pytest.raises(EndpointRefused):
        allowed.check("https://192.168.1.10/x")


def test_channel_defaults_and_limits(topics: TopicCatalog, registry: SearchParamRegistry) -> None:
    reader = ChannelReader(topics, registry, EndpointPolicy.from_entries(["127.0.0.1"]))
    body = subscription("http://127.0.0.1:9/hook", filters=("owner=Organization/1", "Task?status=requested"))
    del body["channel"]["_payload"]
    spec = reader.read(body)
    assert (spec.content, spec.max_count, spec.timeout_seconds, spec.heartbeat_seconds) == ("id-only", 20, 5, None)
    assert spec.matches("Task", {"resourceType": "Task", "id": "1", "status": "requested",
                                 "owner": {"reference": "Organization/1"}})
    assert not spec.matches("Task", {"resourceType": "Task", "id": "1", "status": "accepted",
                                     "owner": {"reference": "Organization/1"}})
    assert reader.read(subscription("http://127.0.0.1:9/hook", content="full-resource")).content == "full-resource"
    strict = ChannelReader(topics, registry, EndpointPolicy.from_entries(["8.8.8.8"]))
    with pytest.raises(FhirError, match="must use https"):
        strict.read(subscription("http://8.8.4.4/hook", content="full-resource"))
    body = subscription("http://127.0.0.1:9/hook")
    body["channel"]["extension"].append({"url": "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
                                         "backport-max-count", "valuePositiveInt": 1000})
    with pytest.raises(FhirError, match="between 1 and 100"):
        reader.read(body)


def test_notification_bundle_shapes() -> None:
    facts = StatusFacts("s1", TASK_TOPIC, "active", 7)
    events = [Event(6, "2026-11-02T10:00:00.000Z", "Task", "t1", 3, "update"),
              Event(7, "2026-11-02T10:00:01.000Z", "Task", "t2", 1, "create")]
    bundle = notification_bundle("https://fhir.example.org", facts, "event-notification", "full-resource", events,
                                 {6: {"resourceType": "Task", "id": "t1"}, 7: None})
    assert bundle["type"] == "history" and len(bundle["entry"]) == 3
    status = bundle["entry"][0]
    assert status["request"] == {"method": "GET", "url": "https://fhir.example.org/Subscription/s1/$status"}
    names = [p["name"] for p in status["resource"]["parameter"]]
    assert names == ["subscription", "topic", "status", "type", "events-since-subscription-start",
                     "notification-event", "notification-event"]
    assert bundle["entry"][1]["resource"] == {"resourceType": "Task", "id": "t1"}
    assert bundle["entry"][2]["request"] == {"method": "POST", "url": "Task/t2"}
    assert "resource" not in bundle["entry"][2]
    empty = notification_bundle("https://x", facts, "heartbeat", "empty")
    assert len(empty["entry"]) == 1
    assert "topic" not in [p["name"] for p in empty["entry"][0]["resource"]["parameter"]]
