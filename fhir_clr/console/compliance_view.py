"""The compliance page: the metrics of ``fhir-clr report compliance`` month by month (referral month, plan-local)
and for the whole range, drawn as charts with their data tables. The data is loaded once for the range through
the caller's engine (``load_report_data``), then each month is a report over it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from fhir_clr.clr.deadlines import add_months
from fhir_clr.clr.report import UNSPECIFIED_REASON, ComplianceReporter, GroupMetrics, ReportData, ReportPeriod
from fhir_clr.console.charts import BarChart, bar_chart
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.reporting.source import load_report_data

DEFAULT_MONTHS = 6
MAX_MONTHS = 24
TOP_ENTITIES = 12
"""Referring Entities drawn in the duplicates and denials chart (the table lists them all)."""


@dataclass(slots=True)
class MonthFigures:
    """One referral month's metrics."""

    month: str
    metrics: GroupMetrics

    @property
    def closure_rate(self) -> float | None:
        """Closed referrals as a percentage of the month's referrals (None without referrals)."""
        return round(100 * self.metrics.closed / self.metrics.referrals, 1) if self.metrics.referrals else None


@dataclass(slots=True)
class CompliancePage:
    """Everything the compliance template shows."""

    start: str
    end: str
    period: ReportPeriod
    as_of: date
    months: list[MonthFigures]
    totals: GroupMetrics
    entities: list[GroupMetrics]
    reasons: list[tuple[str, str]]
    excluded: int
    charts: list[BarChart] = field(default_factory=list)


def _month(text: str, what: str) -> date:
    try:
        year, month = text.split("-")
        return date(int(year), int(month), 1)
    except ValueError:
        raise FhirError(400, "value", f"{what} must be a month written YYYY-MM", expression=what) from None


def month_range(start_text: str, end_text: str, today: date) -> tuple[date, date]:
    """The first days of the first and last months asked for (default: the last six months to this one)."""
    end = _month(end_text, "to") if end_text else today.replace(day=1)
    start = _month(start_text, "from") if start_text else add_months(end, 1 - DEFAULT_MONTHS)
    if start > end:
        raise FhirError(400, "value", "from must not be after to", expression="from")
    if (end.year - start.year) * 12 + end.month - start.month >= MAX_MONTHS:
        raise FhirError(400, "too-costly", f"Show at most {MAX_MONTHS} months at a time", expression="from")
    return start, end


def _month_end(first: date) -> date:
    return add_months(first, 1) - timedelta(days=1)


def _charts(page: CompliancePage) -> list[BarChart]:
    months = [m.month for m in page.months]
    reasons = [(code, display) for code, display in page.reasons
               if any(m.metrics.closed_by_reason.get(code) for m in page.months)]
    entities = sorted(page.entities, key=lambda g: -g.referrals)[:TOP_ENTITIES]
    return [
        bar_chart("Closed loops by reason and referral month", months,
                  [(display, [float(m.metrics.closed_by_reason.get(code, 0)) for m in page.months])
                   for code, display in reasons], stacked=True),
        bar_chart("Loop-closure rate by referral month", months,
                  [("Closure rate", [m.closure_rate for m in page.months])], stacked=False, unit=" %"),
        bar_chart("Median days to authorization and to closure", months,
                  [("Days to authorization", [m.metrics.median_days_to_authorization for m in page.months]),
                   ("Days to closure", [m.metrics.median_days_to_closure for m in page.months])], stacked=False),
        bar_chart("Notices on time, late and pending", months,
                  [("On time", [float(m.metrics.notices.on_time) for m in page.months]),
                   ("Late", [float(m.metrics.notices.late) for m in page.months]),
                   ("Pending", [float(m.metrics.notices.pending) for m in page.months])], stacked=True),
        bar_chart("Duplicates and denials by Referring Entity", [g.display for g in entities],
                  [("Duplicates", [float(g.duplicates) for g in entities]),
                   ("Denials", [float(g.denied) for g in entities])], stacked=False),
    ]


def _by_month(data: ReportData, reporter: ComplianceReporter) -> dict[str, ReportData]:
    """``data`` split by the plan-local month of each referral, each referral with its own Tasks."""
    months: dict[str, ReportData] = {}
    where: dict[str, ReportData] = {}
    for referral in data.referrals:
        day = reporter.local_date(referral.get("authoredOn"))
        if day is None:
            continue
        part = months.setdefault(day.strftime("%Y-%m"), ReportData([], referring_entities=data.referring_entities))
        part.referrals.append(referral)
        where[f"ServiceRequest/{referral.get('id')}"] = part
    for tasks, attribute in ((data.referral_tasks, "referral_tasks"), (data.obligations, "obligations")):
        for task in tasks:
            owner = where.get(str((task.get("focus") or {}).get("reference")))
            if owner is not None:
                getattr(owner, attribute).append(task)
    return months


async def compliance_page(engine: Engine, start_text: str, end_text: str) -> CompliancePage:
    """The compliance figures of the referral months asked for, as the caller of ``engine`` may see them."""
    reporter = ComplianceReporter(engine.rules, engine.codes)
    today = reporter.deadlines.local_date(engine.clock())
    first, last = month_range(start_text, end_text, today)
    period = ReportPeriod(first, _month_end(last))
    data = await load_report_data(engine, period, reporter)
    whole = reporter.report(data, period, today)
    split = _by_month(data, reporter)
    months = []
    cursor = first
    while cursor <= last:
        key = cursor.strftime("%Y-%m")
        report = reporter.report(split.get(key, ReportData([])), ReportPeriod(cursor, _month_end(cursor)), today)
        months.append(MonthFigures(key, report.totals))
        cursor = add_months(cursor, 1)
    concepts = reporter.codes["loop-closure-reason"].concepts
    reasons = [(code, c.display) for code, c in concepts.items()] + [(UNSPECIFIED_REASON, "Reason not given")]
    page = CompliancePage(first.strftime("%Y-%m"), last.strftime("%Y-%m"), period, today, months, whole.totals,
                          whole.by_referring_entity, reasons, whole.excluded_service_referrals)
    page.charts = _charts(page)
    return page
