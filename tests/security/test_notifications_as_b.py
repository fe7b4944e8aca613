"""Subscriptions as provider B: B's own rest-hook Subscription to the Task topic (full-resource content) hears
about B's referral, and nothing it receives — notifications, ``$events``, ``$status`` — carries A's data or
names A's ids, although the plan and A keep changing A's referral."""

from __future__ import annotations

import time

import httpx

from tests.api.helpers import FHIR_JSON
from tests.security.oracle import Exchange, assert_clean, leak_report
from tests.security.route_probes import names_a_ids
from tests.security.world import World, marker


def _touch(http: httpx.Client, resource_type: str, resource_id: str, note: str) -> None:
    current = http.get(f"/{resource_type}/{resource_id}").json()
    current["note"] = [*current.get("note", []), {"text": note}]
    response = http.put(f"/{resource_type}/{resource_id}", json=current, headers=FHIR_JSON)
    assert response.status_code == 200, response.text


def test_b_hears_only_of_its_own_referrals(world: World) -> None:
    assert world.receiver is not None
    _touch(world.plan, "Task", world.first("Task"), marker("plan-note-for-notifications"))
    _touch(world.a, "Task", world.first("Task"), marker("a-note-for-notifications"))
    _touch(world.b, "Task", world.b_ids["Task"], "B's own change")  # after A's: its notification comes last
    own = f"Task/{world.b_ids['Task']}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any(
            own in n.raw.decode("utf-8", "replace") for n in world.receiver.notifications(world.b_subscription)):
        time.sleep(0.1)
    received = world.receiver.notifications(world.b_subscription)
    assert any(own in n.raw.decode("utf-8", "replace") for n in received), (
        "control: B's subscription never heard of B's own Task, so the check below would prove nothing")
    failures: list[str] = []
    for number, notification in enumerate(received):
        text = notification.raw.decode("utf-8", "replace")
        as_response = httpx.Response(200, content=notification.raw, headers=notification.headers,
                                     request=httpx.Request("POST", world.receiver.url))
        label = f"notification {number} to B's subscription ({notification.kind})"
        failures += leak_report(Exchange(label, as_response), world.secrets)
        failures += names_a_ids(world, label, as_response)
        assert text  # every notification has a body
    for operation in ("$events", "$status", "$delivery-attempts"):
        response = world.b.get(f"/Subscription/{world.b_subscription}/{operation}")
        assert response.status_code == 200, f"control: {operation} on B's own subscription: {response.text}"
        failures += leak_report(Exchange(f"GET B's Subscription {operation}", response), world.secrets)
        failures += names_a_ids(world, f"GET B's Subscription {operation}", response)
    assert_clean(failures)
