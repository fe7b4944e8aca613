"""``fhir-clr report compliance --from … --to …``: CLR compliance metrics per service and per Referring
Entity, as aligned tables or as the versioned JSON document."""

from __future__ import annotations

import argparse
import asyncio
import os
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import orjson

COLUMNS = [("referrals", "referrals"), ("authorized", "auth"), ("denied", "denied"), ("duplicates", "dupl"),
           ("medianDaysToAuthorization", "days→auth"), ("medianDaysToClosure", "days→close"),
           ("noticesOnTime", "on time"), ("noticesLate", "late"), ("noticesPending", "pending")]


def add_parser(commands: Any) -> None:
    """Register ``report compliance``."""
    report = commands.add_parser("report", help="compliance reporting")
    kinds = report.add_subparsers(dest="report", required=True)
    compliance = kinds.add_parser("compliance", help="CLR metrics per service and Referring Entity")
    compliance.add_argument("--from", dest="start", type=date.fromisoformat, required=True,
                            help="first referral date (YYYY-MM-DD)")
    compliance.add_argument("--to", dest="end", type=date.fromisoformat, required=True,
                            help="last referral date (YYYY-MM-DD)")
    compliance.add_argument("--as-of", type=date.fromisoformat, default=None,
                            help="day that decides whether open notices are late (default today)")
    compliance.add_argument("--format", choices=["table", "json"], default="table")
    compliance.add_argument("--data", type=Path, default=Path(os.environ.get("FHIR_CLR_DATA_DIR", "./data")),
                            help="data directory of the embedded store (default ./data)")
    compliance.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from fhir_clr.logging_setup import configure_logging

    configure_logging("WARNING")
    document = asyncio.run(_report(args))
    if args.format == "json":
        print(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode())
    else:
        print(render_tables(document))
    return 0


async def _report(args: argparse.Namespace) -> dict[str, Any]:
    from fhir_clr.app import build_services
    from fhir_clr.clr.deadlines import Deadlines
    from fhir_clr.clr.report import ComplianceCalculator
    from fhir_clr.clr.report_source import load_report_inputs
    from fhir_clr.config import Settings

    services = await build_services(Settings(data_dir=args.data))
    try:
        calculator = ComplianceCalculator()
        now = datetime.now(UTC)
        as_of = args.as_of or Deadlines(calculator.rules).local_date(now)
        referrals, tasks, names = await load_report_inputs(services.engine, args.start, args.end)
        return calculator.compute(referrals, tasks, args.start, args.end, as_of, names).as_json(now)
    finally:
        await services.store.close()


def render_tables(document: dict[str, Any]) -> str:
    """The report as two aligned plain-text tables plus totals and closure reasons."""
    period = document["period"]
    lines = [f"CLR compliance, referrals dated {period['start']} to {period['end']} (as of {document['asOf']})"]
    for title, rows in (("By service", document["byService"]), ("By Referring Entity", document["byReferringEntity"]),
                        ("Total", [{"name": "all referrals", **document["totals"]}])):
        width = max([len(title), *(len(str(r["name"])) for r in rows)])
        lines += ["", f"{title:<{width}}  " + "  ".join(f"{h:>10}" for _, h in COLUMNS)]
        for row in rows:
            cells = ["-" if row[key] is None else str(row[key]) for key, _ in COLUMNS]
            lines.append(f"{row['name']!s:<{width}}  " + "  ".join(f"{c:>10}" for c in cells))
    reasons = document["totals"]["closedByReason"]
    if reasons:
        lines += ["", "Closed by reason: " + ", ".join(f"{k} {v}" for k, v in reasons.items())]
    return "\n".join(lines)
