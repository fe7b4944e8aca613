"""The plan's compliance worklist as plain FHIR searches.

Every group is a search any FHIR client can run; ``$clr-worklist`` only counts them. Thresholds come from the
rules configuration and "today" is the plan-local date:

* ``overdue`` — open obligations whose due date has passed (and one count per kind);
* ``due-soon`` — open obligations due from today to N business days ahead (per kind too);
* ``stale-status`` — open referral Tasks whose last Date of Referral Status Update is older than the freshness
  period (a month);
* ``long-pending`` — referral Tasks still in an extended-open status (Pending) since before the service's
  threshold (30 days by default; a service with its own threshold gets its own group, chained on the
  referral's service, and is excluded from nothing — configure it and both counts show it);
* ``coordination-needed`` — open CLR Referrals flagged as duplicates of another open referral;
* ``declined`` — Declined referral Tasks whose referral is still open: the plan's to reassign to another
  provider (a Task stays listed until its referral's loop closes on the new provider's Task);
* ``status-review`` — referral Tasks whose reported status moved in an unusual way (re-opened, back to an
  earlier status) and were tagged for review;
* ``no-notice-channel``, ``needs-contact``, ``notice-failed``, ``notice-held`` — open notice obligations the
  notice worker could not deliver (no usable channel; a person must call; the channel refused the notice) or
  holds for review, by the obligation's notice-delivery-status ``businessStatus`` (the reason is its
  ``statusReason``).
* ``written-opt-out`` — open Member notice obligations (``needs_contact_kinds``) of Members who opted out of
  written communication: no letter is printed for them, so someone reaches them by phone or a permitted secure
  electronic way and records that notice (listed whether or not the notice worker runs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_url
from fhir_clr.clr.deadlines import Deadlines, add_months
from fhir_clr.clr.member_letters import OPT_OUT_PARAM

OPEN_TASK_STATUSES = "requested,accepted,in-progress,on-hold"
OPEN_REFERRAL_STATUSES = "active,on-hold,draft"
NOTICE_DELIVERY_GROUPS = {"no-notice-channel": "no-channel", "needs-contact": "needs-contact",
                          "notice-failed": "failed", "notice-held": "held"}
"""Worklist group -> the notice-delivery-status code of the open obligations it lists."""


@dataclass(slots=True)
class WorklistGroup:
    """One worklist group: a search, and optional sub-searches (per obligation kind or per service)."""

    name: str
    resource_type: str
    params: list[tuple[str, str]]
    parts: list[tuple[str, list[tuple[str, str]]]] = field(default_factory=list)

    def url(self, params: list[tuple[str, str]] | None = None) -> str:
        """The relative search URL (``Task?...``)."""
        return f"{self.resource_type}?{urlencode(params if params is not None else self.params, safe='|,:/')}"


def worklist_groups(today: date, rules: dict[str, Any], codes: CodeLists, *,
                    due_soon_days: int | None = None) -> list[WorklistGroup]:
    """The worklist searches for plan-local ``today``."""
    deadlines = Deadlines(rules)
    table = rules["deadlines"]
    obligation = extension_url(rules, "clr-notice-obligation")
    referral_task = extension_url(rules, "clr-referral-task")
    kinds = codes["notice-kinds"]
    statuses = codes["referral-status"]
    days = rules["worklist"]["due_soon_business_days"] if due_soon_days is None else due_soon_days
    soon = deadlines.calendar.add_business_days(today, days)

    def per_kind(base: list[tuple[str, str]]) -> list[tuple[str, list[tuple[str, str]]]]:
        return [(code, [*base, ("code", f"{kinds.system}|{code}")]) for code in kinds.concepts]

    open_obligations = [("_profile", obligation), ("status", "requested")]
    overdue = [*open_obligations, ("due-date", f"lt{today.isoformat()}")]
    due_soon = [*open_obligations, ("due-date", f"ge{today.isoformat()}"), ("due-date", f"le{soon.isoformat()}")]
    stale_before = add_months(today, -int(table["status_freshness"]["months"]))
    pending = ",".join(f"{statuses.system}|{c}" for c in rules["noticing"]["extended_open_statuses"])
    extended = table["extended_open"]
    pending_base = [("_profile", referral_task), ("referral-status", pending)]
    long_pending = WorklistGroup("long-pending", "Task", [
        *pending_base, ("status-date", f"lt{(today - timedelta(days=int(extended['default_days']))).isoformat()}")])
    services = codes["clr-services"]
    for service, threshold in sorted(extended.get("by_service", {}).items()):
        long_pending.parts.append((service, [
            *pending_base, ("focus:ServiceRequest.service", f"{services.system}|{service}"),
            ("status-date", f"lt{(today - timedelta(days=int(threshold))).isoformat()}")]))
    flags = codes["referral-flags"]
    delivery = codes["notice-delivery-status"]
    member_kinds = ",".join(f"{kinds.system}|{code}" for code in rules["worklist"]["needs_contact_kinds"])
    return [
        WorklistGroup("overdue", "Task", overdue, per_kind(overdue)),
        WorklistGroup("due-soon", "Task", due_soon, per_kind(due_soon)),
        WorklistGroup("stale-status", "Task", [("_profile", referral_task), ("status", OPEN_TASK_STATUSES),
                                               ("status-date", f"lt{stale_before.isoformat()}")]),
        long_pending,
        WorklistGroup("coordination-needed", "ServiceRequest", [
            ("_profile", extension_url(rules, "clr-referral")),
            ("_tag", f"{flags.system}|{rules['duplicates']['flags']['open_referral']}"),
            ("status", OPEN_REFERRAL_STATUSES)]),
        WorklistGroup("declined", "Task", [
            ("_profile", referral_task),
            ("referral-status", f"{statuses.system}|{rules['workflow']['declined_referral_status']}"),
            ("focus:ServiceRequest.status", OPEN_REFERRAL_STATUSES)]),
        WorklistGroup("status-review", "Task", [
            ("_profile", referral_task), ("_tag", f"{flags.system}|{rules['workflow']['review_flag']}")]),
        *(WorklistGroup(name, "Task", [*open_obligations, ("business-status", f"{delivery.system}|{code}")],
                        per_kind([*open_obligations, ("business-status", f"{delivery.system}|{code}")]))
          for name, code in NOTICE_DELIVERY_GROUPS.items()),
        WorklistGroup("written-opt-out", "Task", [*open_obligations, ("code", member_kinds),
                                                  (f"patient:Patient.{OPT_OUT_PARAM}", "true")]),
    ]
