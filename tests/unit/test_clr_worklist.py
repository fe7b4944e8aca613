"""The worklist groups as FHIR searches, for a fixed plan-local day."""

from __future__ import annotations

import copy
from datetime import date

from fhir_clr.clr.codes import bundled_code_lists
from fhir_clr.clr.config import bundled_rules
from fhir_clr.clr.worklist import worklist_groups

BASE = "http://fhir-clr.org/fhir"


def groups(today: date, rules: dict | None = None, **options: int) -> dict[str, object]:
    return {g.name: g for g in worklist_groups(today, rules or bundled_rules(), bundled_code_lists(), **options)}


def test_due_soon_window_skips_thanksgiving_and_the_day_after() -> None:  # Wed 25th + 2 = Tue 1 Dec
    found = groups(date(2026, 11, 25))
    assert found["due-soon"].params[-2:] == [("due-date", "ge2026-11-25"), ("due-date", "le2026-12-01")]
    assert found["overdue"].params[-1] == ("due-date", "lt2026-11-25")
    assert groups(date(2026, 11, 25), due_soon_days=0)["due-soon"].params[-1] == ("due-date", "le2026-11-25")
    kinds = [label for label, _ in found["overdue"].parts]
    assert "loop-closure-referring-entity" in kinds and "authorization-decision" in kinds
    label, params = found["overdue"].parts[0]
    assert params[-1] == ("code", f"{BASE}/CodeSystem/notice-kinds|{label}")


def test_stale_long_pending_and_duplicates() -> None:
    found = groups(date(2026, 3, 31))
    assert found["stale-status"].params[-1] == ("status-date", "lt2026-02-28")  # a month back, clamped
    assert found["long-pending"].params[-1] == ("status-date", "lt2026-03-01")  # 30 days back
    assert found["long-pending"].params[1] == ("referral-status", f"{BASE}/CodeSystem/referral-status|3")
    assert found["coordination-needed"].url().startswith("ServiceRequest?_profile=")
    assert "coordination-needed" in found["coordination-needed"].url()


def test_per_service_pending_thresholds_are_their_own_searches() -> None:
    rules = copy.deepcopy(bundled_rules())
    rules["deadlines"]["extended_open"]["by_service"] = {"housing-deposits": 10}
    [(service, params)] = groups(date(2026, 3, 31), rules)["long-pending"].parts
    assert service == "housing-deposits"
    assert ("focus:ServiceRequest.service", f"{BASE}/CodeSystem/clr-services|housing-deposits") in params
    assert params[-1] == ("status-date", "lt2026-03-21")
