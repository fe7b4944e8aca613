"""Command line: ``fhir-clr serve | seed | clients | import | export | report | letters``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from fhir_clr.cli_settings import add_data_argument, command_settings, read_only_settings
from fhir_clr.config import ConfigurationError, package_version

if TYPE_CHECKING:
    from fhir_clr.clr.report import ComplianceReporter, ReportData, ReportPeriod
    from fhir_clr.config import Settings

LOOPBACK = "127.0.0.1"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from fhir_clr.app import create_app

    settings = command_settings(args, dev=args.dev, base_url=args.base_url)
    host = args.host or LOOPBACK
    if settings.dev and host != LOOPBACK:
        print("--dev serves without authentication and binds to loopback only", file=sys.stderr)
        return 2
    if settings.listen_url is None:
        settings = settings.model_copy(update={"listen_url": f"http://{host}:{args.port}"})
    try:
        settings.check_secured()
    except ConfigurationError as refused:
        print(f"fhir-clr: {refused}", file=sys.stderr)
        return 2
    print(f"fhir-clr {package_version()}: FHIR R4 base http://{host}:{args.port}/  "
          f"(data: {settings.data_dir.resolve()})", file=sys.stderr)
    if settings.dev:
        print("=" * 72 + "\n  DEV MODE: no authentication. Never use with real member data.\n" + "=" * 72,
              file=sys.stderr)
    options: dict[str, Any] = {"host": host, "port": args.port, "access_log": False, "log_config": None,
                               "timeout_graceful_shutdown": 30, "proxy_headers": True}
    if args.workers == 1:
        uvicorn.run(create_app(settings), **options)
    else:
        # uvicorn starts each worker as a new process from an import string; the settings reach them as the
        # environment of those processes (the only channel it offers), set here and nowhere else.
        os.environ.update(settings.as_environment())
        uvicorn.run("fhir_clr.app:create_app", factory=True, workers=args.workers, **options)
    return 0


def _seed(args: argparse.Namespace) -> int:
    from fhir_clr.seed import load_sample_data

    settings = command_settings(args)
    where = settings.data_dir.resolve() if not settings.store_url else "the configured store"
    if args.members:
        totals = asyncio.run(_seed_population(settings, args))
        if totals is None:
            print(f"{where} already holds referrals: no synthetic population added (seed an empty store)")
            return 0
        print(f"synthetic population of {args.members} Members loaded in {where}: "
              f"{totals['applied']} file rows applied, {totals['unchanged']} unchanged, {totals['rejected']} "
              "rejected (two rows are bad on purpose)")
        return 0
    count = asyncio.run(load_sample_data(settings))
    print(f"sample referrals present in {where} ({count} entries; loading twice adds nothing)")
    return 0


def _report_compliance(args: argparse.Namespace) -> int:
    from fhir_clr.clr.report import ReportPeriod
    from fhir_clr.clr.report_render import render_text, report_document

    if args.from_date > args.to_date:
        print("--from must not be after --to", file=sys.stderr)
        return 2
    settings = read_only_settings(args)
    if settings is None:
        return 2
    period = ReportPeriod(args.from_date, args.to_date)
    data, reporter = asyncio.run(_load_report(settings, period))
    as_of = args.as_of or reporter.deadlines.local_date(datetime.now(UTC))
    report = reporter.report(data, period, as_of)
    if args.format == "json":
        reasons = list(reporter.codes["loop-closure-reason"].concepts)
        document = report_document(report, datetime.now(UTC).replace(microsecond=0), reasons)
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_text(report))
    return 0


async def _load_report(settings: Settings, period: ReportPeriod) -> tuple[ReportData, ComplianceReporter]:
    """What the compliance report of ``period`` needs, read from the store ``settings`` name (opened for the call,
    then closed), with the reporter of the configured rules and code lists."""
    from fhir_clr.app import build_services
    from fhir_clr.clr.report import ComplianceReporter
    from fhir_clr.reporting.source import load_report_data

    services = await build_services(settings)
    try:
        reporter = ComplianceReporter(services.rules, services.codes)
        return await load_report_data(services.engine, period, reporter), reporter
    finally:
        await services.store.close()


def _add_report_parser(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser("report", help="reports computed from the stored referrals")
    kinds = report.add_subparsers(dest="report", required=True)
    compliance = kinds.add_parser(
        "compliance", help="CLR compliance metrics per service and per Referring Entity",
        description="Referrals dated (plan-local authoredOn) within --from..--to, both included.")
    compliance.add_argument("--from", dest="from_date", type=date.fromisoformat, required=True,
                            metavar="YYYY-MM-DD", help="first referral date")
    compliance.add_argument("--to", dest="to_date", type=date.fromisoformat, required=True,
                            metavar="YYYY-MM-DD", help="last referral date")
    compliance.add_argument("--as-of", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                            help="day deciding whether an unsent notice is late (default: today, plan-local)")
    compliance.add_argument("--format", choices=("table", "json"), default="table",
                            help="a text table (default) or a JSON document")
    add_data_argument(compliance)
    compliance.set_defaults(func=_report_compliance)


async def _seed_population(settings: Settings, args: argparse.Namespace) -> dict[str, int] | None:
    """Load a synthetic population into an empty store; None when the store already holds referrals (a
    population generated on another day would be a second one)."""
    from fhir_clr.app import build_services
    from fhir_clr.synthetic import generate_population, load_population

    services = await build_services(settings)
    try:
        if await services.engine.planner.find("ServiceRequest", [], limit=1):
            return None
        population = generate_population(args.members, args.as_of or date.today(), services.codes, args.seed_value)
        return await load_population(services, population, args.files)
    finally:
        await services.store.close()


def build_parser() -> argparse.ArgumentParser:
    """The ``fhir-clr`` argument parser."""
    parser = argparse.ArgumentParser(prog="fhir-clr", description="FHIR R4 server for Medi-Cal CLR. Every "
                                     "setting can also be given as an FHIR_CLR_* environment variable (see README); "
                                     "a flag wins over the environment.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the FHIR server", epilog="Every other setting (store URL, "
                                "base URL, limits, webhook policy, ...) is an FHIR_CLR_* environment variable only: "
                                "see the Configuration table in README.md. A flag wins over its variable.")
    serve.add_argument("--host", default=None,
                       help="bind address (default 127.0.0.1; other addresses only with authentication on)")
    serve.add_argument("--port", type=int, default=8080, help="TCP port (default 8080)")
    add_data_argument(serve)
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the store (default 1)")
    serve.add_argument("--dev", action="store_true", default=None,
                       help="development mode: no auth, loopback only (also FHIR_CLR_DEV=true)")
    serve.add_argument("--base-url", default=None,
                       help="public base URL clients use (e.g. https://fhir.example.org); required unless --dev "
                            "(also FHIR_CLR_BASE_URL)")
    serve.set_defaults(func=_serve)
    seed = commands.add_parser("seed", help="load sample referral data into the store")
    add_data_argument(seed)
    seed.add_argument("--members", type=int, default=0,
                      help="load a synthetic CLR population of N Members through MIF and RTF imports instead "
                           "(only into a store that holds no referrals yet)")
    seed.add_argument("--as-of", type=date.fromisoformat, default=None,
                      help="the population's 'today' (default today)")
    seed.add_argument("--seed-value", type=int, default=2025, help="random seed (same seed, same population)")
    seed.add_argument("--files", type=Path, default=None, help="also write the MIF and RTF files here")
    seed.set_defaults(func=_seed)
    from fhir_clr.auth.cli import add_parser as add_clients_parser

    add_clients_parser(commands)
    from fhir_clr.imports.cli import add_export_parser
    from fhir_clr.imports.cli import add_parser as add_import_parser

    add_import_parser(commands)
    add_export_parser(commands)
    _add_report_parser(commands)
    from fhir_clr.letters.cli import add_parser as add_letters_parser

    add_letters_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fhir-clr`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
