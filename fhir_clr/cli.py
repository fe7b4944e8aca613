"""Command line: ``fhir-clr serve | seed | clients | import | export | report``."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fhir_clr.logging_setup import configure_logging

if TYPE_CHECKING:
    from fhir_clr.config import Settings

LOOPBACK = "127.0.0.1"


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    os.environ["FHIR_CLR_DATA_DIR"] = str(args.data)
    # FHIR_CLR_DEV in the environment means dev mode too: it must not open a non-loopback port either.
    args.dev = args.dev or os.environ.get("FHIR_CLR_DEV", "").strip().lower() in ("1", "true", "yes", "on")
    if args.dev:
        os.environ["FHIR_CLR_DEV"] = "true"
    host = args.host or LOOPBACK
    if args.dev and host != LOOPBACK:
        print("--dev serves without authentication and binds to loopback only", file=sys.stderr)
        return 2
    os.environ.setdefault("FHIR_CLR_LISTEN_URL", f"http://{host}:{args.port}")
    if args.base_url:
        os.environ["FHIR_CLR_BASE_URL"] = args.base_url
    from fhir_clr.config import ConfigurationError, Settings

    try:
        Settings().check_secured()
    except ConfigurationError as refused:
        print(f"fhir-clr: {refused}", file=sys.stderr)
        return 2
    configure_logging(os.environ.get("FHIR_CLR_LOG_LEVEL", "INFO"))
    print(f"fhir-clr: FHIR R4 base http://{host}:{args.port}/  (data: {Path(args.data).resolve()})",
          file=sys.stderr)
    if args.dev:
        print("=" * 72 + "\n  DEV MODE: no authentication. Never use with real member data.\n" + "=" * 72,
              file=sys.stderr)
    uvicorn.run("fhir_clr.app:create_app", factory=True, host=host, port=args.port, workers=args.workers,
                access_log=False, log_config=None, timeout_graceful_shutdown=30, proxy_headers=True)
    return 0


def _seed(args: argparse.Namespace) -> int:
    from fhir_clr.config import Settings
    from fhir_clr.seed import load_sample_data

    configure_logging("WARNING")
    settings = Settings(data_dir=args.data)
    if args.members:
        totals = asyncio.run(_seed_population(settings, args))
        print(f"synthetic population of {args.members} Members loaded in {Path(args.data).resolve()}: "
              f"{totals['applied']} file rows applied, {totals['unchanged']} unchanged, {totals['rejected']} "
              "rejected (two rows are bad on purpose; a repeat run finds every other row unchanged and adds "
              "nothing)")
        return 0
    count = asyncio.run(load_sample_data(settings))
    print(f"sample referrals present in {Path(args.data).resolve()} ({count} entries; loading twice adds nothing)")
    return 0


def _report_compliance(args: argparse.Namespace) -> int:
    from fhir_clr.clr.report import ComplianceReporter, ReportPeriod
    from fhir_clr.clr.report_render import render_text, report_document
    from fhir_clr.clr.report_source import load_configured_store
    from fhir_clr.config import Settings

    if args.from_date > args.to_date:
        print("--from must not be after --to", file=sys.stderr)
        return 2
    configure_logging("WARNING")
    reporter = ComplianceReporter()
    period = ReportPeriod(args.from_date, args.to_date)
    as_of = args.as_of or reporter.deadlines.local_date(datetime.now(UTC))
    data = asyncio.run(load_configured_store(Settings(data_dir=args.data), period, reporter))
    report = reporter.report(data, period, as_of)
    if args.format == "json":
        reasons = list(reporter.codes["loop-closure-reason"].concepts)
        document = report_document(report, datetime.now(UTC).replace(microsecond=0), reasons)
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_text(report))
    return 0


def _add_report_parser(commands: argparse._SubParsersAction, default_data: Path) -> None:
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
    compliance.add_argument("--format", choices=("table", "json"), default="table")
    compliance.add_argument("--data", type=Path, default=default_data,
                            help="data directory of the embedded store (default $FHIR_CLR_DATA_DIR or ./data); "
                                 "FHIR_CLR_STORE_URL selects another store as for serve")
    compliance.set_defaults(func=_report_compliance)


async def _seed_population(settings: Settings, args: argparse.Namespace) -> dict[str, int]:
    from fhir_clr.app import build_services
    from fhir_clr.synthetic import generate_population, load_population

    services = await build_services(settings)
    try:
        population = generate_population(args.members, args.as_of or date.today(), args.seed_value)
        return await load_population(services, population, args.files)
    finally:
        await services.store.close()


def build_parser() -> argparse.ArgumentParser:
    """The ``fhir-clr`` argument parser."""
    parser = argparse.ArgumentParser(prog="fhir-clr", description="FHIR R4 server for Medi-Cal CLR")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the FHIR server")
    serve.add_argument("--host", default=None,
                       help="bind address (default 127.0.0.1; other addresses only with authentication on)")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--data", type=Path, default=Path(os.environ.get("FHIR_CLR_DATA_DIR", "./data")),
                       help="data directory of the embedded store (default ./data)")
    serve.add_argument("--workers", type=int, default=1, help="server processes sharing the store")
    serve.add_argument("--dev", action="store_true", help="development mode: no auth, loopback only")
    serve.add_argument("--base-url", default=None,
                       help="public base URL clients use (e.g. https://fhir.example.org); required unless --dev "
                            "(default $FHIR_CLR_BASE_URL)")
    serve.set_defaults(func=_serve)
    seed = commands.add_parser("seed", help="load sample referral data into the embedded store")
    seed.add_argument("--data", type=Path, default=Path("./data"))
    seed.add_argument("--members", type=int, default=0,
                      help="load a synthetic CLR population of N Members through MIF and RTF imports instead")
    seed.add_argument("--as-of", type=date.fromisoformat, default=None,
                      help="the population's 'today' (default today)")
    seed.add_argument("--seed-value", type=int, default=2025, help="random seed (same seed, same population)")
    seed.add_argument("--files", type=Path, default=None, help="also write the MIF and RTF files here")
    seed.set_defaults(func=_seed)
    from fhir_clr.auth.cli import add_parser as add_clients_parser

    add_clients_parser(commands, Path(os.environ.get("FHIR_CLR_DATA_DIR", "./data")))
    from fhir_clr.imports.cli import add_export_parser
    from fhir_clr.imports.cli import add_parser as add_import_parser

    add_import_parser(commands)
    add_export_parser(commands)
    _add_report_parser(commands, Path(os.environ.get("FHIR_CLR_DATA_DIR", "./data")))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``fhir-clr`` console script."""
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
