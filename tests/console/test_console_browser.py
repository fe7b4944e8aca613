"""The plan staff console in headless Chromium against a live server holding the scenario of ``scenario.py``:
the overdue notice on the worklist, the click through to the referral's timeline, the RTF's bad rows on the
imports pages, the compliance figures against ``fhir-clr report compliance``, the re-send button, and the
accessibility of every page (axe-core, headings, labels, keyboard). Each page is saved as a screenshot."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.api.subscription_helpers import STATUS_TOPIC, status_of, subscribe, subscription, wait_until
from tests.api.webhook_receiver import Receiver
from tests.console.conftest import screenshot
from tests.console.scenario import CLINIC, DUE_TODAY_NAME, MEMBER_CIN, MEMBER_NAME, Scenario, start_scenario


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """The scenario's server, left running for the module."""
    played = start_scenario(tmp_path_factory.mktemp("console"))
    yield played
    played.server.stop()


def test_worklist_shows_the_overdue_notice_and_leads_to_the_timeline(scenario: Scenario, page: Page) -> None:
    base = scenario.server.base_url
    page.goto(f"{base}/console/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Worklist")
    overdue = int(page.locator('[data-group="overdue"]').inner_text())
    assert overdue >= 1
    member_row = page.locator("#worklist tbody tr", has_text=MEMBER_CIN).filter(has_text="Authorization decision due")
    expect(member_row).to_have_count(1)
    expect(member_row).to_contain_text("2026-11-")
    expect(member_row).to_contain_text("late")
    expect(member_row).to_contain_text(CLINIC)
    screenshot(page, "worklist")

    page.get_by_role("link", name="Notices due today").click()
    due_today = page.locator("#worklist tbody tr")
    expect(due_today).to_have_count(1)
    expect(due_today).to_contain_text(DUE_TODAY_NAME)
    expect(due_today).to_contain_text("due today")
    assert int(page.locator('[data-group="due-this-week"]').inner_text()) >= 1

    page.get_by_role("link", name="Overdue notices").click()
    page.select_option("#referrer", label=CLINIC)
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("#worklist tbody tr")).not_to_have_count(0)
    assert all(CLINIC in text for text in page.locator("#worklist tbody tr").all_inner_texts())

    page.get_by_role("link", name=f"{MEMBER_NAME} (CIN {MEMBER_CIN})").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Referral timeline")
    assert page.url.endswith(f"/console/referrals/{scenario.referral_id}")
    history = page.locator("#status-history tbody tr")
    expect(history).to_have_count(2)
    expect(history.nth(0)).to_contain_text("Pending")
    expect(history.nth(0)).to_contain_text("2026-11-02")
    expect(history.nth(1)).to_contain_text("Accepted")
    expect(history.nth(1)).to_contain_text("2026-11-18")
    expect(history.nth(1).get_by_role("link", name="file row 2")).to_have_attribute(
        "href", f"/console/imports/{scenario.rtf_document_id}")
    decision = page.locator("#notices tbody tr", has_text="Authorization decision due")
    expect(decision).to_contain_text("2026-11-09")
    expect(decision.locator(".tag")).to_have_text("overdue")
    screenshot(page, "referral-timeline")


def test_rtf_bad_rows_show_on_the_imports_pages(scenario: Scenario, page: Page) -> None:
    base = scenario.server.base_url
    page.goto(f"{base}/console/imports")
    line = page.locator("#imports tbody tr", has_text="rtf-november.csv")
    expect(line).to_have_count(1)
    cells = line.locator("td").all_inner_texts()
    assert cells[1:7] == ["RTF", "rtf-november.csv", "3", "1", "0", "2"]
    screenshot(page, "imports")

    line.get_by_role("link", name="2").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("RTF file rtf-november.csv")
    rejected = page.locator("#rejected-rows tbody tr")
    expect(rejected).to_have_count(2)
    expect(rejected.nth(0)).to_contain_text("No Member has this CIN")
    expect(rejected.nth(0)).to_contain_text("00000000Z")
    expect(rejected.nth(1)).to_contain_text("Teleported")
    expect(rejected.nth(1)).to_contain_text("Referral Status")
    screenshot(page, "import-rejects")

    with page.expect_download() as download:
        page.get_by_role("link", name="Download the rejected rows (CSV)").click()
    lines = Path(download.value.path()).read_text(encoding="utf-8").splitlines()
    assert lines[0] == "row,column,value,rule,message"
    assert [line.split(",")[0] for line in lines[1:]] == ["3", "4"]


def _report(scenario: Scenario) -> dict[str, object]:
    """``fhir-clr report compliance`` for November 2026 on the scenario's data, as JSON."""
    done = subprocess.run(
        [sys.executable, "-m", "fhir_clr.cli", "report", "compliance", "--from", "2026-11-01", "--to", "2026-11-30",
         "--as-of", "2026-11-20", "--format", "json", "--data", str(scenario.server.data_dir)],
        capture_output=True, text=True, check=True, env=scenario.server.env)
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def test_compliance_charts_show_the_report_figures(scenario: Scenario, page: Page) -> None:
    page.goto(f"{scenario.server.base_url}/console/compliance?from=2026-11&to=2026-11")
    expect(page.get_by_role("heading", level=1)).to_have_text("Compliance")
    totals = _report(scenario)["totals"]
    assert isinstance(totals, dict)
    month = page.locator('#months tr[data-month="2026-11"] td').all_inner_texts()
    notices = totals["notices"]
    assert [month[0], month[1], month[3], month[4]] == [str(totals["referrals"]), str(totals["closed"]["total"]),
                                                       str(totals["authorized"]), str(totals["denied"])]
    assert month[7:10] == [str(notices["onTime"]), str(notices["late"]), str(notices["pending"])]
    assert (notices["onTime"], notices["late"]) == (1, 1)
    chart = page.locator("figure", has_text="Notices on time, late and pending")
    expect(chart.get_by_role("img")).to_be_visible()
    titles = chart.locator("rect title").all_text_contents()
    assert f"2026-11, Late: {notices['late']}" in titles
    assert "2026-11, On time: 1" in titles
    entity = page.locator("#entities tr", has_text=CLINIC).locator("td").all_inner_texts()
    assert entity[0] == "2"
    screenshot(page, "compliance")


def test_resend_button_recovers_a_subscription_in_error(scenario: Scenario, page: Page) -> None:
    receiver = Receiver().start()
    receiver.answer = 500
    base = scenario.server.base_url
    try:
        with httpx.Client(base_url=base, timeout=30.0, headers={"Accept": "application/fhir+json"}) as http:
            created = subscribe(http, subscription(receiver.url, STATUS_TOPIC))
            wait_until(lambda: status_of(http, created["id"]) == "error", what="the subscription erring")
            page.goto(f"{base}/console/subscriptions")
            line = page.locator(f'tr[data-subscription="{created["id"]}"]')
            expect(line.locator(".tag")).to_have_text("error")
            expect(line).to_contain_text("HTTP 500")
            screenshot(page, "subscriptions-error")
            receiver.answer = 200
            line.get_by_role("button", name="Re-send").click()
            expect(page.get_by_role("status")).to_contain_text(created["id"])
            wait_until(lambda: status_of(http, created["id"]) == "active", what="the subscription recovering")
        page.reload()
        expect(page.locator(f'tr[data-subscription="{created["id"]}"] .tag')).to_have_text("active")
        screenshot(page, "subscriptions-recovered")
    finally:
        receiver.stop()


def test_metrics_quick_view_and_prometheus_endpoint(scenario: Scenario, page: Page) -> None:
    base = scenario.server.base_url
    page.goto(f"{base}/console/metrics")
    expect(page.locator("#obligations")).to_contain_text("overdue")
    expect(page.locator("#store")).to_contain_text("search")
    screenshot(page, "metrics")
    exposition = httpx.get(f"{base}/metrics").text
    assert 'fhir_clr_notice_obligations{group="overdue"}' in exposition
    assert 'route="/console/referrals/{id}"' in exposition
    assert scenario.referral_id not in exposition and MEMBER_CIN not in exposition


PAGES = ["/console/", "/console/imports", "/console/compliance?from=2026-11&to=2026-11", "/console/subscriptions",
         "/console/notices", "/console/metrics", "/console/login"]


def test_every_page_passes_axe_and_keyboard_checks(scenario: Scenario, page: Page) -> None:
    base = scenario.server.base_url
    axe = Axe()
    for path in [*PAGES, f"/console/referrals/{scenario.referral_id}", f"/console/imports/{scenario.rtf_document_id}"]:
        page.goto(f"{base}{path}")
        results = axe.run(page)
        assert results.response["testEngine"]["name"] == "axe-core" and results.response["url"].endswith(path)
        violations = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
                      for v in results.response["violations"]]
        assert violations == [], f"{path}: {violations}"
        assert page.get_by_role("heading", level=1).count() == 1, path
        assert page.locator("html").get_attribute("lang") == "en"

    page.goto(f"{base}/console/")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_text("Skip to content")
    page.keyboard.press("Enter")
    expect(page.locator(":focus")).to_have_attribute("id", "main")
    page.keyboard.press("Tab")
    expect(page.locator(":focus")).to_have_accessible_name("Service")
    page.keyboard.press("Shift+Tab")
    expect(page.locator(":focus")).to_have_text("Metrics")
