"""``fhir-clr import rtf FILE``: import a flat file into the store, with progress and a summary table."""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import click
import orjson

from fhir_clr.cli_settings import add_data_argument, command_settings, read_only_settings
from fhir_clr.config import Settings
from fhir_clr.imports.results import APPLIED, REJECTED, UNCHANGED, ImportReport, rejects_csv
from fhir_clr.mapping.spec import MappingSpec


def add_parser(commands: Any) -> None:
    """Register the ``import`` command."""
    parser = commands.add_parser("import", help="import an RTF (statuses), MIF (new referrals) or ASF "
                                 "(authorizations) file")
    parser.add_argument("kind", choices=["rtf", "mif", "asf"], help="file kind")
    parser.add_argument("file", type=Path, help="CSV (comma, pipe or tab) or XLSX file")
    parser.add_argument("--program", choices=["ecm", "cs"], default=None,
                        help="which layout (ECM or Community Supports RTF); required when both exist")
    parser.add_argument("--provider", metavar="NPI", default=None,
                        help="only apply rows for this servicing provider")
    parser.add_argument("--sheet", default=None, help="XLSX worksheet to read (default: the first)")
    parser.add_argument("--dry-run", action="store_true", help="check every row, write nothing")
    parser.add_argument("--rejects", type=Path, default=None, help="write the rejected rows here as CSV")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    add_data_argument(parser)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    settings = command_settings(args)
    try:
        data = args.file.read_bytes()
    except OSError as error:
        print(f"cannot read {args.file}: {error.strerror}", file=sys.stderr)
        return 2
    from fhir_clr.errors import FhirError

    try:
        report = asyncio.run(_import(args, settings, data))
    except FhirError as error:  # a request that cannot start (an untold layout): one line, exit code 2
        print(f"cannot import {args.file.name}: {error.issues[0].message if error.issues else error}",
              file=sys.stderr)
        return 2
    if args.rejects is not None:
        args.rejects.write_text(rejects_csv(report), encoding="utf-8")
    if args.json:
        print(orjson.dumps(report.as_json(), option=orjson.OPT_INDENT_2).decode())
    else:
        _print_table(report)
    return 1 if report.file_problems else 0


async def _import(args: argparse.Namespace, settings: Settings, data: bytes) -> ImportReport:
    from fhir_clr.app import build_services
    from fhir_clr.imports.job import FileImporter, ImportRequest
    from fhir_clr.runtime_tuning import tune_runtime

    services = await build_services(settings)
    tune_runtime()
    try:
        importer = FileImporter(services.bundles, services.engine.clock, services.specs)
        request = ImportRequest(args.kind, data, args.file.name, args.program, args.provider, args.dry_run,
                                sheet=args.sheet)
        if not sys.stderr.isatty():
            return await importer.run(request)
        with click.progressbar(length=_estimated_rows(data), label=f"importing {args.file.name}", file=sys.stderr,
                               show_pos=True, show_eta=True) as bar:
            return await importer.run(request, progress=lambda rows: bar.update(rows - bar.pos))
    finally:
        await services.store.close()


def _estimated_rows(data: bytes) -> int:
    """Data rows to expect, for the progress bar: line breaks after the header of a text file (cells with
    line breaks make it an overestimate); a workbook's row count from its sheet dimension when present."""
    if data.startswith(b"PK"):
        from openpyxl import load_workbook

        try:
            workbook = load_workbook(io.BytesIO(data), read_only=True)
            return max((workbook.worksheets[0].max_row or 1) - 1, 1)
        except Exception:  # a damaged workbook: the import itself reports why
            return 1
    return max(data.count(b"\n") - 1, 1)


def _print_table(report: ImportReport) -> None:
    print(f"\n{report.spec} ({report.file_format}, {report.encoding})"
          + (" — dry run, nothing written" if report.dry_run else ""))
    for problem in report.file_problems:
        print(f"  file not imported: {problem}")
    width = max(len(k) for k in (APPLIED, UNCHANGED, REJECTED))
    for outcome in (APPLIED, UNCHANGED, REJECTED):
        print(f"  {outcome:<{width}}  {report.counts[outcome]:>9,}")
    rules = Counter(f"{p.rule}: {p.column or 'row'}" for row in report.rejected for p in row.problems)
    for label, count in rules.most_common(10):
        print(f"    {count:>7,}  {label}")
    if report.extra_headers:
        print(f"  extra columns (ignored): {', '.join(report.extra_headers)}")
    if report.rows and report.seconds:
        print(f"  {report.rows / report.seconds:,.0f} rows/s")


def add_export_parser(commands: Any) -> None:
    """Register the ``export`` command."""
    parser = commands.add_parser("export", help="write a provider's referrals as a MIF, ASF or RTF, or export "
                                 "resources in bulk as NDJSON (the $export job code)")
    parser.add_argument("kind", choices=["mif", "asf", "rtf", "bulk"],
                        help="a flat file of one layout, or bulk NDJSON of every resource")
    parser.add_argument("directory", nargs="?", type=Path, help="bulk only: where the NDJSON files go")
    parser.add_argument("--provider", metavar="NPI", help="mif/asf/rtf: the servicing provider's NPI")
    parser.add_argument("--period", metavar="YYYY-MM", help="mif/asf/rtf: referrals open during this month")
    parser.add_argument("--program", choices=["ecm", "cs"], default=None, help="layout, when both exist")
    parser.add_argument("--format", choices=["csv", "pipe", "tab", "xlsx"], default="csv",
                        help="mif/asf/rtf: file format (default csv)")
    parser.add_argument("--out", type=Path, help="mif/asf/rtf: file to write")
    parser.add_argument("--type", dest="types", default=None, help="bulk: resource types, e.g. Task,ServiceRequest")
    parser.add_argument("--since", default=None, help="bulk: only resources changed after this instant")
    add_data_argument(parser)
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from fhir_clr.imports.exports import ExportPeriod

    settings = read_only_settings(args)
    if settings is None:
        return 2
    if args.kind == "bulk":
        return _bulk_export(args, settings)
    missing = [name for name in ("provider", "period", "out") if getattr(args, name) is None]
    if missing:
        print(f"cannot export {args.kind}: --{' and --'.join(missing)} required", file=sys.stderr)
        return 2
    try:
        period = ExportPeriod.parse(args.period)
        rows, spec = asyncio.run(_write_export(args, settings, period))
    except (LookupError, ValueError) as error:
        print(f"cannot export: {error}", file=sys.stderr)
        return 2
    print(f"{rows:,} referrals written to {args.out} ({spec.id}, {args.format})", file=sys.stderr)
    return 0


def _bulk_export(args: argparse.Namespace, settings: Settings) -> int:
    from fhir_clr.errors import FhirError

    if args.directory is None:
        print("cannot export: name the directory for the NDJSON files", file=sys.stderr)
        return 2
    pairs = [(k, v) for k, v in (("_type", args.types), ("_since", args.since)) if v]
    try:
        job = asyncio.run(_run_bulk(args, settings, pairs))
    except FhirError as error:
        print(f"cannot export: {error.issues[0].message}", file=sys.stderr)
        return 2
    if job.failure:
        print(f"export failed: {job.failure}", file=sys.stderr)
        return 1
    for item in job.output:
        print(f"{item.count:>10,}  {args.directory / item.name}")
    for item in job.deleted:
        print(f"{item.count:>10,}  {args.directory / item.name} (deleted since {args.since})")
    print(f"transactionTime {job.transaction_time} (use it as the next --since)", file=sys.stderr)
    return 0


async def _run_bulk(args: argparse.Namespace, settings: Settings, pairs: list[tuple[str, str]]) -> Any:
    from fhir_clr.app import build_services
    from fhir_clr.bulk.params import parse_export
    from fhir_clr.bulk.service import ExportService
    from fhir_clr.engine.access import FULL_ACCESS

    request = parse_export("system", pairs, "fhir-clr export bulk " + " ".join(f"{k}={v}" for k, v in pairs))
    services = await build_services(settings)
    try:
        exports = ExportService(services.engine, settings.data_dir)
        started = exports.start(request.as_doc(), FULL_ACCESS)
        job = await exports.wait(started.id)
        assert job is not None
        args.directory.mkdir(parents=True, exist_ok=True)
        for item in (*job.output, *job.deleted):
            shutil.move(exports.jobs.folder(job.id) / item.name, args.directory / item.name)
        exports.jobs.remove(job.id)
        return job
    finally:
        await services.store.close()


async def _write_export(args: argparse.Namespace, settings: Settings, period: Any) -> tuple[int, MappingSpec]:
    from fhir_clr.app import build_services
    from fhir_clr.imports.exports import ReferralExporter
    from fhir_clr.mapping.spec import find_spec

    services = await build_services(settings)
    try:
        spec = find_spec(args.kind, args.program, specs=services.specs)
        with args.out.open("wb") as out:
            rows = await ReferralExporter(services.engine, spec).write(args.provider, period, args.format, out)
        return rows, spec
    finally:
        await services.store.close()
