"""CLR compliance report computation (pure): grouping, counts, medians, closure reasons, notice timeliness, and the
plan-local dating of referrals. The plan's time zone is America/Los_Angeles (UTC-7 in October, UTC-8 in
November)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest

from fhir_clr.clr.report import (
    SELF_REFERRALS,
    UNKNOWN_ENTITY,
    UNKNOWN_SERVICE,
    UNSPECIFIED_REASON,
    ComplianceReport,
    GroupMetrics,
    ReportData,
    ReportPeriod,
    compliance_report,
)
from fhir_clr.clr.report_render import SCHEMA, render_text, report_document
from tests.bundled import CODES, RULES
from tests.clr_resources import obligation, referral, referral_task

OCTOBER = ReportPeriod(date(2026, 10, 1), date(2026, 10, 31))
AS_OF = date(2026, 11, 10)


def run(referrals: Sequence[dict[str, Any]], tasks: Sequence[dict[str, Any]] = (),
        obligations: Sequence[dict[str, Any]] = (), entities: Sequence[dict[str, Any]] = (),
        as_of: date = AS_OF) -> ComplianceReport:
    return compliance_report(ReportData(list(referrals), list(tasks), list(obligations), list(entities)),
                             OCTOBER, as_of, rules=RULES, codes=CODES)


def group(groups: list[GroupMetrics], key: str) -> GroupMetrics:
    return next(g for g in groups if g.key == key)


# ---- period and time zone ------------------------------------------------------------------------------------

def test_empty_store_gives_empty_groups_and_zero_totals() -> None:
    report = run([])
    assert report.by_service == [] and report.by_referring_entity == []
    assert report.totals.referrals == 0 and report.totals.closed == 0 and report.totals.duplicates == 0
    assert report.totals.median_days_to_authorization is None and report.totals.median_days_to_closure is None
    assert report.timezone == "America/Los_Angeles" and report.excluded_service_referrals == 0


def test_referral_date_is_the_plan_local_date_of_authored_on() -> None:
    report = run([
        referral("utc-oct-1-early", "2026-10-01T06:30:00Z"),  # 30 September, 23:30 in California: out
        referral("utc-nov-1-early", "2026-11-01T06:30:00Z"),  # 31 October, 23:30 in California: in
        referral("first-day", "2026-10-01"),
        referral("last-day", "2026-10-31T23:59:00-07:00"),
        referral("after", "2026-11-01"),
        referral("undated", ""),
    ])
    assert report.totals.referrals == 3


def test_days_are_counted_between_plan_local_dates() -> None:
    report = run([referral("r", "2026-10-01T08:00:00Z", authorization="approved",
                           decided="2026-10-04T05:00:00Z")])  # 1 Oct 01:00 → 3 Oct 22:00 local
    assert report.totals.days_to_authorization == [2]


# ---- medians ---------------------------------------------------------------------------------------------------

def test_median_days_to_authorization_with_an_odd_count() -> None:
    report = run([referral("a", "2026-10-01", authorization="approved", decided="2026-10-02"),
                  referral("b", "2026-10-01", authorization="modified", decided="2026-10-03"),
                  referral("c", "2026-10-01", authorization="approved", decided="2026-10-07"),
                  referral("denied", "2026-10-01", authorization="denied", decided="2026-10-20")])
    assert report.totals.authorized == 3 and report.totals.denied == 1
    assert report.totals.median_days_to_authorization == 2.0


def test_median_days_with_an_even_count_is_the_mean_of_the_middle_two() -> None:
    report = run([referral("a", "2026-10-01", authorization="approved", decided="2026-10-03"),
                  referral("b", "2026-10-01", authorization="approved", decided="2026-10-06")],
                 [referral_task("ta", "a", status_code="5", closure_reason="services-received",
                                closure_date="2026-10-11", task_status="completed"),
                  referral_task("tb", "b", status_code="5", closure_reason="member-declined",
                                closure_date="2026-10-20", task_status="failed")])
    assert report.totals.median_days_to_authorization == 3.5
    assert report.totals.median_days_to_closure == 14.5


def test_pending_or_undated_decisions_do_not_count_towards_time_to_authorization() -> None:
    report = run([referral("pending", "2026-10-01", authorization="pending"),
                  referral("undated", "2026-10-01", authorization="approved")])
    assert report.totals.authorized == 1 and report.totals.median_days_to_authorization is None


# ---- closure ----------------------------------------------------------------------------------------------------

def test_closed_referrals_are_counted_by_reason() -> None:
    report = run(
        [referral(f"r{n}", "2026-10-02") for n in range(5)],
        [referral_task("t0", "r0", status_code="5", closure_reason="services-received", closure_date="2026-10-12"),
         referral_task("t1", "r1", status_code="5", closure_reason="services-received", closure_date="2026-10-04"),
         referral_task("t2", "r2", status_code="5", closure_reason="unable-to-reach", closure_date="2026-10-30"),
         referral_task("t3", "r3", status_code="4"),
         referral_task("t4", "r4", status_code="5", status_date="2026-10-09T20:00:00Z")])  # no reason, no date
    assert report.totals.referrals == 5 and report.totals.closed == 4
    assert report.totals.closed_by_reason == {"services-received": 2, "unable-to-reach": 1, UNSPECIFIED_REASON: 1}
    assert sorted(report.totals.days_to_closure) == [2, 7, 10, 28]  # the last one dated by its status update


def test_referral_without_a_task_counts_as_an_open_referral() -> None:
    report = run([referral("lonely", "2026-10-05", authorization="approved", decided="2026-10-06")])
    assert report.totals.referrals == 1 and report.totals.authorized == 1 and report.totals.closed == 0
    assert report.totals.median_days_to_closure is None


def test_tasks_entered_in_error_are_ignored() -> None:
    report = run([referral("r", "2026-10-05")],
                 [referral_task("t", "r", status_code="5", closure_reason="other", closure_date="2026-10-06",
                                task_status="entered-in-error")])
    assert report.totals.closed == 0


def test_lenient_codes_are_read_like_the_write_path_reads_them() -> None:
    task = referral_task("t", "r", status_code="5", closure_date="2026-10-08")
    task["businessStatus"] = {"text": "5. Referral Loop Closed"}
    task["statusReason"] = {"text": "Services Received"}
    report = run([referral("r", "2026-10-05")], [task])
    assert report.totals.closed_by_reason == {"services-received": 1}


# ---- duplicates ------------------------------------------------------------------------------------------------

def test_denied_duplicates_count_as_denied_and_as_duplicates_of_their_kind() -> None:
    report = run([referral("dup", "2026-10-03", authorization="denied", decided="2026-10-03",
                           flag="duplicate-authorized"),
                  referral("open-1", "2026-10-04", flag="coordination-needed"),
                  referral("open-2", "2026-10-05", flag="coordination-needed"),
                  referral("plain", "2026-10-06")])
    totals = report.totals
    assert (totals.referrals, totals.denied, totals.duplicates) == (4, 1, 3)
    assert (totals.duplicates_already_authorized, totals.duplicates_coordination_needed) == (1, 2)
    assert totals.median_days_to_authorization is None


# ---- notices ---------------------------------------------------------------------------------------------------

def test_notice_timeliness() -> None:
    obligations = [
        # due a date: compared with the plan-local date it was sent (5 Oct 20:00 in California)
        obligation("on-time-local", "r", "2026-10-05", status="completed", sent="2026-10-06T03:00:00Z"),
        obligation("late", "r", "2026-10-05", status="completed", sent="2026-10-06T08:00:00Z"),
        # due a dateTime: compared as instants
        obligation("on-time-instant", "r", "2026-10-05T17:00:00Z", kind="authorization-decision-referring-entity",
                   status="completed", sent="2026-10-05T10:00:00-07:00"),
        obligation("late-instant", "r", "2026-10-05T17:00:00Z", kind="authorization-decision-referring-entity",
                   status="completed", sent="2026-10-05T17:01:00Z"),
        obligation("open-past-due", "r", "2026-11-09", kind="loop-closure-referring-entity"),
        obligation("open-due-today", "r", "2026-11-10", kind="inquiry-response"),
        obligation("open-not-yet-due", "r", "2026-11-12T17:00:00Z", kind="inquiry-response"),
        obligation("cancelled", "r", "2026-10-02", status="cancelled"),
        obligation("not-a-notice", "r", "2026-10-02", kind="status-update"),
    ]
    notices = run([referral("r", "2026-10-01")], obligations=obligations).totals.notices
    assert (notices.on_time, notices.late, notices.pending) == (2, 3, 2)


def test_as_of_decides_whether_an_open_notice_is_late() -> None:
    referrals, obligations = [referral("r", "2026-10-01")], [obligation("o", "r", "2026-11-09")]
    assert run(referrals, obligations=obligations, as_of=date(2026, 11, 9)).totals.notices.pending == 1
    assert run(referrals, obligations=obligations, as_of=date(2026, 11, 10)).totals.notices.late == 1


def test_completed_notice_without_a_sent_time_is_dated_by_its_last_update() -> None:
    done = obligation("o", "r", "2026-10-05", status="completed")
    done["meta"]["lastUpdated"] = "2026-10-07T16:00:00.000+00:00"
    assert run([referral("r", "2026-10-01")], obligations=[done]).totals.notices.late == 1


def test_notices_of_referrals_outside_the_period_are_not_counted() -> None:
    report = run([referral("september", "2026-09-30")], obligations=[obligation("o", "september", "2026-10-02")])
    assert report.totals.notices.late == 0 and report.totals.referrals == 0


# ---- groups ----------------------------------------------------------------------------------------------------

def test_groups_by_service_and_by_referring_entity() -> None:
    meals = referral("meals", "2026-10-03", requester="Organization/clinic", authorization="denied",
                     decided="2026-10-04")
    meals["code"] = {"text": "medically tailored meals/medically supportive food"}  # read leniently
    referrals = [
        referral("ecm-1", "2026-10-01", service="ecm", requester="Organization/clinic"),
        referral("ecm-2", "2026-10-02", service="ecm", requester="Practitioner/doc"),
        meals,
        referral("self", "2026-10-04", service="housing-deposits", requester="Patient/member", referral_type="3"),
        referral("caretaker", "2026-10-05", service="housing-deposits", requester="RelatedPerson/mom",
                 referral_type="3"),
        referral("nobody", "2026-10-06", service="mystery", requester=None),
        referral("unknown-org", "2026-10-07", requester="Organization/gone"),
        referral("sobering", "2026-10-08", service="sobering-centers"),
    ]
    entities = [{"resourceType": "Organization", "id": "clinic", "name": "Eastside Clinic"},
                {"resourceType": "Practitioner", "id": "doc", "name": [{"given": ["Ada"], "family": "Reyes"}]}]
    report = run(referrals, entities=entities)
    assert [(g.key, g.display, g.referrals) for g in report.by_service] == [
        ("ecm", "Enhanced Care Management", 3),
        ("housing-deposits", "Housing Deposits", 2),
        ("medically-tailored-meals", "Medically Tailored Meals/Medically Supportive Food", 1),
        (UNKNOWN_SERVICE, "Unrecognized service", 1)]
    assert [(g.key, g.display, g.referrals, g.denied) for g in report.by_referring_entity] == [
        ("Organization/clinic", "Eastside Clinic", 2, 1),
        ("Organization/gone", "Organization/gone", 1, 0),
        ("Practitioner/doc", "Ada Reyes", 1, 0),
        (SELF_REFERRALS, "Self or caretaker referrals", 2, 0),
        (UNKNOWN_ENTITY, "Unknown Referring Entity", 1, 0)]
    assert report.totals.referrals == 7 and report.excluded_service_referrals == 1


def test_a_self_referral_never_names_the_member() -> None:
    member = referral("self", "2026-10-04", requester="Patient/member", referral_type="1")
    member["requester"]["display"] = "Maria Member"
    report = run([member], entities=[{"resourceType": "Patient", "id": "member", "name": [{"family": "Member"}]}])
    assert [(g.key, g.display) for g in report.by_referring_entity] == [(SELF_REFERRALS, "Self or caretaker referrals")]
    text = render_text(report) + str(report_document(report, datetime.now(UTC), []))
    assert "Member" not in text.replace("Members", "") and "Patient/" not in text


# ---- rendering -------------------------------------------------------------------------------------------------

@pytest.fixture
def sample() -> ComplianceReport:
    return run([referral("a", "2026-10-01", authorization="approved", decided="2026-10-03"),
                referral("b", "2026-10-02", requester="Organization/cbo")],
               [referral_task("ta", "a", status_code="5", closure_reason="services-received",
                              closure_date="2026-10-10", task_status="completed")],
               [obligation("o", "a", "2026-10-07", status="completed", sent="2026-10-06")],
               [{"resourceType": "Organization", "id": "clinic", "name": "Eastside Clinic"}])


def test_json_document_is_versioned_and_lists_every_closure_reason(sample: ComplianceReport) -> None:
    document = report_document(sample, datetime(2026, 11, 10, tzinfo=UTC), ["services-received", "other"])
    assert (document["schema"], document["version"]) == (SCHEMA, "1")
    assert document["period"] == {"from": "2026-10-01", "to": "2026-10-31", "timezone": "America/Los_Angeles"}
    assert document["asOf"] == "2026-11-10" and document["generated"] == "2026-11-10T00:00:00+00:00"
    ecm = document["byService"][0]
    assert ecm["key"] == "ecm" and ecm["referrals"] == 2 and ecm["medianDaysToAuthorization"] == 2.0
    assert ecm["closed"] == {"total": 1, "byReason": {"services-received": 1, "other": 0}}
    assert ecm["notices"] == {"onTime": 1, "late": 0, "pending": 0,
                              "byChannel": {"recorded": {"onTime": 1, "late": 0, "pending": 0}}}
    assert [e["display"] for e in document["byReferringEntity"]] == ["Organization/cbo", "Eastside Clinic"]


def test_table_is_aligned_and_shows_the_closure_reasons_that_occur(sample: ComplianceReport) -> None:
    text = render_text(sample)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("Service "))
    ecm = next(line for line in lines if line.startswith("Enhanced Care Management"))
    assert len(header) == len(ecm) and header.index("Referrals") < ecm.index(" 2 ")
    assert "closed by reason" in text and "services-received" in text and "unable-to-reach" not in text
