"""``fhir-clr report compliance`` end to end: referrals written through the engine into an embedded store (with the
CLR write rules, so the notice obligations, the denial closing the loop and the duplicate flags are the server's
own), then the CLI run as a subprocess on that data directory.
The engine's clock is fixed at Tuesday 20 October 2026, 10:00 in California."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_clr.app import build_services
from fhir_clr.clr.report import ComplianceReporter, ReportPeriod
from fhir_clr.config import Settings
from fhir_clr.engine.engine import Engine
from fhir_clr.reporting.source import VALUES_PER_QUERY, load_report_data, search_all
from fhir_clr.store.port import ChangeOp
from tests.clr_resources import BASE, STATUS_DATE_URL, obligation, referral, referral_task

NOW = datetime(2026, 10, 20, 17, 0, tzinfo=UTC)
AUTH_URL = f"{BASE}/StructureDefinition/authorization-decision"
REPO = Path(__file__).resolve().parents[2]


async def _created(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    result = await engine.create(body["resourceType"], {k: v for k, v in body.items() if k != "id"})
    assert result.stored is not None and result.stored.body is not None
    return orjson.loads(result.stored.body)


async def _moved(engine: Engine, task: dict[str, Any], status_code: str, when: str, status: str,
                 reason: str | None = None) -> dict[str, Any]:
    """``task`` moved to Referral Status ``status_code`` on ``when`` (Task.status ``status``)."""
    body = {**task, "status": status, "businessStatus": {"text": status_code},
            "extension": [{"url": STATUS_DATE_URL, "valueDateTime": when}]}
    if reason:
        body["statusReason"] = {"text": reason}
    result = await engine.update("Task", task["id"], body)
    assert result.stored is not None and result.stored.body is not None
    return orjson.loads(result.stored.body)


async def _decided(engine: Engine, referral_body: dict[str, Any], status: str, when: str) -> dict[str, Any]:
    """``referral_body`` with the plan's authorization decision ``status`` dated ``when`` recorded."""
    body = {**referral_body, "extension": [*referral_body["extension"], {"url": AUTH_URL, "extension": [
        {"url": "status", "valueCoding": {"code": status}}, {"url": "date", "valueDateTime": when}]}]}
    result = await engine.update("ServiceRequest", body["id"], body)
    assert result.stored is not None and result.stored.body is not None
    return orjson.loads(result.stored.body)


async def _notice_sent(engine: Engine, referral_id: str, kind: str, sent: str) -> None:
    """A CLR Notice satisfying the open obligation of ``kind`` the server created for the referral."""
    found = await search_all(engine, "Task", [("focus", f"ServiceRequest/{referral_id}"), ("code", kind),
                                              ("status", "requested")])
    assert len(found) == 1, found
    due = found[0]
    await _created(engine, {
        "resourceType": "Communication", "meta": {"profile": [f"{BASE}/StructureDefinition/clr-notice"]},
        "status": "completed", "basedOn": [{"reference": f"Task/{due['id']}"}], "about": [due["focus"]],
        "sent": sent, "category": [{"coding": [{"system": f"{BASE}/CodeSystem/message-category", "code": "notice"}]}],
        "extension": [{"url": f"{BASE}/StructureDefinition/notice-channel",
                       "valueCoding": {"system": f"{BASE}/CodeSystem/notice-channels", "code": "secure-electronic"}}],
        **({"recipient": due["restriction"]["recipient"]} if due["restriction"].get("recipient") else {})})


async def _load(data_dir: Path) -> None:
    """Five October referrals and one from September, from two Referring Entities; the obligations and duplicate
    flags are the ones the server's CLR rules create."""
    services = await build_services(Settings(data_dir=data_dir, dev=True, fixed_now=NOW))
    engine = services.engine
    try:
        clinic, cbo = [f"Organization/{(await _created(engine, {'resourceType': 'Organization', 'name': name}))['id']}"
                       for name in ("Eastside Clinic", "Harbor Community Services")]

        async def member() -> str:
            created = await _created(engine, {
                "resourceType": "Patient", "name": [{"family": "Quintero", "given": ["Rosa"]}],
                "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.5", "value": "91234567A"}]})
            return f"Patient/{created['id']}"

        async def referral_with_task(authored: str, requester: str, subject: str, **kwargs: Any
                                     ) -> tuple[dict[str, Any], dict[str, Any]]:
            created = await _created(engine, referral("x", authored, requester=requester, subject=subject, **kwargs))
            task = await _created(engine, referral_task("x", created["id"], status_date=authored, subject=subject))
            return created, task

        rosa = await member()
        approved, approved_task = await referral_with_task("2026-10-01", clinic, rosa)
        approved = await _decided(engine, approved, "approved", "2026-10-05T18:00:00Z")
        await _notice_sent(engine, approved["id"], "authorization-decision-member", "2026-10-06T16:00:00Z")
        await _notice_sent(engine, approved["id"], "authorization-decision-referring-entity", "2026-10-06T16:00:00Z")
        await _created(engine, referral("x", "2026-10-12", requester=cbo, subject=rosa))  # denied: authorized already
        approved_task = await _moved(engine, approved_task, "1", "2026-10-08", "accepted")
        await _moved(engine, approved_task, "5", "2026-10-15", "completed", "services-received")  # owes a notice

        denied, _ = await referral_with_task("2026-10-02", cbo, await member(), service="housing-deposits")
        await _decided(engine, denied, "denied", "2026-10-02T18:00:00Z")  # closes the loop; notices never sent

        self_referred = await member()
        await _created(engine, referral("x", "2026-10-31T23:30:00-07:00", requester=self_referred, referral_type="3",
                                        subject=self_referred))  # no Task yet
        waiting = await member()
        await _created(engine, referral("x", "2026-09-30T20:00:00-07:00", requester=clinic,
                                        subject=waiting))  # 1 October in UTC, September in California
        await _created(engine, referral("x", "2026-10-19", requester=cbo, subject=waiting))  # both to coordinate
    finally:
        await services.store.close()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = Path(tmp_path_factory.mktemp("report-store"))
    asyncio.run(_load(directory))
    return directory


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("FHIR_CLR_STORE_URL", None)
    return subprocess.run([sys.executable, "-m", "fhir_clr.cli", "report", "compliance", *args],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def test_json_report_counts_the_october_referrals(data_dir: Path) -> None:
    done = run_cli("--from", "2026-10-01", "--to", "2026-10-31", "--as-of", "2026-10-30", "--format", "json",
                   "--data", str(data_dir))
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert (report["schema"], report["version"], report["asOf"]) == ("fhir-clr/compliance-report", "1", "2026-10-30")
    totals = report["totals"]
    assert (totals["referrals"], totals["authorized"], totals["denied"]) == (5, 1, 2)
    assert totals["duplicates"] == {"total": 2, "alreadyAuthorized": 1, "coordinationNeeded": 1}
    assert totals["closed"]["total"] == 2
    assert {k: v for k, v in totals["closed"]["byReason"].items() if v} == {
        "services-received": 1, "authorization-denied": 1}
    assert totals["medianDaysToAuthorization"] == 4.0  # 1 → 5 October
    assert totals["medianDaysToClosure"] == 7.0  # 14 days (closed on the 15th) and 0 (denied the same day)
    # on time: both decision notices of the approved referral, sent on the 6th; late: the loop-closure notice
    # the server owes since the 15th, and the unsent decision notices of the two denied referrals
    assert totals["notices"] == {"onTime": 2, "late": 5, "pending": 0, "byChannel": {
        "secure-electronic": {"onTime": 2, "late": 0, "pending": 0},  # the channel of the recorded Communications
        "not-sent": {"onTime": 0, "late": 5, "pending": 0}}}
    assert [(g["key"], g["referrals"], g["denied"]) for g in report["byService"]] == [
        ("ecm", 4, 1), ("housing-deposits", 1, 1)]
    entities = {g["display"]: (g["referrals"], g["duplicates"]["total"]) for g in report["byReferringEntity"]}
    assert entities == {"Eastside Clinic": (1, 0), "Harbor Community Services": (3, 2),
                        "Self or caretaker referrals": (1, 0)}
    assert "Quintero" not in done.stdout and "91234567A" not in done.stdout and "Patient/" not in done.stdout


def test_as_of_before_the_due_dates_leaves_open_notices_pending(data_dir: Path) -> None:
    done = run_cli("--from", "2026-10-01", "--to", "2026-10-31", "--as-of", "2026-10-06", "--format", "json",
                   "--data", str(data_dir))
    # late: only the denial notice to the Referring Entity (due 24 hours after the 2 October decision)
    notices = orjson.loads(done.stdout)["totals"]["notices"]
    assert {k: v for k, v in notices.items() if k != "byChannel"} == {"onTime": 2, "late": 1, "pending": 4}
    assert notices["byChannel"]["not-sent"] == {"onTime": 0, "late": 1, "pending": 4}


def test_table_report_and_an_empty_period(data_dir: Path) -> None:
    done = run_cli("--from", "2026-09-01", "--to", "2026-09-30", "--as-of", "2026-10-30", "--data", str(data_dir))
    assert done.returncode == 0, done.stderr
    assert "referrals dated 2026-09-01 to 2026-09-30 (America/Los_Angeles)" in done.stdout
    assert "Eastside Clinic" in done.stdout and "Enhanced Care Management" in done.stdout
    empty = run_cli("--from", "2025-01-01", "--to", "2025-01-31", "--format", "json", "--data", str(data_dir))
    assert orjson.loads(empty.stdout)["byService"] == []


def test_reversed_period_is_refused(data_dir: Path) -> None:
    done = run_cli("--from", "2026-10-31", "--to", "2026-10-01", "--data", str(data_dir))
    assert done.returncode == 2 and "--from" in done.stderr


async def test_loader_pages_and_batches_past_the_store_limits(tmp_path: Path) -> None:
    """More referrals than one focus query may name and than one page holds: every Task is still found."""
    services = await build_services(Settings(data_dir=tmp_path))
    planner = services.engine.planner
    try:
        changes = []
        for n in range(VALUES_PER_QUERY + 150):
            for resource_type, resource_id, body in [
                    ("ServiceRequest", f"r{n}", referral(f"r{n}", "2026-10-05")),
                    ("Task", f"t{n}", referral_task(f"t{n}", f"r{n}", status_code="5", closure_reason="other",
                                                    closure_date="2026-10-09", task_status="cancelled")),
                    ("Task", f"o{n}", obligation(f"o{n}", f"r{n}", "2026-10-07"))]:
                changes.append(planner.change(ChangeOp.CREATE, resource_type, resource_id, 0,
                                              planner.prepare(resource_type, resource_id, body)))
        await services.store.commit(changes)
        data = await load_report_data(services.engine, ReportPeriod(date(2026, 10, 1), date(2026, 10, 31)),
                                      ComplianceReporter(services.rules, services.codes))
        paged = await search_all(services.engine, "ServiceRequest", [("authored", "ge2026-10-01")], page_size=100)
    finally:
        await services.store.close()
    count = VALUES_PER_QUERY + 150
    assert (len(data.referrals), len(data.referral_tasks), len(data.obligations)) == (count, count, count)
    assert len({r["id"] for r in paged}) == count
