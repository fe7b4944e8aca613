"""CLR compliance metrics (clr-spec §5, §8) computed from plain FHIR JSON: no I/O, no store.

Input: the CLR Referrals (ServiceRequests) of a period, their referral Tasks and notice obligation Tasks, and the
resources the Referring Entity references point to (for display names). Output: one :class:`GroupMetrics` per
service, per Referring Entity, and for everything together.

Counting rules:
- a referral belongs to the period when the plan-local date of ``authoredOn`` falls in it (both ends included);
  referrals for services excluded from CLR (Sobering Centers) are left out and only counted;
- authorized / denied follow the ``noticing`` status lists of the rules configuration; duplicates are the
  referrals carrying a referral-flags tag (already authorized, or open and in coordination);
- a referral is closed when a referral Task (not entered in error) has the closed Referral Status; the closure
  reason is its ``statusReason`` and the closure date its Referral Loop Closure Date (else its status date);
- days to authorization (authorized referrals only) and to closure are plan-local calendar days from the
  referral date;
- notices are the obligation Tasks of the ``noticing.notice_kinds`` kinds, cancelled ones excepted. A completed
  one is on time when it was satisfied (``executionPeriod.end``, else when it was last updated) no later than
  its due ``restriction.period.end``: compared as plan-local dates for a date, as instants for a dateTime. Any
  other is late when its due day is before the as-of date, else pending. Each notice also counts under the
  channel of the Communication that satisfied it (``recorded`` when none names one, ``not-sent`` when open), so
  the figures come from the real send times the notice worker records.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import extension_of, extension_url
from fhir_clr.clr.deadlines import Deadlines, parse_moment
from fhir_clr.fhirmodel.profiles import claimed_profiles, claims_profile

UNKNOWN_SERVICE = "unknown"
"""Group key of referrals whose ``code`` names no CLR service."""
SELF_REFERRALS = "self-or-caretaker"
"""Group key of self or caretaker referrals: the requester is the Member's side, never named in the report."""
UNKNOWN_ENTITY = "unknown"
"""Group key of referrals without a usable requester reference."""
UNSPECIFIED_REASON = "unspecified"
"""Closure reason key of a closed referral Task without a recognized Reason for Referral Loop Closure."""
MEMBER_SIDE_TYPES = frozenset({"Patient", "RelatedPerson"})
NOT_OBLIGATIONS_ANY_MORE = frozenset({"cancelled", "entered-in-error"})


@dataclass(frozen=True, slots=True)
class ReportPeriod:
    """Referral dates covered by the report, plan-local, both ends included."""

    start: date
    end: date

    def __contains__(self, day: date) -> bool:
        return self.start <= day <= self.end


@dataclass(slots=True)
class ReportData:
    """The FHIR resources a report is computed from (JSON dicts as stored)."""

    referrals: list[dict[str, Any]]
    referral_tasks: list[dict[str, Any]] = field(default_factory=list)
    obligations: list[dict[str, Any]] = field(default_factory=list)
    referring_entities: list[dict[str, Any]] = field(default_factory=list)
    """Organization, Practitioner and PractitionerRole resources that referrals name as requester."""
    notice_channels: dict[str, str] = field(default_factory=dict)
    """Obligation id -> the channel code of the notice that satisfied it (its Communication's notice-channel)."""


NOT_SENT, RECORDED = "not-sent", "recorded"


@dataclass(slots=True)
class NoticeCounts:
    """Timeliness of the notices owed for a group of referrals."""

    on_time: int = 0
    late: int = 0
    pending: int = 0
    by_channel: dict[str, dict[str, int]] = field(default_factory=dict)
    """Channel code (``not-sent`` for notices not sent yet) -> the same three counts."""

    def record(self, outcome: str, channel: str | None = None) -> None:
        """Count one notice whose outcome is ``on_time``, ``late`` or ``pending``, sent by ``channel``."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        counts = self.by_channel.setdefault(channel or NOT_SENT, {"on_time": 0, "late": 0, "pending": 0})
        counts[outcome] += 1

    def add(self, other: NoticeCounts) -> None:
        """Add the counts of ``other``."""
        self.on_time += other.on_time
        self.late += other.late
        self.pending += other.pending
        for channel, counts in other.by_channel.items():
            mine = self.by_channel.setdefault(channel, {"on_time": 0, "late": 0, "pending": 0})
            for outcome, count in counts.items():
                mine[outcome] += count


@dataclass(slots=True)
class GroupMetrics:
    """Compliance metrics of one group of referrals (a service, a Referring Entity, or all of them)."""

    key: str
    display: str
    referrals: int = 0
    authorized: int = 0
    denied: int = 0
    duplicates_already_authorized: int = 0
    duplicates_coordination_needed: int = 0
    closed_by_reason: dict[str, int] = field(default_factory=dict)
    days_to_authorization: list[int] = field(default_factory=list)
    days_to_closure: list[int] = field(default_factory=list)
    notices: NoticeCounts = field(default_factory=NoticeCounts)

    @property
    def duplicates(self) -> int:
        """Referrals flagged as duplicates of either kind."""
        return self.duplicates_already_authorized + self.duplicates_coordination_needed

    @property
    def closed(self) -> int:
        """Referrals whose loop is closed."""
        return sum(self.closed_by_reason.values())

    @property
    def median_days_to_authorization(self) -> float | None:
        """Median calendar days from referral to authorization (None without authorized referrals)."""
        return _median(self.days_to_authorization)

    @property
    def median_days_to_closure(self) -> float | None:
        """Median calendar days from referral to loop closure (None without closed referrals)."""
        return _median(self.days_to_closure)


@dataclass(slots=True)
class ComplianceReport:
    """The whole report: groups sorted by key, plus totals."""

    period: ReportPeriod
    as_of: date
    timezone: str
    rules_version: str
    by_service: list[GroupMetrics]
    by_referring_entity: list[GroupMetrics]
    totals: GroupMetrics
    excluded_service_referrals: int


@dataclass(frozen=True, slots=True)
class _ReferralFacts:
    """What one referral contributes to the groups it belongs to."""

    authorized: bool
    denied: bool
    flags: frozenset[str]
    closure_reason: str | None
    days_to_authorization: int | None
    days_to_closure: int | None
    notices: NoticeCounts


def _median(values: list[int]) -> float | None:
    return float(statistics.median(values)) if values else None


def _reference(value: Any) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) else None


class ComplianceReporter:
    """Computes compliance reports with one rules configuration and set of code lists."""

    def __init__(self, rules: dict[str, Any], codes: CodeLists) -> None:
        self.rules = rules
        self.codes = codes
        self.deadlines = Deadlines(self.rules)
        self._noticing: dict[str, Any] = self.rules["noticing"]
        self._flags: dict[str, str] = self.rules["duplicates"]["flags"]
        self._flags_system = self.codes["referral-flags"].system
        self._referral_task_profile = extension_url(self.rules, "clr-referral-task")
        self._obligation_profile = extension_url(self.rules, "clr-notice-obligation")

    def local_date(self, value: Any) -> date | None:
        """The plan-local date of a FHIR date or dateTime string; None when absent or unparseable."""
        moment = parse_moment(value)
        return None if moment is None else self.deadlines.local_date(moment)

    def is_referral_task(self, task: dict[str, Any]) -> bool:
        """A Task claiming the CLR Referral Task profile, or claiming none (its focus decides, as on writes)."""
        claimed = claimed_profiles(task)
        return self._referral_task_profile in claimed or not claimed

    def is_obligation(self, task: dict[str, Any]) -> bool:
        """A Task claiming the CLR Notice Obligation profile."""
        return claims_profile(task, self._obligation_profile)

    # ---- the report ----------------------------------------------------------------------------------

    def report(self, data: ReportData, period: ReportPeriod, as_of: date) -> ComplianceReport:
        """The compliance report of the referrals dated within ``period``; ``as_of`` decides late vs pending."""
        tasks_by_focus = _by_focus(t for t in data.referral_tasks if t.get("status") != "entered-in-error")
        obligations_by_focus = _by_focus(o for o in data.obligations if self._is_notice(o))
        names = _entity_names(data.referring_entities)
        services = self.codes["clr-services"]
        by_service: dict[str, GroupMetrics] = {}
        by_entity: dict[str, GroupMetrics] = {}
        totals = GroupMetrics("all", "All referrals")
        excluded = 0
        for referral in data.referrals:
            referred = self.local_date(referral.get("authoredOn"))
            if referred is None or referred not in period:
                continue
            service = services.code_of(referral["code"]) if referral.get("code") else None
            if service is not None and services.concepts[service].properties.get("clr-excluded"):
                excluded += 1
                continue
            reference = f"ServiceRequest/{referral.get('id')}"
            facts = self._facts(referral, referred, tasks_by_focus.get(reference, []),
                                obligations_by_focus.get(reference, []), as_of, data.notice_channels)
            service_key = service or UNKNOWN_SERVICE
            if service_key not in by_service:
                display = services.concepts[service].display if service else "Unrecognized service"
                by_service[service_key] = GroupMetrics(service_key, display)
            entity_key, entity_display = self._referring_entity(referral, names)
            if entity_key not in by_entity:
                by_entity[entity_key] = GroupMetrics(entity_key, entity_display)
            for group in (by_service[service_key], by_entity[entity_key], totals):
                self._add(group, facts)
        return ComplianceReport(period, as_of, str(self.deadlines.timezone), str(self.rules.get("version", "")),
                                sorted(by_service.values(), key=lambda g: g.key),
                                sorted(by_entity.values(), key=lambda g: g.key), totals, excluded)

    # ---- one referral ----------------------------------------------------------------------------------

    def _facts(self, referral: dict[str, Any], referred: date, tasks: list[dict[str, Any]],
               obligations: list[dict[str, Any]], as_of: date,
               channels: dict[str, str] | None = None) -> _ReferralFacts:
        status, decided = self._authorization(referral)
        authorized = status in self._noticing["approved_authorization_statuses"]
        denied = status in self._noticing["denied_authorization_statuses"]
        closure = self._closure(tasks)
        closure_reason, closed_on = closure if closure else (None, None)
        notices = NoticeCounts()
        for obligation in obligations:
            sent_by = (channels or {}).get(str(obligation.get("id"))) if obligation.get("status") == "completed" \
                else None
            notices.record(self._timeliness(obligation, as_of), sent_by or (RECORDED if obligation.get(
                "status") == "completed" else None))
        return _ReferralFacts(
            authorized=authorized, denied=denied, flags=self._flags_of(referral),
            closure_reason=closure_reason,
            days_to_authorization=(decided - referred).days if authorized and decided else None,
            days_to_closure=(closed_on - referred).days if closed_on else None,
            notices=notices)

    def _authorization(self, referral: dict[str, Any]) -> tuple[str | None, date | None]:
        """The authorization status code and the plan-local decision date."""
        extension = extension_of(referral, extension_url(self.rules, "authorization-decision"))
        if extension is None:
            return None, None
        parts = {p.get("url"): p for p in extension.get("extension", ()) if isinstance(p, dict)}
        status = self.codes["authorization-status"].code_of(parts.get("status", {}).get("valueCoding"))
        return status, self.local_date(parts.get("date", {}).get("valueDateTime"))

    def _flags_of(self, referral: dict[str, Any]) -> frozenset[str]:
        meta = referral.get("meta")
        tags = meta.get("tag") if isinstance(meta, dict) else None
        codes: frozenset[Any] = frozenset(t.get("code") for t in tags or () if isinstance(t, dict)
                                          and t.get("system") == self._flags_system)
        return codes

    def _closure(self, tasks: list[dict[str, Any]]) -> tuple[str, date | None] | None:
        """(closure reason, closure date) of the first closed referral Task, or None while the loop is open."""
        closed_status = self.rules["workflow"]["closed_referral_status"]
        reasons = self.codes["loop-closure-reason"]
        for task in tasks:
            if self.codes["referral-status"].code_of(task.get("businessStatus") or {}) != closed_status:
                continue
            reason = reasons.code_of(task["statusReason"]) if task.get("statusReason") else None
            closure_date = extension_of(task, extension_url(self.rules, "referral-loop-closure-date")) or {}
            status_date = extension_of(task, extension_url(self.rules, "date-of-referral-status-update")) or {}
            closed_on = self.local_date(closure_date.get("valueDate")) \
                or self.local_date(status_date.get("valueDateTime"))
            return reason or UNSPECIFIED_REASON, closed_on
        return None

    def _is_notice(self, obligation: dict[str, Any]) -> bool:
        return (obligation.get("status") not in NOT_OBLIGATIONS_ANY_MORE
                and self.codes["notice-kinds"].code_of(obligation.get("code") or {}) in self._noticing["notice_kinds"])

    def _timeliness(self, obligation: dict[str, Any], as_of: date) -> str:
        """``on_time``, ``late`` or ``pending`` (a NoticeCounts field name) for one notice obligation."""
        due_text = ((obligation.get("restriction") or {}).get("period") or {}).get("end")
        due = parse_moment(due_text)
        if obligation.get("status") == "completed":
            done_text = (obligation.get("executionPeriod") or {}).get("end") \
                or (obligation.get("meta") or {}).get("lastUpdated")
            done = parse_moment(done_text)
            if due is None or done is None:
                return "on_time" if due is None else "late"
            if isinstance(due, datetime) and isinstance(done, datetime):
                return "on_time" if _aware(done) <= _aware(due) else "late"
            return "on_time" if self.deadlines.local_date(done) <= self.deadlines.local_date(due) else "late"
        if due is not None and self.deadlines.local_date(due) < as_of:
            return "late"
        return "pending"

    def _referring_entity(self, referral: dict[str, Any], names: dict[str, str]) -> tuple[str, str]:
        """Group key and display name of the referral's Referring Entity; the Member's side is never named."""
        referral_type = None
        if (ext := extension_of(referral, extension_url(self.rules, "referral-type"))) is not None:
            referral_type = self.codes["referral-type"].code_of(ext.get("valueCoding"))
        reference = _reference(referral.get("requester"))
        if referral_type in self._noticing["self_referral_types"] or (
                reference and reference.partition("/")[0] in MEMBER_SIDE_TYPES):
            return SELF_REFERRALS, "Self or caretaker referrals"
        if not reference or "/" not in reference:
            return UNKNOWN_ENTITY, "Unknown Referring Entity"
        return reference, names.get(reference, reference)

    # ---- aggregation ---------------------------------------------------------------------------------

    def _add(self, group: GroupMetrics, facts: _ReferralFacts) -> None:
        group.referrals += 1
        group.authorized += facts.authorized
        group.denied += facts.denied
        group.duplicates_already_authorized += self._flags["already_authorized"] in facts.flags
        group.duplicates_coordination_needed += self._flags["open_referral"] in facts.flags
        if facts.closure_reason is not None:
            group.closed_by_reason[facts.closure_reason] = group.closed_by_reason.get(facts.closure_reason, 0) + 1
        if facts.days_to_authorization is not None:
            group.days_to_authorization.append(facts.days_to_authorization)
        if facts.days_to_closure is not None:
            group.days_to_closure.append(facts.days_to_closure)
        group.notices.add(facts.notices)


def _aware(moment: datetime) -> datetime:
    """A naive dateTime counts as UTC (as in :meth:`Deadlines.local_date`)."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _by_focus(tasks: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for task in tasks:
        if (reference := _reference(task.get("focus"))) is not None:
            grouped.setdefault(reference, []).append(task)
    return grouped


def _practitioner_name(practitioner: dict[str, Any]) -> str | None:
    for name in practitioner.get("name", ()):
        if isinstance(name, dict):
            text = name.get("text") or " ".join([*name.get("given", ()), name.get("family", "")]).strip()
            if text:
                return text
    return None


_DISPLAY_NAMES: dict[str, Callable[[dict[str, Any]], str | None]] = {
    "Organization": lambda r: r.get("name"),
    "Practitioner": _practitioner_name,
    "PractitionerRole": lambda r: (r.get("organization") or {}).get("display")
    or (r.get("practitioner") or {}).get("display"),
}


def _entity_names(resources: Iterable[dict[str, Any]]) -> dict[str, str]:
    """``Type/id`` → display name for the Referring Entity resources that have one."""
    names: dict[str, str] = {}
    for resource in resources:
        name_of = _DISPLAY_NAMES.get(resource.get("resourceType", ""))
        name = name_of(resource) if name_of else None
        if isinstance(name, str) and name and resource.get("id"):
            names[f"{resource['resourceType']}/{resource['id']}"] = name
    return names


def compliance_report(data: ReportData, period: ReportPeriod, as_of: date, *,
                      rules: dict[str, Any], codes: CodeLists) -> ComplianceReport:
    """The compliance report of ``data`` under ``rules`` and ``codes`` (see the module docstring for what is
    counted)."""
    return ComplianceReporter(rules, codes).report(data, period, as_of)
