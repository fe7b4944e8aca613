"""``$validate`` agrees with the write path on every rule of every CLR profile.

One table, built from the compiled StructureDefinitions themselves (every element cardinality, required binding
and extension slice of every profile), drives both: each case breaks one rule of a valid example, the write
(POST, or PUT for mode=update) must refuse it, and ``$validate`` must report exactly the same issues, whether the
profile is claimed in ``meta.profile``, passed as the ``profile`` parameter or as ``?profile=``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from fhir_clr.fhirmodel.profile_check import ElementRule, SliceRule
from tests.api.clr_helpers import member, organization, referral_body, referral_task_body
from tests.api.helpers import FHIR_JSON, issue_expressions
from tests.bundled import REFERENCE

BASE = "http://fhir-clr.org/fhir"
SD = f"{BASE}/StructureDefinition"


@dataclass(frozen=True)
class Case:
    """One broken rule: the profile, what is broken, the element the refusal must name, and how to break it."""

    profile: str
    rule: str
    expression: str
    breaks: Callable[[dict[str, Any]], None]

    def __str__(self) -> str:
        return f"{self.profile.rsplit('/', 1)[1]}:{self.rule}"


def _drop(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def breaks(resource: dict[str, Any]) -> None:
        parents: list[Any] = [resource]
        for step in path[:-1]:
            parents = [c for p in parents for c in (p.get(step) if isinstance(p.get(step), list) else [p.get(step)])
                       if isinstance(c, dict)]
        for parent in parents:
            parent.pop(path[-1], None)
            assert parent, "the example needs a sibling of every required nested element"
    return breaks


def _repeat(path: tuple[str, ...], times: int) -> Callable[[dict[str, Any]], None]:
    def breaks(resource: dict[str, Any]) -> None:
        value = resource.get(path[0], {"reference": "Task/example"})
        resource[path[0]] = [copy.deepcopy(value[0] if isinstance(value, list) else value) for _ in range(times)]
    return breaks


def _bad_code(path: tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    def breaks(resource: dict[str, Any]) -> None:
        target = resource
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = {"coding": [{"system": f"{BASE}/CodeSystem/unknown", "code": "not-a-code"}]}
    return breaks


def _without_extension(url: str) -> Callable[[dict[str, Any]], None]:
    def breaks(resource: dict[str, Any]) -> None:
        resource["extension"] = [e for e in resource.get("extension", []) if e["url"] != url]
        if not resource["extension"]:
            del resource["extension"]
    return breaks


def _extension_times(url: str, times: int) -> Callable[[dict[str, Any]], None]:
    def breaks(resource: dict[str, Any]) -> None:
        present = [e for e in resource.get("extension", []) if e["url"] == url]
        instance = present[0] if present else {"url": url, "valueDate": "2026-11-20"}
        others = [e for e in resource.get("extension", []) if e["url"] != url]
        resource["extension"] = others + [copy.deepcopy(instance) for _ in range(times)]
    return breaks


def _element_cases(profile: str, resource_type: str, rule: ElementRule) -> list[Case]:
    where = ".".join((resource_type, *rule.path))
    cases = []
    if rule.min > 0:
        cases.append(Case(profile, f"{'.'.join(rule.path)} min {rule.min}", where, _drop(rule.path)))
    if rule.max is not None and len(rule.path) == 1:
        cases.append(Case(profile, f"{rule.path[0]} max {rule.max}", where, _repeat(rule.path, rule.max + 1)))
    if rule.codes is not None:
        cases.append(Case(profile, f"{'.'.join(rule.path)} binding", where, _bad_code(rule.path)))
    return cases


def _slice_cases(profile: str, resource_type: str, rule: SliceRule) -> list[Case]:
    where = f"{resource_type}.extension('{rule.url}')"
    name = rule.url.rsplit("/", 1)[1]
    cases = []
    if rule.min > 0:
        cases.append(Case(profile, f"extension {name} min {rule.min}", where, _without_extension(rule.url)))
    if rule.max is not None:
        cases.append(Case(profile, f"extension {name} max {rule.max}", where,
                          _extension_times(rule.url, rule.max + 1)))
    return cases


def profile_rule_cases() -> list[Case]:
    """A case for every rule of every compiled CLR profile."""
    cases: list[Case] = []
    for url, compiled in sorted(REFERENCE.profiles.profiles.items()):
        for element in compiled.elements:
            cases += _element_cases(url, compiled.resource_type, element)
        for rule in compiled.slices:
            cases += _slice_cases(url, compiled.resource_type, rule)
    return cases


CASES = profile_rule_cases()


@pytest.fixture(scope="module")
def examples(live_server) -> dict[str, dict[str, Any]]:
    """A valid example of every CLR profile, each accepted by POST on the live server (checked)."""
    with httpx.Client(base_url=live_server.base_url, timeout=30, headers={"Accept": "application/fhir+json"}) as http:
        subject, owner, requester = member(http), organization(http, "cbo"), organization(http, "plan")
        referral = http.post("/ServiceRequest", json=referral_body(subject, requester), headers=FHIR_JSON).json()
        found = {
            f"{SD}/clr-referral": referral_body(subject, requester),
            f"{SD}/clr-referral-task": referral_task_body(referral, owner),
            f"{SD}/clr-notice-obligation": {
                "resourceType": "Task", "meta": {"profile": [f"{SD}/clr-notice-obligation"]}, "status": "requested",
                "intent": "order", "code": {"coding": [{"system": f"{BASE}/CodeSystem/notice-kinds",
                                                        "code": "authorization-decision-member"}]},
                "focus": {"reference": f"ServiceRequest/{referral['id']}"}, "for": {"reference": subject},
                "restriction": {"repetitions": 1, "period": {"start": "2026-11-20", "end": "2026-11-27"}}},
            f"{SD}/clr-notice": {
                "resourceType": "Communication", "meta": {"profile": [f"{SD}/clr-notice"]}, "status": "completed",
                "basedOn": [{"reference": "Task/no-such-obligation"}],
                "about": [{"reference": f"ServiceRequest/{referral['id']}"}], "sent": "2026-11-21T10:00:00Z",
                "subject": {"reference": subject},
                "extension": [{"url": f"{SD}/notice-channel", "valueCoding": {
                    "system": f"{BASE}/CodeSystem/notice-channels", "code": "mail"}}]},
        }
        assert set(found) == {c.profile for c in CASES}, "every compiled profile needs an example here"
        for profile, body in found.items():
            check = http.post(f"/{body['resourceType']}/$validate", json=body, headers=FHIR_JSON).json()
            assert check["issue"][0]["severity"] == "information", (profile, check)
            assert http.post(f"/{body['resourceType']}", json=body, headers=FHIR_JSON).status_code == 201, profile
        found["referral"] = referral
        found["referral-task-stored"] = http.post("/Task", json=referral_task_body(referral, owner),
                                                  headers=FHIR_JSON).json()
        return found


def _issues(outcome: dict[str, Any]) -> list[tuple[str, str, str, tuple[str, ...]]]:
    return [(i["severity"], i["code"], i.get("details", {}).get("text", ""), tuple(i.get("expression", ())))
            for i in outcome["issue"]]


def _unclaimed(body: dict[str, Any], profile: str) -> dict[str, Any]:
    out = copy.deepcopy(body)
    out["meta"]["profile"] = [p for p in out["meta"]["profile"] if p != profile]
    if not out["meta"]["profile"]:
        del out["meta"]
    return out


@pytest.mark.parametrize("case", CASES, ids=str)
def test_validate_agrees_with_create(client: httpx.Client, examples: dict[str, dict[str, Any]], case: Case) -> None:
    body = copy.deepcopy(examples[case.profile])
    case.breaks(body)
    kind = body["resourceType"]
    written = client.post(f"/{kind}", json=body, headers=FHIR_JSON)
    assert written.status_code in (400, 422), written.text
    assert case.expression in issue_expressions(written.json()), written.text
    expected = _issues(written.json())

    claimed = client.post(f"/{kind}/$validate", json=body, headers=FHIR_JSON)
    assert claimed.status_code == 200 and _issues(claimed.json()) == expected
    bare = _unclaimed(body, case.profile)
    by_parameter = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": bare}, {"name": "mode", "valueCode": "create"},
        {"name": "profile", "valueCanonical": case.profile}]}
    assert _issues(client.post(f"/{kind}/$validate", json=by_parameter, headers=FHIR_JSON).json()) == expected
    by_query = client.post(f"/{kind}/$validate", params={"profile": case.profile}, json=bare, headers=FHIR_JSON)
    assert _issues(by_query.json()) == expected


TASK_CASES = [c for c in CASES if c.profile == f"{SD}/clr-referral-task"]


@pytest.mark.parametrize("case", TASK_CASES, ids=str)
def test_validate_update_agrees_with_put(client: httpx.Client, examples: dict[str, dict[str, Any]],
                                         case: Case) -> None:
    stored = examples["referral-task-stored"]
    body = copy.deepcopy(stored)
    body.pop("meta")
    body["meta"] = {"profile": [case.profile]}
    case.breaks(body)
    written = client.put(f"/Task/{stored['id']}", json=body, headers=FHIR_JSON)
    assert written.status_code in (400, 422), written.text
    expected = _issues(written.json())
    parameters = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": body}, {"name": "mode", "valueCode": "update"}]}
    answer = client.post(f"/Task/{stored['id']}/$validate", json=parameters, headers=FHIR_JSON)
    assert answer.status_code == 200 and _issues(answer.json()) == expected
    assert client.get(f"/Task/{stored['id']}").json()["meta"]["versionId"] == "1"


def test_bare_task_against_the_referral_task_profile(client: httpx.Client) -> None:
    """The issue's own example: a bare Task is not a valid CLR Referral Task, by any way of naming the profile."""
    bare = {"resourceType": "Task", "status": "requested", "intent": "order"}
    claimed = {**bare, "meta": {"profile": [f"{SD}/clr-referral-task"]}}
    written = client.post("/Task", json=claimed, headers=FHIR_JSON)
    assert written.status_code == 422 and "Task.businessStatus" in issue_expressions(written.json())
    answer = client.post("/Task/$validate", params={"profile": f"{SD}/clr-referral-task"}, json=bare,
                         headers=FHIR_JSON).json()
    assert _issues(answer) == _issues(written.json())
    assert all(i["severity"] == "error" for i in answer["issue"])
    plain = client.post("/Task/$validate", json=bare, headers=FHIR_JSON).json()
    assert plain["issue"][0]["severity"] == "information"


def test_validate_delete_mode(client: httpx.Client, examples: dict[str, dict[str, Any]]) -> None:
    stored = examples["referral-task-stored"]
    delete = {"resourceType": "Parameters", "parameter": [{"name": "mode", "valueCode": "delete"}]}
    ok = client.post(f"/Task/{stored['id']}/$validate", json=delete, headers=FHIR_JSON)
    assert ok.status_code == 200 and ok.json()["issue"][0]["severity"] == "information"
    assert client.post("/Task/no-such-task/$validate", json=delete, headers=FHIR_JSON).status_code == 404
    assert client.get(f"/Task/{stored['id']}").status_code == 200
