"""``fhir-clr letters batch --date D --out FILE`` (cut the day's print batch and write it as one PDF) and
``fhir-clr letters mailed BATCH --date D`` (record the batch's letters as sent on that day)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fhir_clr.cli_settings import add_data_argument, read_only_settings
from fhir_clr.config import ConfigurationError, Settings
from fhir_clr.errors import FhirError

if TYPE_CHECKING:
    from fhir_clr.letters.batch import PrintBatches


def add_parser(commands: Any) -> None:
    """Register the ``letters`` command."""
    parser = commands.add_parser("letters", help="Member letters: cut and print the daily print batch, mark it "
                                 "mailed")
    actions = parser.add_subparsers(dest="action", required=True)
    batch = actions.add_parser("batch", help="cut the print batch of a day (again: the same batch) and write it "
                               "as one PDF, each letter followed by its enclosures")
    batch.add_argument("--date", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                       help="the batch day (default: today, plan-local)")
    batch.add_argument("--out", type=Path, required=True, help="PDF file to write")
    add_data_argument(batch)
    batch.set_defaults(func=_batch)
    mailed = actions.add_parser("mailed", help="record the letters of a print batch as sent on a date (which "
                                "completes the Members' notice obligations)")
    mailed.add_argument("batch", type=date.fromisoformat, metavar="BATCH", help="the batch (its day, YYYY-MM-DD)")
    mailed.add_argument("--date", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                        help="the day the letters were mailed (default: today, plan-local)")
    add_data_argument(mailed)
    mailed.set_defaults(func=_mailed)


def _letters(count: int) -> str:
    return f"{count} letter{'' if count == 1 else 's'}"


def _run(args: argparse.Namespace, work: Any) -> int:
    settings = read_only_settings(args)
    if settings is None:
        return 2
    try:
        return asyncio.run(work(settings))  # type: ignore[no-any-return]
    except (FhirError, ConfigurationError) as error:
        message = error.issues[0].message if isinstance(error, FhirError) and error.issues else str(error)
        print(f"fhir-clr letters {args.action}: {message}", file=sys.stderr)
        return 2


def _batch(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        async with _print_batches(settings) as batches:
            day = args.date or batches.today()
            cut = await batches.cut(day)
            for reference, reason in cut.skipped:
                print(f"left out {reference}: {reason}")
            if "id" not in cut.batch:
                print(f"batch {day.isoformat()}: no letter is waiting to be printed; nothing written")
                return 0
            pdf, count = await batches.print_file(cut.batch, day)
        args.out.write_bytes(pdf)
        print(f"batch {day.isoformat()} ({'cut now' if cut.created else 'cut before'}): {_letters(count)} "
              f"written to {args.out}")
        return 0
    return _run(args, work)


def _mailed(args: argparse.Namespace) -> int:
    async def work(settings: Settings) -> int:
        async with _print_batches(settings) as batches:
            done = await batches.mark_mailed(args.batch, args.date or batches.today())
        print(f"batch {args.batch.isoformat()}: {_letters(done.marked)} recorded as sent, {done.already_sent} "
              f"already sent, {done.not_in_preparation} neither waiting nor sent, {done.not_printed} not printed "
              "(both left unchanged)")
        return 0
    return _run(args, work)


@asynccontextmanager
async def _print_batches(settings: Settings) -> AsyncIterator[PrintBatches]:
    """The print batches of the configured store, which is closed afterwards."""
    from fhir_clr.app import build_services
    from fhir_clr.letters.batch import build_print_batches

    services = await build_services(settings)
    try:
        yield build_print_batches(services.engine, settings.letters_dir)
    finally:
        await services.store.close()
