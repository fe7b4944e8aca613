"""Business days (US federal + California holidays) and the CLR deadline table, with exact dates."""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime, timedelta

import pytest

from fhir_clr.clr.calendar import BusinessCalendar, add_calendar_days
from fhir_clr.clr.config import bundled_rules
from fhir_clr.clr.deadlines import Deadlines, add_months

D = date.fromisoformat


@pytest.fixture(scope="module")
def calendar() -> BusinessCalendar:
    return BusinessCalendar.from_rules(bundled_rules())


@pytest.fixture(scope="module")
def deadlines() -> Deadlines:
    return Deadlines(bundled_rules())


@pytest.mark.parametrize(("day", "closed"), [
    ("2025-11-27", True), ("2025-11-28", True),  # Thanksgiving, Day After Thanksgiving
    ("2025-12-25", True), ("2026-01-01", True), ("2026-03-31", True),  # Christmas, New Year, Cesar Chavez Day
    ("2026-07-03", True),  # Independence Day observed (the 4th is a Saturday)
    ("2026-02-12", False),  # Lincoln's Birthday: not a California state holiday
    ("2026-10-12", False),  # Columbus Day: not a California state holiday
    ("2025-12-24", False), ("2025-12-26", False), ("2026-03-30", False),
])
def test_california_holidays(calendar: BusinessCalendar, day: str, closed: bool) -> None:
    assert calendar.is_business_day(D(day)) is not closed


def test_ignored_commemorative_day_and_extra_closures() -> None:
    rules = copy.deepcopy(bundled_rules())
    assert BusinessCalendar.from_rules(rules).closure_names(D("2027-02-15")) == ["Presidents' Day"]
    rules["calendar"]["extra_closure_dates"] = ["2026-03-30"]
    assert not BusinessCalendar.from_rules(rules).is_business_day(D("2026-03-30"))
    assert BusinessCalendar(ignored_holidays=()).closure_names(D("2026-02-16")) == ["Presidents' Day"]


@pytest.mark.parametrize(("start", "days", "due"), [
    ("2025-11-26", 5, "2025-12-05"),  # Wed before Thanksgiving: Thu+Fri holidays, weekend
    ("2025-11-26", 1, "2025-12-01"),
    ("2025-12-24", 2, "2025-12-29"),  # Christmas
    ("2025-12-31", 1, "2026-01-02"),  # New Year's Day
    ("2026-03-30", 1, "2026-04-01"),  # Cesar Chavez Day
    ("2025-11-29", 1, "2025-12-01"),  # received on a Saturday
    ("2026-03-31", 0, "2026-03-31"),
])
def test_add_business_days(calendar: BusinessCalendar, start: str, days: int, due: str) -> None:
    assert calendar.add_business_days(D(start), days) == D(due)


def test_business_days_between_and_calendar_days(calendar: BusinessCalendar) -> None:
    assert calendar.business_days_between(D("2025-11-26"), D("2025-12-05")) == 5
    assert calendar.business_days_between(D("2025-12-05"), D("2025-11-26")) == 0
    assert add_calendar_days(D("2025-12-24"), 14) == D("2026-01-07")
    with pytest.raises(ValueError):
        calendar.add_business_days(D("2025-12-24"), -1)


def test_deadline_table(deadlines: Deadlines) -> None:
    received = D("2025-11-26")
    assert deadlines.rtf_processing_due(received) == D("2025-12-05")
    assert deadlines.loop_closure_notice_due(D("2025-12-24")) == D("2025-12-29")
    assert deadlines.inquiry_response_due(D("2026-03-30")) == D("2026-04-01")
    assert deadlines.member_decision_notice_due(D("2026-03-27")) == D("2026-04-01")
    assert deadlines.authorization_decision_due(received) == D("2025-12-05")
    assert deadlines.status_update_due(D("2026-01-31")) == D("2026-02-28")
    assert deadlines.extended_open_due(D("2026-03-02"), "ecm") == D("2026-04-01")


def test_times_are_read_in_plan_local_time(deadlines: Deadlines) -> None:
    # 02:00 UTC on Thursday 27 November is still Wednesday 26 November in California
    late = datetime(2025, 11, 27, 2, 0, tzinfo=UTC)
    assert deadlines.local_date(late) == D("2025-11-26")
    assert deadlines.inquiry_response_due(late) == D("2025-12-01")
    decided = datetime(2025, 12, 24, 16, 0, tzinfo=UTC)
    assert deadlines.referring_entity_decision_notice_due(decided) == decided + timedelta(hours=24)
    assert deadlines.authorization_decision_due(decided, expedited=True) == decided + timedelta(hours=72)


def test_routine_authorization_ceiling_and_service_thresholds() -> None:
    rules = copy.deepcopy(bundled_rules())
    rules["deadlines"]["authorization_decision_routine"] = {"business_days": 12, "max_calendar_days": 14}
    rules["deadlines"]["extended_open"]["by_service"] = {"housing-deposits": 10}
    deadlines = Deadlines(rules)
    # 12 business days from 2025-12-22 would be 2026-01-09; the 14-calendar-day ceiling is 2026-01-05
    assert deadlines.authorization_decision_due(D("2025-12-22")) == D("2026-01-05")
    assert deadlines.extended_open_days("housing-deposits") == 10
    assert deadlines.extended_open_days("ecm") == 30


def test_add_months_clamps() -> None:
    assert add_months(D("2024-01-31"), 1) == D("2024-02-29")
    assert add_months(D("2025-12-15"), 1) == D("2026-01-15")


def test_authorization_period_lengths(deadlines: Deadlines) -> None:
    assert deadlines.authorization_period_end(date(2026, 2, 1), "ecm") == date(2027, 1, 31)  # 12 months
    assert deadlines.authorization_period_end(date(2026, 2, 1), "ecm", reauthorization=True) == date(2026, 7, 31)
    assert deadlines.authorization_period_end(date(2026, 2, 1), "housing-deposits") is None
