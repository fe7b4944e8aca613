"""Searches as provider B: every advertised type, ``_include``/``_revinclude`` (named and ``*``), chains and
``_has`` through A's referral, searches by A's marker values and CINs, ``_id`` lists and ``_summary=count``: no
answer leaks A's data or names A's ids, and a search that would match only A's data answers like one that
matches nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.security.oracle import Exchange, assert_clean, difference, leak_report
from tests.security.route_probes import names_a_ids
from tests.security.world import CIN_SYSTEM, MARKER, World, marker, never_existed_id, new_cin


def _types(world: World) -> list[str]:
    return [r["type"] for r in world.b.get("/metadata").json()["rest"][0]["resource"]]


def _search(world: World, label: str, resource_type: str, params: Any) -> list[str]:
    response = world.b.get(f"/{resource_type}", params=params)
    exchange = Exchange(label, response)
    return leak_report(exchange, world.secrets) + names_a_ids(world, label, response)


def test_every_type_with_wildcard_includes(world: World) -> None:
    failures: list[str] = []
    for resource_type in _types(world):
        for params in ({"_count": "1000"}, {"_count": "1000", "_include": "*", "_revinclude": "*"},
                       {"_summary": "count"}):
            failures += _search(world, f"GET /{resource_type} {params}", resource_type, params)
    assert_clean(failures)


NAMED_INCLUDES = [
    ("Task", [("_include", "Task:patient"), ("_include", "Task:focus"), ("_include", "Task:owner"),
              ("_include", "Task:requester"), ("_revinclude", "Provenance:target")]),
    ("Task", [("_include", "Task:focus"), ("_include:iterate", "ServiceRequest:subject"),
              ("_include:iterate", "ServiceRequest:supporting-info")]),
    ("ServiceRequest", [("_include", "ServiceRequest:subject"), ("_include", "ServiceRequest:supporting-info"),
                        ("_revinclude", "Task:focus"), ("_revinclude", "Procedure:based-on"),
                        ("_revinclude", "Communication:based-on"), ("_revinclude", "Observation:based-on")]),
    ("Patient", [("_revinclude", "Task:patient"), ("_revinclude", "ServiceRequest:subject"),
                 ("_revinclude", "Condition:subject"), ("_revinclude", "Observation:subject"),
                 ("_revinclude", "DocumentReference:subject"), ("_revinclude", "Group:member")]),
    ("Organization", [("_revinclude", "Task:owner"), ("_revinclude", "ServiceRequest:performer"),
                      ("_revinclude:iterate", "Task:focus")]),
    ("Group", [("_include", "Group:member")]),
]


@pytest.mark.parametrize(("resource_type", "params"), NAMED_INCLUDES, ids=lambda v: str(v)[:60])
def test_named_includes(world: World, resource_type: str, params: list[tuple[str, str]]) -> None:
    assert_clean(_search(world, f"GET /{resource_type} {params}", resource_type, [*params, ("_count", "1000")]))


def _compare(world: World, label: str, resource_type: str, hidden: Any, absent: Any,
             ids: tuple[tuple[str, ...], tuple[str, ...]] = ((), ())) -> list[str]:
    seen = Exchange(f"{label} [A's value]", world.b.get(f"/{resource_type}", params=hidden))
    unknown = Exchange(f"{label} [unknown value]", world.b.get(f"/{resource_type}", params=absent))
    return (leak_report(seen, world.secrets) + names_a_ids(world, seen.label, seen.response)
            + difference(seen, unknown, *ids))


def _probing_pairs(world: World) -> list[tuple[str, str, dict[str, str], dict[str, str], tuple[Any, Any]]]:
    """(label, type, params matching only A's data, params matching nothing, (hidden values, absent values))."""
    cin, fresh_cin = world.cin, new_cin()
    family, fresh_family = marker("family-main"), f"{MARKER}-nobody"
    ident = marker("task-id-main")
    sr_ident = marker("sr-id-main")
    patient, fresh = world.first("Patient"), never_existed_id()
    sr = world.first("ServiceRequest")
    pairs = [
        ("Patient?identifier", "Patient", {"identifier": f"{CIN_SYSTEM}|{cin}"},
         {"identifier": f"{CIN_SYSTEM}|{fresh_cin}"}, ((cin,), (fresh_cin,))),
        ("Patient?family", "Patient", {"family": family}, {"family": fresh_family}, ((family,), (fresh_family,))),
        ("Task?identifier", "Task", {"identifier": f"urn:sec-suite|{ident}"},
         {"identifier": f"urn:sec-suite|{fresh_family}"}, ((ident,), (fresh_family,))),
        ("ServiceRequest?identifier", "ServiceRequest", {"identifier": f"urn:sec-suite|{sr_ident}"},
         {"identifier": f"urn:sec-suite|{fresh_family}"}, ((sr_ident,), (fresh_family,))),
        ("Task?patient.identifier (chain)", "Task", {"patient.identifier": f"{CIN_SYSTEM}|{cin}"},
         {"patient.identifier": f"{CIN_SYSTEM}|{fresh_cin}"}, ((cin,), (fresh_cin,))),
        ("Task?patient.family (chain)", "Task", {"patient.family": family}, {"patient.family": fresh_family},
         ((family,), (fresh_family,))),
        ("ServiceRequest?subject.identifier (chain)", "ServiceRequest",
         {"subject.identifier": f"{CIN_SYSTEM}|{cin}"}, {"subject.identifier": f"{CIN_SYSTEM}|{fresh_cin}"},
         ((cin,), (fresh_cin,))),
        ("Task?focus.identifier (chain)", "Task", {"focus.identifier": f"urn:sec-suite|{sr_ident}"},
         {"focus.identifier": f"urn:sec-suite|{fresh_family}"}, ((sr_ident,), (fresh_family,))),
        ("Procedure?based-on.performer (chain)", "Procedure", {"based-on.performer": "Organization/cbo-a"},
         {"based-on.performer": "Organization/nobody"}, (("cbo-a",), ("nobody",))),
        ("Task?patient (reference)", "Task", {"patient": f"Patient/{patient}"}, {"patient": f"Patient/{fresh}"},
         ((patient,), (fresh,))),
        ("Task?focus (reference)", "Task", {"focus": f"ServiceRequest/{sr}"}, {"focus": f"ServiceRequest/{fresh}"},
         ((sr,), (fresh,))),
        ("Condition?subject (reference)", "Condition", {"subject": f"Patient/{patient}"},
         {"subject": f"Patient/{fresh}"}, ((patient,), (fresh,))),
        ("Patient?_has:Task:patient:owner", "Patient", {"_has:Task:patient:owner": "Organization/cbo-a"},
         {"_has:Task:patient:owner": "Organization/nobody"}, (("cbo-a",), ("nobody",))),
        ("Patient?_has:ServiceRequest:subject:performer", "Patient",
         {"_has:ServiceRequest:subject:performer": "Organization/cbo-a"},
         {"_has:ServiceRequest:subject:performer": "Organization/nobody"}, (("cbo-a",), ("nobody",))),
        ("Organization?_has:Task:owner:status", "Organization", {"_has:Task:owner:status": "requested", "_id": "cbo-a"},
         {"_has:Task:owner:status": "requested", "_id": "nobody"}, (("cbo-a",), ("nobody",))),
        ("Organization?_has:Task:owner:patient.identifier", "Organization",
         {"_has:Task:owner:patient.identifier": f"{CIN_SYSTEM}|{cin}"},
         {"_has:Task:owner:patient.identifier": f"{CIN_SYSTEM}|{fresh_cin}"}, ((cin,), (fresh_cin,))),
    ]
    a_ids = [i for ids in world.a_ids.values() for i in ids]
    fresh_ids = [never_existed_id() for _ in a_ids]
    for resource_type, ids in sorted(world.a_ids.items()):
        nothing = [never_existed_id() for _ in ids]
        for summary in ({}, {"_summary": "count"}):
            pairs.append((f"{resource_type}?_id=<A's ids> {summary}", resource_type, {"_id": ",".join(ids), **summary},
                          {"_id": ",".join(nothing), **summary}, (tuple(ids), tuple(nothing))))
    pairs.append(("Task?_id=<every A id>&_summary=count", "Task", {"_id": ",".join(a_ids), "_summary": "count"},
                  {"_id": ",".join(fresh_ids), "_summary": "count"}, (tuple(a_ids), tuple(fresh_ids))))
    return pairs


def test_searches_that_match_only_a_answer_like_nothing(world: World) -> None:
    failures: list[str] = []
    for label, resource_type, hidden, absent, ids in _probing_pairs(world):
        failures += _compare(world, f"GET /{label}", resource_type, hidden, absent, ids)
        for include in ({"_include": "*"}, {"_revinclude": "*"}):
            failures += _compare(world, f"GET /{label} {include}", resource_type, {**hidden, **include},
                                 {**absent, **include}, ids)
    assert_clean(failures)


def test_b_still_sees_its_own_referral(world: World) -> None:
    """Control: the probes above are meaningful only if B's own searches work."""
    tasks = world.b.get("/Task", params={"_include": "Task:patient"}).json()
    found = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in tasks.get("entry", [])}
    assert ("Task", world.b_ids["Task"]) in found and ("Patient", world.b_ids["Patient"]) in found
    assert world.a.get(f"/Task/{world.first('Task')}").status_code == 200


def test_narrow_scopes_answer_alike(world: World) -> None:
    """B's client with only Task, Patient and ServiceRequest read/search scopes: about A's ids, inside and
    outside its scopes, it is answered as about ids that never existed (a scope refusal must not come first
    for one and not the other)."""
    from tests.security.route_probes import compare_ids

    failures = compare_ids(world, "GET /{type}/{id} (narrow scopes)", lambda w, t, i: w.b_narrow.get(f"/{t}/{i}"))
    failures += compare_ids(world, "GET /{type}?_id (narrow scopes)", lambda w, t, i: w.b_narrow.get(
        f"/{t}", params={"_id": i}))
    failures += compare_ids(world, "PUT /{type}/{id} If-Match (narrow scopes)", lambda w, t, i: w.b_narrow.put(
        f"/{t}/{i}", json={"resourceType": t, "id": i}, headers={"Content-Type": "application/fhir+json",
                                                                 "If-Match": 'W/"1"'}))
    assert_clean(failures)
