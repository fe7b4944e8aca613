"""The CLR clocks (clr-spec §3): each deadline computed from the ``deadlines`` section of the rules configuration
and the business-day calendar. No threshold lives in code."""

from __future__ import annotations

import calendar as month_calendar
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fhir_clr.clr.calendar import BusinessCalendar, add_calendar_days


def add_months(start: date, months: int) -> date:
    """``start`` plus ``months`` months, clamped to the last day of the target month (31 Jan + 1 → 28/29 Feb)."""
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    return date(year, month, min(start.day, month_calendar.monthrange(year, month)[1]))


def parse_moment(value: Any) -> datetime | date | None:
    """A FHIR date or dateTime string as a date or datetime; None when absent or not parseable."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
    except ValueError:
        return None


class Deadlines:
    """Due dates of the CLR clocks. Dates are local (plan time zone) calendar dates."""

    def __init__(self, rules: dict[str, Any], calendar: BusinessCalendar | None = None) -> None:
        self._table: dict[str, dict[str, Any]] = rules["deadlines"]
        self.calendar = calendar or BusinessCalendar.from_rules(rules)
        self.timezone = ZoneInfo(rules.get("timezone", "UTC"))

    def local_date(self, moment: datetime | date) -> date:
        """The plan-local calendar date of ``moment`` (a date is returned as is; naive datetimes count as UTC)."""
        if not isinstance(moment, datetime):
            return moment
        aware = moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo("UTC"))
        return aware.astimezone(self.timezone).date()

    def _business(self, clock: str, start: datetime | date) -> date:
        return self.calendar.add_business_days(self.local_date(start), self._table[clock]["business_days"])

    def rtf_processing_due(self, received: datetime | date) -> date:
        """Last day to finish processing an RTF the plan received."""
        return self._business("rtf_processing", received)

    def loop_closure_notice_due(self, processed: datetime | date) -> date:
        """Last day to send the loop-closure notice, counted from the processing of the closing status."""
        return self._business("loop_closure_notice", processed)

    def inquiry_response_due(self, received: datetime | date) -> date:
        """Last day to answer a status inquiry from a Referring Entity or Member."""
        return self._business("inquiry_response", received)

    def member_decision_notice_due(self, decided: datetime | date) -> date:
        """Last day to send the Member the written authorization decision notice."""
        return self._business("member_decision_notice", decided)

    def referring_entity_decision_notice_due(self, decided: datetime) -> datetime:
        """When the Referring Entity must have been told the authorization decision."""
        return decided + timedelta(hours=self._table["referring_entity_decision_notice"]["hours"])

    def authorization_decision_due(self, received: datetime | date, *, expedited: bool = False) -> date | datetime:
        """When the authorization decision is due: routine, the earlier of N business days and the calendar-day
        ceiling from receipt; expedited, a number of hours after receipt (a datetime)."""
        if expedited:
            moment = received if isinstance(received, datetime) else datetime.combine(received, datetime.min.time(),
                                                                                     self.timezone)
            return moment + timedelta(hours=self._table["authorization_decision_expedited"]["hours"])
        return self.routine_decision_due(received)

    def routine_decision_due(self, received: datetime | date, information: datetime | date | None = None,
                             extended_days: int = 0) -> date:
        """The routine authorization decision's last day: N business days from receipt of the information
        reasonably necessary (``information``; the request's receipt when not recorded), never past the
        calendar-day ceiling from the request's receipt, plus the one extension's calendar days."""
        routine = self._table["authorization_decision_routine"]
        start = self.local_date(received)
        informed = max(start, self.local_date(information)) if information is not None else start
        due = min(self.calendar.add_business_days(informed, routine["business_days"]),
                  add_calendar_days(start, routine["max_calendar_days"]))
        return add_calendar_days(due, extended_days) if extended_days else due

    @property
    def extension_calendar_days(self) -> int:
        """The most calendar days the one extension of a routine authorization decision may add."""
        return int(self._table["authorization_decision_routine"].get("extension_calendar_days", 14))

    def status_update_due(self, last_update: datetime | date) -> date:
        """When an open referral's status must next be refreshed."""
        return add_months(self.local_date(last_update), self._table["status_freshness"]["months"])

    def extended_open_days(self, service_code: str | None) -> int:
        """How many calendar days a referral for this service may stay open before it needs follow-up."""
        section = self._table["extended_open"]
        return int(section.get("by_service", {}).get(service_code, section["default_days"]))

    def extended_open_due(self, since: datetime | date, service_code: str | None) -> date:
        """The day a referral open (or pending) since ``since`` becomes open for an extended period."""
        return add_calendar_days(self.local_date(since), self.extended_open_days(service_code))

    def authorization_period_end(self, start: datetime | date, service_code: str | None, *,
                                 reauthorization: bool = False) -> date | None:
        """The last day of an authorization starting ``start`` for the service (initial or reauthorization
        length from the configuration); None for services with no configured length."""
        section = self._table["authorization_period"]
        months = section["reauthorization_months_by_service" if reauthorization else "months_by_service"].get(
            service_code)
        if months is None:
            return None
        return add_months(self.local_date(start), int(months)) - timedelta(days=1)
