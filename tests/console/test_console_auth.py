"""The console behind the API's authentication (a server without ``--dev``): sign-in with an access token in
Chromium, what the cookie may and may not do, per-organization visibility, and cross-site posts refused."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.api.clr_helpers import created, referral_body, referral_task_body
from tests.api.helpers import FHIR_JSON
from tests.api.security_client import access_token, http_for, new_client, register, start_secured
from tests.api.subscription_helpers import wait_until
from tests.conftest import LiveServer
from tests.console.conftest import screenshot

PLAN = new_client("console-plan", "Organization/plan", "plan", ["system/*.cruds"])
CBO_A = new_client("console-cbo-a", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"], ec=True)


@dataclass(frozen=True, slots=True)
class Secured:
    """The secured server and the referral ids: one for cbo-a, one for cbo-b."""

    server: LiveServer
    for_a: str
    for_b: str


def _referral(http: httpx.Client, provider: str) -> str:
    """A January referral from the plan to ``provider`` (its decision long overdue) and its Pending Task."""
    patient = created(http, {"resourceType": "Patient", "name": [{"text": f"Member of {provider}"}]})
    referral = created(http, referral_body(f"Patient/{patient['id']}", "Organization/plan", authored="2026-01-05",
                                           performer=[{"reference": f"Organization/{provider}"}]))
    created(http, referral_task_body(referral, f"Organization/{provider}", since="2026-01-05"))
    return str(referral["id"])


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """A server with authentication on, two providers' referrals, and the plan and cbo-a clients registered."""
    data_dir = tmp_path_factory.mktemp("console-secured")
    server = start_secured(data_dir, PLAN, CBO_A)
    with http_for(server.base_url, access_token(server.base_url, PLAN)) as plan:
        for org in ("plan", "cbo-a", "cbo-b"):
            plan.put(f"/Organization/{org}", json={"resourceType": "Organization", "id": org, "name": org},
                     headers=FHIR_JSON)
        ids = _referral(plan, "cbo-a"), _referral(plan, "cbo-b")
    yield Secured(server, *ids)
    server.stop()


def _sign_in(page: Page, base: str, token: str) -> None:
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_sign_in_with_an_access_token_and_out_again(secured: Secured, page: Page) -> None:
    base = secured.server.base_url
    page.goto(f"{base}/console/compliance")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert page.url == f"{base}/console/login?next=%2Fconsole%2Fcompliance"
    screenshot(page, "sign-in")

    _sign_in(page, base, "not-a-token")
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    expect(page.get_by_label("Access token")).to_have_attribute("aria-invalid", "true")

    _sign_in(page, base, access_token(base, PLAN))
    expect(page.get_by_role("heading", level=1)).to_have_text("Compliance")
    cookie = next(c for c in page.context.cookies() if c["name"] == "fhir_clr_console")
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Strict", "/console")
    assert 8 * 3600 - 60 < cookie["expires"] - time.time() <= 8 * 3600  # a session, longer than the token

    page.goto(f"{base}/console/")
    assert int(page.locator('[data-group="overdue"]').inner_text()) == 6  # decision, status update, follow-up
    assert int(page.locator('[data-group="stale-status"]').inner_text()) == 2
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    page.goto(f"{base}/console/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")


def test_a_provider_sees_only_its_own_referrals(secured: Secured, page: Page) -> None:
    base = secured.server.base_url
    page.goto(f"{base}/console/login")
    _sign_in(page, base, access_token(base, CBO_A))
    expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
    assert int(page.locator('[data-group="stale-status"]').inner_text()) == 1
    assert int(page.locator('[data-group="overdue"]').inner_text()) == 0  # notice obligations are the plan's
    page.goto(f"{base}/console/referrals/{secured.for_a}")
    expect(page.get_by_role("heading", level=1)).to_have_text("Referral timeline")
    expect(page.locator("dl.facts").first).to_contain_text("Member of cbo-a")
    response = page.goto(f"{base}/console/referrals/{secured.for_b}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Error 404")


def _cookie(token: str) -> dict[str, Any]:
    return {"Cookie": f"fhir_clr_console={token}"}


def test_the_session_opens_the_console_only_and_cross_site_posts_are_refused(secured: Secured) -> None:
    base = secured.server.base_url
    token = access_token(base, PLAN)
    with httpx.Client(base_url=base, timeout=30.0) as http:
        signed_in = http.post("/console/login", data={"token": token, "next": "/console/"})
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/console/"
        session = signed_in.cookies["fhir_clr_console"]
        assert session != token
        http.cookies.clear()  # each request below says which credential it carries
        assert http.get("/console/", headers=_cookie(session)).status_code == 200
        # a session is not an access token, and an access token is not a session
        assert http.get("/Task", headers={"Authorization": f"Bearer {session}"}).status_code == 401
        assert http.get("/Task", headers=_cookie(session)).status_code == 401
        assert http.get("/console/", headers=_cookie(token)).status_code == 303
        assert http.get("/console/", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        forged = http.post("/console/subscriptions/any/resend", headers={**_cookie(session),
                                                                        "Sec-Fetch-Site": "cross-site"})
        assert forged.status_code == 403
        assert http.get("/console/static/console.css").status_code == 200
        page = http.get("/console/")
        assert page.status_code == 303 and page.headers["location"] == "/console/login?next=%2Fconsole%2F"
        assert http.get("/metrics").status_code == 401  # plan-wide counts need a plan token (issue 17)


def test_disabling_the_client_ends_its_console_sessions(secured: Secured) -> None:
    base = secured.server.base_url
    client = new_client("console-short-lived", "Organization/plan", "plan", ["system/*.cruds"])
    register(secured.server.data_dir, client)
    with httpx.Client(base_url=base, timeout=30.0) as http:
        session = http.post("/console/login", data={"token": access_token(base, client)}).cookies["fhir_clr_console"]
        http.cookies.clear()
        assert http.get("/console/", headers=_cookie(session)).status_code == 200
        subprocess.run([sys.executable, "-m", "fhir_clr.cli", "clients", "disable", client.client_id, "--data",
                        str(secured.server.data_dir)], check=True, capture_output=True)
        wait_until(lambda: http.get("/console/", headers=_cookie(session)).status_code == 303,
                   what="the disabled client's session ending")
