"""Visibility never comes from references B writes (issue 17, finding 2), and ids A has or had are never taken
over (finding 3). B creates its own Task or ServiceRequest naming A's Patient, ServiceRequest, Condition or
Procedure, or a Patient known only to the plan: the write must answer exactly like the same write naming an id
that never existed, and afterwards B still cannot read the resource, its history or its versions, nor overwrite
the Member through a conditional update by CIN."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.api.helpers import FHIR_JSON
from tests.security.oracle import Exchange, assert_clean, difference, leak_report
from tests.security.route_probes import compare_ids
from tests.security.world import CIN_SYSTEM, World, b_body, never_existed_id

Link = Callable[[World, str], dict[str, Any]]
"""B's own resource that references ``id`` (of the linked type)."""


def _task(world: World, **links: Any) -> dict[str, Any]:
    return {**b_body(world, "Task"), **links}


LINKS: dict[str, tuple[str, str, Link]] = {
    "Task.for = A's Patient": ("Patient", "Patient", lambda w, i: _task(w, **{"for": {"reference": f"Patient/{i}"}})),
    "Task.for = plan-only Patient": ("Patient", "PlanOnlyPatient",
                                     lambda w, i: _task(w, **{"for": {"reference": f"Patient/{i}"}})),
    "Task.focus = A's ServiceRequest": ("ServiceRequest", "ServiceRequest",
                                        lambda w, i: _task(w, focus={"reference": f"ServiceRequest/{i}"})),
    "Task.output = A's Condition": ("Condition", "Condition", lambda w, i: _task(w, output=[
        {"type": {"text": "x"}, "valueReference": {"reference": f"Condition/{i}"}}])),
    "Task.focus = A's Procedure": ("Procedure", "Procedure",
                                   lambda w, i: _task(w, focus={"reference": f"Procedure/{i}"})),
    "Task.output = A's Observation": ("Observation", "Observation", lambda w, i: _task(w, output=[
        {"type": {"text": "x"}, "valueReference": {"reference": f"Observation/{i}"}}])),
    "ServiceRequest.subject = plan-only Patient": (
        "Patient", "PlanOnlyPatient",
        lambda w, i: {**b_body(w, "ServiceRequest"), "subject": {"reference": f"Patient/{i}"}}),
    "ServiceRequest.supportingInfo = A's Observation": (
        "Observation", "Observation",
        lambda w, i: {**b_body(w, "ServiceRequest"), "supportingInfo": [{"reference": f"Observation/{i}"}]}),
}


def _reads(world: World, resource_type: str, resource_id: str) -> list[tuple[str, Any]]:
    return [(f"GET /{resource_type}/{{id}}", lambda i: world.b.get(f"/{resource_type}/{i}")),
            (f"GET /{resource_type}/{{id}}/_history", lambda i: world.b.get(f"/{resource_type}/{i}/_history")),
            (f"GET /{resource_type}/{{id}}/_history/1", lambda i: world.b.get(f"/{resource_type}/{i}/_history/1")),
            (f"GET /{resource_type}?_id", lambda i: world.b.get(f"/{resource_type}", params={"_id": i}))]


@pytest.mark.parametrize("road", ["POST", "transaction"])
@pytest.mark.parametrize("link", list(LINKS))
def test_linking_to_what_b_cannot_see(world: World, link: str, road: str) -> None:
    resource_type, key, build = LINKS[link]
    target, fresh = world.linkable[key], never_existed_id()
    body_type = build(world, target)["resourceType"]

    def write(reference_id: str) -> Exchange:
        body = build(world, reference_id)
        if road == "POST":
            response = world.b.post(f"/{body_type}", json=body, headers=FHIR_JSON)
        else:
            response = world.b.post("/", json={"resourceType": "Bundle", "type": "transaction", "entry": [
                {"resource": body, "request": {"method": "POST", "url": body_type}}]}, headers=FHIR_JSON)
        return Exchange(f"{road} {body_type} with {link}", response)

    hidden, absent = write(target), write(fresh)
    failures = leak_report(hidden, world.secrets) + difference(hidden, absent, (target,), (fresh,))
    for label, read in _reads(world, resource_type, target):
        other = never_existed_id()
        seen = Exchange(f"after linking, {label} [linked id]", read(target))
        unknown = Exchange(f"after linking, {label} [never-existed id]", read(other))
        failures += leak_report(seen, world.secrets) + difference(seen, unknown, (target,), (other,))
    assert_clean(failures)


def test_linked_member_cannot_be_overwritten_by_cin(world: World) -> None:
    """After B's Task names A's Member (whatever the server answered), a conditional update by that Member's CIN
    is answered as for an unknown CIN and changes nothing."""
    world.b.post("/Task", json=_task(world, **{"for": {"reference": f"Patient/{world.linkable['Patient']}"}}),
                 headers=FHIR_JSON)
    before = world.plan.get(f"/Patient/{world.linkable['Patient']}").json()["meta"]["versionId"]
    overwrite = Exchange("PUT /Patient?identifier=<linked Member's CIN>", world.b.put(
        "/Patient", params={"identifier": f"{CIN_SYSTEM}|{world.link_cin}"}, json=b_body(world, "Patient"),
        headers=FHIR_JSON))
    failures = leak_report(overwrite, world.secrets)
    if overwrite.response.status_code == 200:
        failures.append(f"{overwrite.label}: HTTP 200: B overwrote A's Member")
    after = world.plan.get(f"/Patient/{world.linkable['Patient']}").json()["meta"]["versionId"]
    if after != before:
        failures.append(f"{overwrite.label}: A's Member changed from version {before} to {after}")
    assert_clean(failures)


def test_deleted_ids_are_not_taken_over(world: World) -> None:
    """B's PUT on an id A had must not create B's resource there, and whatever it answered, A's old versions
    stay unreadable to B."""
    failures: list[str] = []
    for resource_type, resource_id in sorted(world.takeover.items()):
        put = Exchange(f"PUT /{resource_type}/{{deleted id}}", world.b.put(
            f"/{resource_type}/{resource_id}", json=b_body(world, resource_type, resource_id), headers=FHIR_JSON))
        failures += leak_report(put, world.secrets)
        if put.response.status_code in (200, 201):
            failures.append(f"{put.label}: HTTP {put.response.status_code}: B took over an id A had")
        for label, read in _reads(world, resource_type, resource_id):
            failures += leak_report(Exchange(f"after the takeover attempt, {label}", read(resource_id)),
                                    world.secrets)
    assert_clean(failures)


def test_linking_does_not_open_other_roads(world: World) -> None:
    """After all the linking above, every read road to the linked resources still answers like absence."""
    linked = {"Patient": [world.linkable["Patient"], world.linkable["PlanOnlyPatient"]],
              "ServiceRequest": [world.linkable["ServiceRequest"]], "Condition": [world.linkable["Condition"]],
              "Procedure": [world.linkable["Procedure"]], "Observation": [world.linkable["Observation"]]}
    failures = compare_ids(world, "GET /{type}/{id} after linking", lambda w, t, i: w.b.get(f"/{t}/{i}"),
                           hidden=linked)
    failures += compare_ids(world, "GET /{type}/{id}/_history/1 after linking",
                            lambda w, t, i: w.b.get(f"/{t}/{i}/_history/1"), hidden=linked)
    failures += compare_ids(world, "GET /{type}?_id after linking",
                            lambda w, t, i: w.b.get(f"/{t}", params={"_id": i}), hidden=linked)
    assert_clean(failures)
