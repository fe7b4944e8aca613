"""Business-day calendar: weekdays that are not US federal or California state holidays, nor extra closure days.

Holidays come from the ``holidays`` library, ``holidays.country_holidays("US", subdiv="CA")`` (public
category). For California it lists, besides the federal holidays: Cesar Chavez Day (31 March), the Day After
Thanksgiving, Susan B. Anthony Day (15 February) and, from 2025, Diwali. It does not list Lincoln's Birthday or
Columbus Day (no longer California state holidays) nor Native American Day. Observed days (a Saturday holiday
observed on the Friday before, a Sunday one on the Monday after) are included.

The rules configuration can ignore holidays by name (default: Susan B. Anthony Day, a commemorative day on which
offices stay open) and add closure dates.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import holidays


class BusinessCalendar:
    """Which days are business days, and date arithmetic over them."""

    def __init__(self, country: str = "US", subdivision: str | None = "CA", ignored_holidays: Iterable[str] = (),
                 extra_closure_dates: Iterable[date | str] = ()) -> None:
        self._holidays = holidays.country_holidays(country, subdiv=subdivision)
        self._ignored = frozenset(ignored_holidays)
        self._extra = frozenset(d if isinstance(d, date) else date.fromisoformat(d) for d in extra_closure_dates)

    @classmethod
    def from_rules(cls, rules: dict[str, Any]) -> BusinessCalendar:
        """The calendar the ``calendar`` section of the rules configuration describes."""
        section = rules.get("calendar", {})
        return cls(section.get("country", "US"), section.get("subdivision"), section.get("ignored_holidays", ()),
                   section.get("extra_closure_dates", ()))

    def closure_names(self, day: date) -> list[str]:
        """Why ``day`` is closed (holiday names, or "Closure day"); empty for a weekday business day."""
        names = [name for name in self._holidays.get_list(day) if name not in self._ignored]
        if day in self._extra:
            names.append("Closure day")
        return names

    def is_business_day(self, day: date) -> bool:
        """True for a Monday-to-Friday day that is neither a holiday nor an extra closure day."""
        return day.weekday() < 5 and not self.closure_names(day)

    def add_business_days(self, start: date, days: int) -> date:
        """The ``days``-th business day after ``start`` (``start`` itself is day 0, whatever it is).

        A deadline of "5 business days from receipt" on a Wednesday is the fifth business day that follows.
        """
        if days < 0:
            raise ValueError("days must not be negative")
        current = start
        remaining = days
        while remaining:
            current += timedelta(days=1)
            if self.is_business_day(current):
                remaining -= 1
        return current

    def business_days_between(self, start: date, end: date) -> int:
        """How many business days follow ``start`` up to and including ``end`` (0 when ``end <= start``)."""
        count = 0
        current = start
        while current < end:
            current += timedelta(days=1)
            count += self.is_business_day(current)
        return count


def add_calendar_days(start: date, days: int) -> date:
    """``start`` plus ``days`` calendar days."""
    return start + timedelta(days=days)
