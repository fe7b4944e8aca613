"""The monthly digest rule (``notices.digest`` of the rules configuration): a Referring Entity configured for
digests gets its loop-closure notices together on the plan's digest day, so those obligations are due that day
(the loop-closure notice may be a monthly bulk electronic notice, clr-spec §2)."""

from __future__ import annotations

import calendar
from datetime import date
from typing import Any


def digest_day(processed: date, rules: dict[str, Any]) -> date:
    """The first digest day on or after ``processed`` (``day_of_month``; the month's last day when shorter)."""
    wanted = int(rules.get("notices", {}).get("digest", {}).get("day_of_month", 1))

    def in_month(year: int, month: int) -> date:
        return date(year, month, min(wanted, calendar.monthrange(year, month)[1]))

    day = in_month(processed.year, processed.month)
    if day >= processed:
        return day
    year, month = (processed.year + 1, 1) if processed.month == 12 else (processed.year, processed.month + 1)
    return in_month(year, month)
