"""CLR compliance metrics (clr-spec §5, §8), computed from plain FHIR JSON: per service and per Referring
Entity — referrals, authorized, denied, duplicates, closed by reason, median days to authorization and to
closure, notices on time / late / pending. Pure: the caller loads the resources (see ``report_source``)."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from fhir_clr.clr.codes import CodeLists, default_code_lists
from fhir_clr.clr.config import default_rules, extension_url
from fhir_clr.clr.deadlines import Deadlines, parse_moment

SCHEMA = "fhir-clr/compliance-report"
SCHEMA_VERSION = "1"


@dataclass(slots=True)
class Metrics:
    """The counts of one group (a service, a Referring Entity, or everything)."""

    referrals: int = 0
    authorized: int = 0
    denied: int = 0
    duplicates: int = 0
    duplicates_denied: int = 0
    duplicates_open: int = 0
    closed_by_reason: Counter[str] = field(default_factory=Counter)
    days_to_authorization: list[int] = field(default_factory=list)
    days_to_closure: list[int] = field(default_factory=list)
    notices_on_time: int = 0
    notices_late: int = 0
    notices_pending: int = 0

    def as_json(self) -> dict[str, Any]:
        """The metrics as JSON (medians rounded to one decimal; None without data)."""
        return {"referrals": self.referrals, "authorized": self.authorized, "denied": self.denied,
                "duplicates": self.duplicates, "duplicatesDenied": self.duplicates_denied,
                "duplicatesOpen": self.duplicates_open, "closedByReason": dict(sorted(self.closed_by_reason.items())),
                "medianDaysToAuthorization": _median(self.days_to_authorization),
                "medianDaysToClosure": _median(self.days_to_closure),
                "noticesOnTime": self.notices_on_time, "noticesLate": self.notices_late,
                "noticesPending": self.notices_pending}


def _median(values: list[int]) -> float | None:
    return round(float(statistics.median(values)), 1) if values else None


@dataclass(slots=True)
class ComplianceReport:
    """Metrics per service, per Referring Entity and in total for referrals dated within a period."""

    period_start: date
    period_end: date
    as_of: date
    by_service: dict[str, Metrics] = field(default_factory=lambda: defaultdict(Metrics))
    by_referring_entity: dict[str, Metrics] = field(default_factory=lambda: defaultdict(Metrics))
    totals: Metrics = field(default_factory=Metrics)
    names: dict[str, str] = field(default_factory=dict)

    def as_json(self, generated: datetime) -> dict[str, Any]:
        """The versioned JSON document (spec §8)."""
        return {"schema": SCHEMA, "version": SCHEMA_VERSION, "generated": generated.isoformat(),
                "period": {"start": self.period_start.isoformat(), "end": self.period_end.isoformat()},
                "asOf": self.as_of.isoformat(),
                "byService": [{"service": k, "name": self.names.get(k, k), **m.as_json()}
                              for k, m in sorted(self.by_service.items())],
                "byReferringEntity": [{"referringEntity": k, "name": self.names.get(k, k), **m.as_json()}
                                      for k, m in sorted(self.by_referring_entity.items())],
                "totals": self.totals.as_json()}


class ComplianceCalculator:
    """Computes a :class:`ComplianceReport` with one rules configuration and code-list set."""

    def __init__(self, rules: dict[str, Any] | None = None, codes: CodeLists | None = None) -> None:
        self.rules = rules or default_rules()
        self.codes = codes or default_code_lists()
        self.deadlines = Deadlines(self.rules)
        noticing = self.rules["noticing"]
        self._approved = set(noticing["approved_authorization_statuses"])
        self._denied = set(noticing["denied_authorization_statuses"])
        self._notice_kinds = set(noticing["notice_kinds"])
        self._flags = self.rules["duplicates"]["flags"]
        self._auth_url = extension_url(self.rules, "authorization-decision")
        self._closure_url = extension_url(self.rules, "referral-loop-closure-date")
        self._flag_system = self.codes["referral-flags"].system
        self._closed = self.rules["workflow"]["closed_referral_status"]

    def compute(self, referrals: list[dict[str, Any]], tasks: list[dict[str, Any]], start: date, end: date,
                as_of: date, names: dict[str, str] | None = None) -> ComplianceReport:
        """Metrics for the ``referrals`` authored from ``start`` to ``end`` (inclusive, plan-local), using their
        referral Tasks and obligation Tasks (``tasks``, any order)."""
        report = ComplianceReport(start, end, as_of, names=dict(names or {}))
        by_focus: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for task in tasks:
            focus = (task.get("focus") or {}).get("reference")
            if isinstance(focus, str) and task.get("status") != "entered-in-error":
                by_focus[focus].append(task)
        services = self.codes["clr-services"]
        for referral in referrals:
            authored = parse_moment(referral.get("authoredOn"))
            if authored is None or not start <= self.deadlines.local_date(authored) <= end:
                continue
            service = services.code_of(referral.get("code")) or "unknown"
            report.names.setdefault(service, services.concepts[service].display if service in services.concepts
                                    else service)
            entity = (referral.get("requester") or {}).get("reference") or "unknown"
            groups = (report.by_service[service], report.by_referring_entity[entity], report.totals)
            related = by_focus.get(f"ServiceRequest/{referral.get('id')}", [])
            for metrics in groups:
                self._add(metrics, referral, self.deadlines.local_date(authored), related, as_of)
        return report

    # ---- one referral ------------------------------------------------------------------------------------

    def _add(self, metrics: Metrics, referral: dict[str, Any], authored: date, related: list[dict[str, Any]],
             as_of: date) -> None:
        metrics.referrals += 1
        status, decided = self._decision(referral)
        if status in self._approved:
            metrics.authorized += 1
        if status in self._denied:
            metrics.denied += 1
        if status is not None and decided is not None and (status in self._approved or status in self._denied):
            metrics.days_to_authorization.append((self.deadlines.local_date(decided) - authored).days)
        flags = {t.get("code") for t in (referral.get("meta") or {}).get("tag", ())
                 if t.get("system") == self._flag_system}
        if flags & set(self._flags.values()):
            metrics.duplicates += 1
            metrics.duplicates_denied += self._flags["already_authorized"] in flags
            metrics.duplicates_open += self._flags["open_referral"] in flags
        for task in related:
            if self._is_profile(task, "clr-notice-obligation"):
                self._add_notice(metrics, task, as_of)
            else:
                self._add_closure(metrics, task, authored)

    def _decision(self, referral: dict[str, Any]) -> tuple[str | None, datetime | date | None]:
        for extension in referral.get("extension", ()):
            if extension.get("url") == self._auth_url:
                parts = {p.get("url"): p for p in extension.get("extension", ())}
                status = self.codes["authorization-status"].code_of(parts.get("status", {}).get("valueCoding"))
                return status, parse_moment(parts.get("date", {}).get("valueDateTime"))
        return None, None

    def _is_profile(self, task: dict[str, Any], name: str) -> bool:
        url = extension_url(self.rules, name)
        return any(str(p).split("|")[0] == url for p in (task.get("meta") or {}).get("profile", ()))

    def _add_closure(self, metrics: Metrics, task: dict[str, Any], authored: date) -> None:
        if self.codes["referral-status"].code_of(task.get("businessStatus")) != self._closed:
            return
        reason = self.codes["loop-closure-reason"].code_of(task.get("statusReason")) or "unknown"
        metrics.closed_by_reason[reason] += 1
        closed = next((parse_moment(e.get("valueDate")) for e in task.get("extension", ())
                       if e.get("url") == self._closure_url), None)
        if closed is not None:
            metrics.days_to_closure.append((self.deadlines.local_date(closed) - authored).days)

    def _add_notice(self, metrics: Metrics, obligation: dict[str, Any], as_of: date) -> None:
        kind = ((obligation.get("code") or {}).get("coding") or [{}])[0].get("code")
        if kind not in self._notice_kinds or obligation.get("status") == "cancelled":
            return
        due = parse_moment(((obligation.get("restriction") or {}).get("period") or {}).get("end"))
        if due is None:
            return
        if obligation.get("status") == "completed":
            done = parse_moment((obligation.get("executionPeriod") or {}).get("end"))
            on_time = done is not None and self._not_after(done, due)
            metrics.notices_on_time += on_time
            metrics.notices_late += not on_time
        elif self.deadlines.local_date(due) < as_of:
            metrics.notices_late += 1
        else:
            metrics.notices_pending += 1

    def _not_after(self, done: datetime | date, due: datetime | date) -> bool:
        if isinstance(due, datetime) and isinstance(done, datetime):
            return done <= due if done.tzinfo and due.tzinfo else done.replace(tzinfo=None) <= due.replace(
                tzinfo=None)
        return self.deadlines.local_date(done) <= self.deadlines.local_date(due)
