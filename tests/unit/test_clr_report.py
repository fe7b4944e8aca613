"""Compliance metrics from plain FHIR JSON: counts, medians, duplicates and notice timeliness."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fhir_clr.clr.report import ComplianceCalculator

BASE = "http://fhir-clr.org/fhir"
OBLIGATION = f"{BASE}/StructureDefinition/clr-notice-obligation"
TASK = f"{BASE}/StructureDefinition/clr-referral-task"


def referral(rid: str, authored: str, service: str = "ecm", requester: str = "Organization/clinic",
             decision: tuple[str, str] | None = None, flag: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "ServiceRequest", "id": rid, "authoredOn": authored,
                            "code": {"coding": [{"system": f"{BASE}/CodeSystem/clr-services", "code": service}]},
                            "requester": {"reference": requester}, "extension": []}
    if decision:
        body["extension"].append({"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": [
            {"url": "status", "valueCoding": {"code": decision[0]}}, {"url": "date", "valueDateTime": decision[1]}]})
    if flag:
        body["meta"] = {"tag": [{"system": f"{BASE}/CodeSystem/referral-flags", "code": flag}]}
    return body


def closed_task(rid: str, reason: str, on: str) -> dict[str, Any]:
    return {"resourceType": "Task", "meta": {"profile": [TASK]}, "status": "completed",
            "focus": {"reference": f"ServiceRequest/{rid}"},
            "businessStatus": {"coding": [{"system": f"{BASE}/CodeSystem/referral-status", "code": "5"}]},
            "statusReason": {"coding": [{"system": f"{BASE}/CodeSystem/loop-closure-reason", "code": reason}]},
            "extension": [{"url": f"{BASE}/StructureDefinition/referral-loop-closure-date", "valueDate": on}]}


def notice(rid: str, due: str, status: str = "requested", done: str | None = None,
           kind: str = "loop-closure-referring-entity") -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Task", "meta": {"profile": [OBLIGATION]}, "status": status,
                            "code": {"coding": [{"code": kind}]}, "focus": {"reference": f"ServiceRequest/{rid}"},
                            "restriction": {"period": {"end": due}}}
    if done:
        body["executionPeriod"] = {"end": done}
    return body


def test_counts_medians_duplicates_and_notice_timeliness() -> None:
    referrals = [referral("a", "2026-11-02", decision=("approved", "2026-11-05T10:00:00-08:00")),
                 referral("b", "2026-11-03", decision=("denied", "2026-11-10T10:00:00-08:00"),
                          flag="duplicate-authorized"),
                 referral("c", "2026-11-04", service="housing-deposits", requester="Organization/cbo",
                          flag="coordination-needed"),
                 referral("d", "2026-10-30"),  # before the period
                 referral("e", "2026-11-05", decision=("modified", "2026-11-09"))]
    tasks = [closed_task("a", "services-received", "2026-11-20"), closed_task("e", "member-declined", "2026-11-12"),
             notice("a", "2026-11-24", "completed", "2026-11-23T09:00:00-08:00"),
             notice("a", "2026-11-06T10:00:00-08:00", "completed", "2026-11-06T11:00:00-08:00",
                    kind="authorization-decision-referring-entity"),
             notice("b", "2026-11-12"),  # open past due on the as-of day
             notice("c", "2026-12-01"),  # open, not yet due
             notice("e", "2026-11-20", "cancelled"),
             notice("e", "2026-11-01", kind="status-update")]  # not a notice
    report = ComplianceCalculator().compute(referrals, tasks, date(2026, 11, 1), date(2026, 11, 30),
                                            date(2026, 11, 25), {"Organization/clinic": "Clinic"})
    totals = report.totals.as_json()
    assert (totals["referrals"], totals["authorized"], totals["denied"]) == (4, 2, 1)
    assert (totals["duplicates"], totals["duplicatesDenied"], totals["duplicatesOpen"]) == (2, 1, 1)
    assert totals["medianDaysToAuthorization"] == 4.0  # 3, 4 (modified, date only), 7
    assert totals["medianDaysToClosure"] == 12.5  # 18 and 7
    assert totals["closedByReason"] == {"member-declined": 1, "services-received": 1}
    assert (totals["noticesOnTime"], totals["noticesLate"], totals["noticesPending"]) == (1, 2, 1)
    document = report.as_json(generated=datetime(2026, 11, 25))
    assert document["schema"] == "fhir-clr/compliance-report" and document["version"] == "1"
    services = {row["service"]: row for row in document["byService"]}
    assert services["housing-deposits"]["name"] == "Housing Deposits" and services["ecm"]["referrals"] == 3
    entities = {row["referringEntity"]: row for row in document["byReferringEntity"]}
    assert entities["Organization/clinic"]["name"] == "Clinic" and entities["Organization/cbo"]["referrals"] == 1


def test_empty_period() -> None:
    report = ComplianceCalculator().compute([], [], date(2026, 1, 1), date(2026, 1, 31), date(2026, 2, 1))
    assert report.totals.as_json()["medianDaysToClosure"] is None and report.as_json(
        datetime(2026, 2, 1))["byService"] == []
