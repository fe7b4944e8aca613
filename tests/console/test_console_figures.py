"""Every figure the console and the CLR operations show a provider is counted through that provider's access
policy (a live secured server; pages fetched over HTTP with the provider's access token): cbo-a has three
referrals and cbo-b one, so cbo-b's worklist, compliance figures, imports list, subscriptions page,
``$clr-worklist`` and ``$clr-export`` count one referral and show nothing of cbo-a's, while the plan still sees
all four. The metrics quick view holds process-wide figures: the plan's only."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from fhir_clr.clr.config import bundled_rules
from tests.api.clr_helpers import created, referral_body, referral_task_body
from tests.api.helpers import FHIR_JSON
from tests.api.security_client import access_token, http_for, new_client, start_secured
from tests.api.subscription_helpers import FAST_RETRIES, subscribe, subscription
from tests.api.test_rtf_import import row, rtf, valid_npi
from tests.conftest import LiveServer

SYSTEMS = bundled_rules()["identifier_systems"]
PLAN = new_client("figures-plan", "Organization/plan", "plan", ["system/*.cruds"])
CBO_A = new_client("figures-cbo-a", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"])
CBO_B = new_client("figures-cbo-b", "Organization/cbo-b", "servicing-provider", ["system/*.cruds"], ec=True)
NPI = {"cbo-a": valid_npi("611111111"), "cbo-b": valid_npi("622222222")}
REFERRED = "2026-01-05"
REFERRALS = {"cbo-a": 3, "cbo-b": 1}


@dataclass
class World:
    """The server and one HTTP client (bearer token) per organization."""

    server: LiveServer
    plan: httpx.Client
    a: httpx.Client
    b: httpx.Client
    subscription_a: str


def _referral(plan: httpx.Client, provider: str, number: int) -> None:
    member = created(plan, {"resourceType": "Patient", "name": [{"text": f"Member {number} of {provider}"}],
                            "identifier": [{"system": SYSTEMS["cin"], "value": f"6{number}{provider[-1]}23456X"}]})
    referral = created(plan, referral_body(f"Patient/{member['id']}", "Organization/plan", authored=REFERRED,
                                           performer=[{"reference": f"Organization/{provider}"}]))
    created(plan, referral_task_body(referral, f"Organization/{provider}", since=REFERRED))


def _import(http: httpx.Client, filename: str, npi: str) -> None:
    """A received file whose one row names no Member (so no referral changes and every count stays)."""
    data = rtf([row("69999999Z", npi, "1", date.today() - timedelta(days=1))])
    started = http.post("/$import", params={"kind": "rtf", "program": "ecm", "filename": filename}, content=data)
    assert started.status_code == 202, started.text
    for _ in range(400):
        status = http.get(started.headers["Content-Location"])
        if status.status_code != 202:
            assert status.status_code == 200, status.text
            return
        time.sleep(0.05)
    raise AssertionError("the import did not finish")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """cbo-a: three January referrals, a received file and a Subscription; cbo-b: one referral and a file; the
    plan: a file of its own."""
    data_dir = tmp_path_factory.mktemp("console-figures")
    server = start_secured(data_dir, PLAN, CBO_A, CBO_B, env=FAST_RETRIES)
    plan = http_for(server.base_url, access_token(server.base_url, PLAN))
    for org in ("plan", "cbo-a", "cbo-b"):
        body: dict[str, Any] = {"resourceType": "Organization", "id": org, "name": org}
        if org in NPI:
            body["identifier"] = [{"system": SYSTEMS["npi"], "value": NPI[org]}]
        assert plan.put(f"/Organization/{org}", json=body, headers=FHIR_JSON).status_code in (200, 201)
    for provider, count in REFERRALS.items():
        for number in range(count):
            _referral(plan, provider, number)
    a = http_for(server.base_url, access_token(server.base_url, CBO_A))
    b = http_for(server.base_url, access_token(server.base_url, CBO_B))
    _import(a, "a-statuses.csv", NPI["cbo-a"])
    _import(b, "b-statuses.csv", NPI["cbo-b"])
    _import(plan, "plan-statuses.csv", NPI["cbo-a"])
    subscription_a = subscribe(a, subscription("http://127.0.0.1:9/hook"))["id"]
    yield World(server, plan, a, b, subscription_a)
    for http in (plan, a, b):
        http.close()
    server.stop()


def _page(http: httpx.Client, path: str, **params: str) -> str:
    response = http.get(path, params=params, headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    return response.text


def _group_count(html: str, group: str) -> int:
    match = re.search(rf'data-group="{group}">(\d+)<', html)
    assert match is not None, f"no count for {group}"
    return int(match.group(1))


def _all_months_referrals(html: str) -> int:
    match = re.search(r'<tr data-month="all" class="total"><th scope="row">All months</th><td class="num">(\d+)<',
                      html)
    assert match is not None
    return int(match.group(1))


def test_worklist_counts_and_rows_are_the_callers(world: World) -> None:
    counts = {name: _group_count(_page(http, "/console/", group="stale-status"), "stale-status")
              for name, http in (("plan", world.plan), ("cbo-a", world.a), ("cbo-b", world.b))}
    assert counts == {"plan": 4, "cbo-a": 3, "cbo-b": 1}
    rows = _page(world.b, "/console/", group="stale-status", fresh="1")
    assert "Member 0 of cbo-b" in rows and "of cbo-a" not in rows


def test_worklist_operation_counts_the_callers_referrals(world: World) -> None:
    def stale(http: httpx.Client) -> int:
        parameters = http.get("/$clr-worklist").json()["parameter"]
        group = next(p for p in parameters if p["name"] == "stale-status")
        return next(part["valueInteger"] for part in group["part"] if part["name"] == "count")
    assert (stale(world.plan), stale(world.a), stale(world.b)) == (4, 3, 1)


def test_compliance_figures_are_the_callers(world: World) -> None:
    figures = {name: _all_months_referrals(_page(http, "/console/compliance", **{"from": "2026-01", "to": "2026-01"}))
               for name, http in (("plan", world.plan), ("cbo-a", world.a), ("cbo-b", world.b))}
    assert figures == {"plan": 4, "cbo-a": 3, "cbo-b": 1}


def test_imports_list_shows_the_callers_files_only(world: World) -> None:
    def files(http: httpx.Client) -> set[str]:
        return set(re.findall(r'>([a-z]+-statuses\.csv)</a>', _page(http, "/console/imports")))
    assert files(world.plan) == {"a-statuses.csv", "b-statuses.csv", "plan-statuses.csv"}
    assert files(world.a) == {"a-statuses.csv"}
    assert files(world.b) == {"b-statuses.csv"}
    ids = dict((name, document) for document, name in re.findall(
        r'<a href="/console/imports/([^"#/]+)">([a-z]+-statuses\.csv)</a>', _page(world.plan, "/console/imports")))
    for path in (f"/console/imports/{ids['a-statuses.csv']}", f"/console/imports/{ids['a-statuses.csv']}/"
                 "rejected-rows.csv"):
        assert world.a.get(path).status_code == 200, path
        assert world.b.get(path).status_code == 404, path
    assert world.a.get(f"/console/imports/{ids['a-statuses.csv']}/rejected-rows.csv").text.splitlines()[1] == (
        '2,,,match,"None of your organization\'s open referrals matches this row\'s Member CIN, service and '
        'servicing provider NPI"')


def test_subscriptions_page_shows_the_callers_subscriptions_only(world: World) -> None:
    assert f'data-subscription="{world.subscription_a}"' in _page(world.a, "/console/subscriptions")
    theirs = _page(world.b, "/console/subscriptions")
    assert world.subscription_a not in theirs and "No subscription yet." in theirs


def test_export_holds_the_callers_referrals_only(world: World) -> None:
    def lines(http: httpx.Client, provider: str) -> int:
        response = http.get("/$clr-export", params={"kind": "rtf", "program": "ecm", "provider": NPI[provider],
                                                    "period": "2026-01"})
        assert response.status_code == 200, response.text
        return len(response.text.splitlines()) - 1
    assert (lines(world.plan, "cbo-a"), lines(world.a, "cbo-a"), lines(world.b, "cbo-b")) == (3, 3, 1)
    assert lines(world.b, "cbo-a") == 0


def test_metrics_quick_view_is_the_plans(world: World) -> None:
    plan_view = _page(world.plan, "/console/metrics")
    assert 'id="obligations"' in plan_view and 'href="/console/metrics"' in plan_view
    refused = world.b.get("/console/metrics", headers={"Accept": "text/html"})
    assert refused.status_code == 403
    assert 'id="obligations"' not in refused.text and "fhir_clr_" not in refused.text
    assert 'href="/console/metrics"' not in _page(world.b, "/console/")


def test_cached_figures_are_never_served_to_a_token_with_other_scopes(world: World) -> None:
    months = {"from": "2026-01", "to": "2026-01"}
    assert _all_months_referrals(_page(world.b, "/console/compliance", **months)) == 1  # now cached
    base = world.server.base_url
    with http_for(base, access_token(base, CBO_B, "system/Organization.rs")) as directory_only:
        refused = directory_only.get("/console/compliance", params=months, headers={"Accept": "text/html"})
    assert refused.status_code == 403, refused.text
    assert 'data-month="all"' not in refused.text
