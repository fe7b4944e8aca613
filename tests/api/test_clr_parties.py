"""Who may change what in a CLR referral, on a live server with authentication on: the plan, the Referring
Entity (the clinic that requested the referral) and the servicing provider (the referral Task's owner) each
hold their own token, and a change outside a party's role is a 403 naming the element, with nothing written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.clr_helpers import AUTH_URL, created, decided, referral_body, referral_task_body, with_status
from tests.api.helpers import FHIR_JSON, issue_expressions
from tests.api.security_client import access_token, http_for, new_client, start_secured

PLAN = new_client("plan-app", "Organization/plan", "plan", ["system/*.cruds"])
CLINIC = new_client("clinic-app", "Organization/clinic", "referring-entity", ["system/*.cruds"])
PROVIDER = new_client("provider-app", "Organization/provider", "servicing-provider", ["system/*.cruds"], ec=True)


@dataclass
class Parties:
    """One HTTP client per party, and a referral with its Pending Task."""

    plan: httpx.Client
    clinic: httpx.Client
    provider: httpx.Client
    referral: dict[str, Any]
    task: dict[str, Any]


@pytest.fixture(scope="module")
def parties(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parties]:
    data_dir: Path = tmp_path_factory.mktemp("clr-parties")
    server = start_secured(data_dir, PLAN, CLINIC, PROVIDER)
    plan, clinic, provider = (http_for(server.base_url, access_token(server.base_url, c))
                              for c in (PLAN, CLINIC, PROVIDER))
    for org in ("plan", "clinic", "provider"):
        assert plan.put(f"/Organization/{org}", json={"resourceType": "Organization", "id": org, "name": org},
                        headers=FHIR_JSON).status_code in (200, 201)
    # the clinic registers its Member itself: a referral may only name a Patient the clinic can see
    subject = created(clinic, {"resourceType": "Patient", "name": [{"family": "Member"}]})
    referral = created(clinic, referral_body(f"Patient/{subject['id']}", "Organization/clinic",
                                             performer=[{"reference": "Organization/provider"}]))
    task = created(clinic, referral_task_body(referral, "Organization/provider", since="2026-10-01"))
    yield Parties(plan, clinic, provider, referral, task)
    for http in (plan, clinic, provider):
        http.close()
    server.stop()


def assert_unchanged(http: httpx.Client, resource: dict[str, Any]) -> None:
    current = http.get(f"/{resource['resourceType']}/{resource['id']}").json()
    assert current["meta"]["versionId"] == resource["meta"]["versionId"]


def test_provider_may_not_change_requester_owned_elements(parties: Parties) -> None:
    body = {**parties.task, "requester": {"reference": "Organization/provider"}}
    response = parties.provider.put(f"/Task/{parties.task['id']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 403
    assert issue_expressions(response.json()) == ["Task.requester"]
    assert_unchanged(parties.plan, parties.task)


def test_provider_may_not_record_the_authorization_decision(parties: Parties) -> None:
    body = decided(parties.referral, "approved", "2026-01-05T10:00:00-08:00")
    response = parties.provider.put(f"/ServiceRequest/{parties.referral['id']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 403
    assert issue_expressions(response.json()) == [f"ServiceRequest.extension('{AUTH_URL}')"]
    assert_unchanged(parties.plan, parties.referral)


def test_referring_entity_may_not_accept_on_the_providers_behalf(parties: Parties) -> None:
    body = with_status(parties.task, "Accepted", "2026-11-02", "accepted")
    response = parties.clinic.put(f"/Task/{parties.task['id']}", json=body, headers=FHIR_JSON)
    assert response.status_code == 403
    assert issue_expressions(response.json()) == ["Task.businessStatus"]
    assert "Only the owner or the plan" in response.json()["issue"][0]["details"]["text"]
    assert_unchanged(parties.plan, parties.task)


def test_each_party_makes_its_own_changes(parties: Parties) -> None:
    accepted = parties.provider.put(f"/Task/{parties.task['id']}", headers=FHIR_JSON, json=with_status(
        parties.task, "Accepted", "2026-11-02", "accepted"))
    assert accepted.status_code == 200, accepted.text
    approved = parties.plan.put(f"/ServiceRequest/{parties.referral['id']}", headers=FHIR_JSON, json=decided(
        parties.referral, "approved", "2026-01-05T10:00:00-08:00"))
    assert approved.status_code == 200, approved.text
    notices = parties.plan.get("/Task", params={"focus": f"ServiceRequest/{parties.referral['id']}",
                                                "code": "authorization-decision-referring-entity"}).json()
    assert notices["total"] == 1
