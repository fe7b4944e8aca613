"""Renders a :class:`ComplianceReport` as the versioned JSON export or as plain-text tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from fhir_clr.clr.report import UNSPECIFIED_REASON, ComplianceReport, GroupMetrics

SCHEMA = "fhir-clr/compliance-report"
SCHEMA_VERSION = "1"
"""Bump on any change of the JSON document's shape or meaning."""

METRIC_HEADERS = ["Referrals", "Authorized", "Denied", "Duplicates", "Closed", "Median days to auth",
                  "Median days to closure", "Notices on time", "Notices late", "Notices pending"]


def _group_document(group: GroupMetrics, reason_codes: Sequence[str]) -> dict[str, Any]:
    by_reason = {code: group.closed_by_reason.get(code, 0) for code in reason_codes}
    by_reason.update({code: n for code, n in sorted(group.closed_by_reason.items()) if code not in by_reason})
    return {
        "key": group.key,
        "display": group.display,
        "referrals": group.referrals,
        "authorized": group.authorized,
        "denied": group.denied,
        "duplicates": {"total": group.duplicates, "alreadyAuthorized": group.duplicates_already_authorized,
                       "coordinationNeeded": group.duplicates_coordination_needed},
        "closed": {"total": group.closed, "byReason": by_reason},
        "medianDaysToAuthorization": group.median_days_to_authorization,
        "medianDaysToClosure": group.median_days_to_closure,
        "notices": {"onTime": group.notices.on_time, "late": group.notices.late,
                    "pending": group.notices.pending,
                    "byChannel": {channel: {"onTime": c["on_time"], "late": c["late"], "pending": c["pending"]}
                                  for channel, c in sorted(group.notices.by_channel.items())}},
    }


def report_document(report: ComplianceReport, generated: datetime, reason_codes: Sequence[str]) -> dict[str, Any]:
    """The JSON export: every group lists every closure reason of ``reason_codes`` (zeros included), so the
    shape does not depend on the data."""
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "period": {"from": report.period.start.isoformat(), "to": report.period.end.isoformat(),
                   "timezone": report.timezone},
        "asOf": report.as_of.isoformat(),
        "generated": generated.isoformat(),
        "rulesVersion": report.rules_version,
        "byService": [_group_document(g, reason_codes) for g in report.by_service],
        "byReferringEntity": [_group_document(g, reason_codes) for g in report.by_referring_entity],
        "totals": _group_document(report.totals, reason_codes),
        "excludedServiceReferrals": report.excluded_service_referrals,
    }


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if value.is_integer() else f"{value:.1f}"


def _metric_cells(group: GroupMetrics) -> list[str]:
    return [str(v) for v in (group.referrals, group.authorized, group.denied, group.duplicates, group.closed)] + [
        _number(group.median_days_to_authorization), _number(group.median_days_to_closure),
        str(group.notices.on_time), str(group.notices.late), str(group.notices.pending)]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An aligned plain-text table: the first column left-aligned, the others right-aligned."""
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]

    def line(cells: Sequence[str]) -> str:
        padded = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
        return "  ".join(padded)

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]).rstrip()


def _sections(title: str, label: str, groups: list[GroupMetrics], totals: GroupMetrics) -> list[str]:
    rows = [[g.display, *_metric_cells(g)] for g in groups] + [["Total", *_metric_cells(totals)]]
    out = [title, format_table([label, *METRIC_HEADERS], rows), ""]
    reasons = sorted({code for g in groups for code in g.closed_by_reason}, key=lambda c: (c == UNSPECIFIED_REASON, c))
    if reasons:
        closed_rows = [[g.display, *(str(g.closed_by_reason.get(c, 0)) for c in reasons)] for g in groups]
        closed_rows.append(["Total", *(str(totals.closed_by_reason.get(c, 0)) for c in reasons)])
        out += [f"{title}: closed by reason", format_table([label, *reasons], closed_rows), ""]
    return out


def render_text(report: ComplianceReport) -> str:
    """The report as plain-text tables (by service, then by Referring Entity)."""
    lines = [f"CLR compliance report: referrals dated {report.period.start} to {report.period.end} "
             f"({report.timezone}), notices as of {report.as_of}", ""]
    if report.excluded_service_referrals:
        lines += [f"Left out: {report.excluded_service_referrals} referral(s) for services excluded from CLR.", ""]
    lines += _sections("By service", "Service", report.by_service, report.totals)
    lines += _sections("By Referring Entity", "Referring Entity", report.by_referring_entity, report.totals)
    return "\n".join(lines).rstrip() + "\n"
