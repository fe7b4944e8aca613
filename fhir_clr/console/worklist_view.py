"""The worklist page: the ``$clr-worklist`` groups (overdue and due notices, stale statuses, long-pending and
duplicate referrals), narrowed by service, provider and Referring Entity, one server-side page at a time.

Every count and row is the group's plain FHIR search (``fhir_clr.clr.worklist``) plus the filters as chained
parameters on the referral, run through the caller's engine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import orjson

from fhir_clr.clr.codes import CodeList, CodeLists
from fhir_clr.clr.config import extension_of, extension_url, value_of
from fhir_clr.clr.deadlines import Deadlines, parse_moment
from fhir_clr.clr.rules.context import reference_of
from fhir_clr.clr.worklist import NOTICE_DELIVERY_GROUPS, WorklistGroup, worklist_groups
from fhir_clr.console.names import Names, label_of
from fhir_clr.engine.engine import Engine
from fhir_clr.search.parse import PAGE_TOKEN

PAGE_SIZE = 25
SORTED_UP_TO = 2000
"""Largest group sorted by date; beyond it pages come in record order (sorting 100,000 matches costs seconds)."""
MAX_ORGANIZATIONS = 500
"""Organizations offered in the provider and Referring Entity filters."""
GROUP_TITLES = {
    "overdue": "Overdue notices",
    "due-today": "Notices due today",
    "due-this-week": "Notices due this week",
    "stale-status": "Stale statuses",
    "long-pending": "Long-pending referrals",
    "coordination-needed": "Duplicates needing coordination",
    "declined": "Declined, to reassign",
    "status-review": "Status movements to review",
    "no-notice-channel": "No notice channel",
    "needs-contact": "Members who need contact",
    "notice-failed": "Failed notices",
    "notice-held": "Notices held for review",
    "written-opt-out": "Opted out of written notices, notice still owed",
}
SORT = {"overdue": "due-date", "due-today": "due-date", "due-this-week": "due-date", "stale-status": "status-date",
        "long-pending": "status-date", "coordination-needed": "authored", "declined": "status-date",
        "status-review": "status-date", "no-notice-channel": "due-date", "needs-contact": "due-date",
        "notice-failed": "due-date", "notice-held": "due-date",
        "written-opt-out": "due-date"}


@dataclass(frozen=True, slots=True)
class Filters:
    """What the user narrowed the worklist to (codes and Organization ids; empty for all)."""

    service: str = ""
    provider: str = ""
    referrer: str = ""

    def params(self, resource_type: str, services: CodeList) -> list[tuple[str, str]]:
        """The filters as search parameters on ``resource_type`` (Tasks reach their referral by ``focus``; a
        service is a code of ``services``)."""
        chain = "focus:ServiceRequest." if resource_type == "Task" else ""
        params = []
        if self.service:
            params.append((f"{chain}service", f"{services.system}|{self.service}"))
        if self.provider:
            params.append((f"{chain}performer", f"Organization/{self.provider}"))
        if self.referrer:
            params.append((f"{chain}requester", f"Organization/{self.referrer}"))
        return params

    def query(self) -> dict[str, str]:
        """The filters as the page's query parameters (empty ones left out)."""
        return {k: v for k, v in (("service", self.service), ("provider", self.provider),
                                  ("referrer", self.referrer)) if v}


@dataclass(slots=True)
class WorklistRow:
    """One line of the table: the item, its referral and when it is due or since when it waits."""

    referral_id: str | None
    member: str
    what: str
    when: str
    lateness: str
    service: str
    provider: str
    referrer: str


@dataclass(slots=True)
class WorklistPage:
    """Everything the worklist template shows."""

    today: date
    group: str
    counts: list[tuple[str, str, int | None]]
    rows: list[WorklistRow]
    filters: Filters
    services: list[tuple[str, str]]
    organizations: list[tuple[str, str]]
    next_token: str | None
    prev_token: str | None
    search_url: str
    sorted_by_date: bool = True
    titles: dict[str, str] = field(default_factory=lambda: GROUP_TITLES)


def console_groups(today: date, rules: dict[str, Any], codes: CodeLists) -> list[WorklistGroup]:
    """The worklist groups, with "due soon" shown as due today and due this week (through Sunday)."""
    groups = worklist_groups(today, rules, codes)
    overdue = next(g for g in groups if g.name == "overdue")
    open_obligations = [p for p in overdue.params if p[0] != "due-date"]
    week_end = today + timedelta(days=6 - today.weekday())

    def due_between(name: str, last: date) -> WorklistGroup:
        return WorklistGroup(name, "Task", [*open_obligations, ("due-date", f"ge{today.isoformat()}"),
                                            ("due-date", f"le{last.isoformat()}")])
    return [overdue, due_between("due-today", today), due_between("due-this-week", week_end),
            *(g for g in groups if g.name not in ("overdue", "due-soon"))]


def _narrowed(group: WorklistGroup, filters: Filters, codes: CodeLists) -> list[tuple[str, str]]:
    return [*group.params, *filters.params(group.resource_type, codes["clr-services"])]


async def _count(engine: Engine, group: WorklistGroup, filters: Filters) -> int:
    result = await engine.search(group.resource_type, [*_narrowed(group, filters, engine.codes),
                                                       ("_summary", "count")])
    return int(result.total or 0)


async def _organizations(engine: Engine) -> list[tuple[str, str]]:
    result = await engine.search("Organization", [("_count", str(MAX_ORGANIZATIONS)), ("_total", "none"),
                                                  ("_sort", "name")])
    return [(m.resource_id, label_of(orjson.loads(m.body), engine.rules["identifier_systems"]))
            for m in result.matches if m.body is not None]


def _late_days(today: date, due: Any) -> str:
    moment = parse_moment(due)
    if moment is None:
        return ""
    days = (today - _as_date(moment)).days
    if days > 0:
        return f"{days} day{'s' if days != 1 else ''} late"
    return "due today" if days == 0 else f"in {-days} day{'s' if days != -1 else ''}"


def _status_date(task: dict[str, Any], rules: dict[str, Any]) -> Any:
    return value_of(extension_of(task, extension_url(rules, "date-of-referral-status-update")))


def _row(group: str, resource: dict[str, Any], referrals: dict[str, dict[str, Any]], names: Names,
         today: date, rules: dict[str, Any]) -> WorklistRow:
    if resource["resourceType"] == "ServiceRequest":
        referral, what = resource, "Open duplicate referral"
        when, lateness = resource.get("authoredOn", ""), ""
    else:
        referral = referrals.get(reference_of(resource.get("focus")) or "", {})
        if group in ("overdue", "due-today", "due-this-week", "needs-contact"):
            what = ((resource.get("code") or {}).get("coding") or [{}])[0].get("display", "Notice")
            when = ((resource.get("restriction") or {}).get("period") or {}).get("end", "")
            lateness = _late_days(today, when)
        elif group in NOTICE_DELIVERY_GROUPS:
            kind = ((resource.get("code") or {}).get("coding") or [{}])[0].get("display", "Notice")
            what = f"{kind}: {(resource.get('statusReason') or {}).get('text', '')}".rstrip(": ")
            when = ((resource.get("restriction") or {}).get("period") or {}).get("end", "")
            lateness = _late_days(today, when)
        else:
            what = (resource.get("businessStatus") or {}).get("text", "")
            when = _status_date(resource, rules) or ""
            since = parse_moment(when)
            lateness = "" if since is None else f"{(today - _as_date(since)).days} days"
    performer = (referral.get("performer") or [None])[0]
    return WorklistRow(referral.get("id"), names(referral.get("subject") or resource.get("for")), what, str(when),
                       lateness, (referral.get("code") or {}).get("text", ""), names(performer),
                       names(referral.get("requester")))


def _as_date(moment: datetime | date) -> date:
    return moment.date() if isinstance(moment, datetime) else moment


async def group_counts(engine: Engine, filters: Filters) -> dict[str, int]:
    """Every group's count for the caller of ``engine`` (the cards; kept a little while by the route)."""
    today = Deadlines(engine.rules).local_date(engine.clock())
    return {g.name: await _count(engine, g, filters) for g in console_groups(today, engine.rules, engine.codes)}


async def worklist_page(engine: Engine, group_name: str, filters: Filters, page_token: str | None,
                        counts: dict[str, int] | None) -> WorklistPage:
    """One page of ``group_name`` for the caller of ``engine``, with the group ``counts`` (None while they are
    being counted). Groups of at most ``SORTED_UP_TO`` items are sorted by their date (due or status date);
    larger ones, or groups not counted yet, come in record order, which is cheap to page at any size."""
    rules, codes = engine.rules, engine.codes
    today = Deadlines(rules).local_date(engine.clock())
    groups = {g.name: g for g in console_groups(today, rules, codes)}
    group = groups.get(group_name) or groups["overdue"]
    sorted_by_date = counts is not None and counts.get(group.name, 0) <= SORTED_UP_TO
    params = [*_narrowed(group, filters, codes), ("_count", str(PAGE_SIZE)), ("_total", "none")]
    if sorted_by_date:
        params.append(("_sort", SORT.get(group.name, "_id")))
    if group.resource_type == "Task":
        params.append(("_include", "Task:focus"))
    if page_token:
        params.append((PAGE_TOKEN, page_token))
    result = await engine.search(group.resource_type, params)
    resources = [orjson.loads(m.body) for m in result.matches if m.body is not None]
    referrals = {f"ServiceRequest/{r.resource_id}": orjson.loads(r.body) for r in result.included
                 if r.resource_type == "ServiceRequest" and r.body is not None}
    names = Names(engine)
    await names.load(reference_of(v) for r in [*resources, *referrals.values()]
                     for v in (r.get("subject"), r.get("for"), r.get("requester"), *(r.get("performer") or ())))
    rows = [_row(group.name, r, referrals, names, today, rules) for r in resources]
    services = [(c.code, c.display) for c in codes["clr-services"].concepts.values()]
    return WorklistPage(today, group.name, [(name, GROUP_TITLES.get(name, name), (counts or {}).get(name))
                                            for name in groups], rows, filters, services,
                        await _organizations(engine), result.next_token, result.prev_token,
                        group.url(_narrowed(group, filters, codes)), sorted_by_date)
