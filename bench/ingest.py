"""RTF ingest benchmark for fhir-clr (issue: file mappers).

Seeds N open ECM referrals (Member + CLR Referral + Pending referral Task, with their CLR obligations) into a
fresh embedded store, writes an ECM RTF of N rows that moves every referral to Accepted, imports it, and prints
rows/s and the peak traced memory of the import; then imports the same file again (every row unchanged).

For each import it also prints the CPU time spent per row, by the whole process and by the SQLite writer thread
alone (read from ``/proc`` on Linux), and the rate those costs would allow if every core were busy with the
import and nothing waited: an upper bound for this machine, whatever the overlap of planning and commits. A dry
run of the first import (everything but the commits, on the event loop's one thread) gives the planning cost.
The R4 validation of the rows' resources runs in the import's validation worker process (started before the
first import, as in a server that has imported before); its CPU is counted in "all" and shown apart.

    python bench/ingest.py                    # 10,000 and 100,000 rows
    python bench/ingest.py --rows 10000       # one size
    python bench/ingest.py --shuffle          # the file's rows in random order, not the order seeded

A provider's month does not list its referrals in the order the plan created them; ``--shuffle`` writes the RTF
rows in a fixed pseudo-random order, so each batch updates rows spread over the whole store.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import random
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fhir_clr.app import Services, build_services
from fhir_clr.clr.config import bundled_rules
from fhir_clr.config import Settings
from fhir_clr.engine.row_batches import RowBatchWriter
from fhir_clr.engine.validation_pool import shared_pool
from fhir_clr.imports.job import FileImporter, ImportReport, ImportRequest
from fhir_clr.mapping.spec import MappingSpec, find_spec
from fhir_clr.mapping.values import npi_check_digit_ok
from fhir_clr.mapping.writers import write_table
from fhir_clr.runtime_tuning import tune_runtime

BASE = "http://fhir-clr.org/fhir"
SYSTEMS = bundled_rules()["identifier_systems"]
NOW = datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
SEED_GROUP = 500


def npi() -> str:
    return next(f"199999999{d}" for d in "0123456789" if npi_check_digit_ok(f"199999999{d}"))


def cin(n: int) -> str:
    return f"{n:08d}B"


def referral_group(n: int, provider: str, clinic: str) -> dict[str, Any]:
    """A transaction creating one Member, their CLR Referral and its Pending referral Task."""
    patient, request = f"urn:uuid:00000000-0000-4000-8000-{n:012d}", f"urn:uuid:00000000-0000-4000-9000-{n:012d}"
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": patient, "request": {"method": "POST", "url": "Patient"}, "resource": {
            "resourceType": "Patient", "identifier": [{"system": SYSTEMS["cin"], "value": cin(n)}]}},
        {"fullUrl": request, "request": {"method": "POST", "url": "ServiceRequest"}, "resource": {
            "resourceType": "ServiceRequest", "meta": {"profile": [f"{BASE}/StructureDefinition/clr-referral"]},
            "status": "active", "intent": "order", "code": {"text": "ECM"}, "subject": {"reference": patient},
            "requester": {"reference": clinic}, "authoredOn": "2026-10-01",
            "extension": [{"url": f"{BASE}/StructureDefinition/referral-type", "valueCoding": {"code": "1"}}]}},
        {"request": {"method": "POST", "url": "Task"}, "resource": {
            "resourceType": "Task", "meta": {"profile": [f"{BASE}/StructureDefinition/clr-referral-task"]},
            "status": "requested", "intent": "order", "businessStatus": {"text": "3"},
            "focus": {"reference": request}, "for": {"reference": patient}, "requester": {"reference": clinic},
            "owner": {"reference": provider}, "authoredOn": "2026-10-01",
            "extension": [{"url": f"{BASE}/StructureDefinition/date-of-referral-status-update",
                           "valueDateTime": "2026-10-01"}]}}]}


async def seed(services: Services, rows: int) -> str:
    """Load ``rows`` open referrals; the provider's NPI."""
    provider_npi = npi()
    provider = await services.engine.create("Organization", {
        "resourceType": "Organization", "name": "Bench ECM provider",
        "identifier": [{"system": SYSTEMS["npi"], "value": provider_npi}]})
    clinic = await services.engine.create("Organization", {"resourceType": "Organization", "name": "Bench clinic"})
    assert provider.stored is not None and clinic.stored is not None
    writer = RowBatchWriter(services.bundles)
    for start in range(0, rows, SEED_GROUP):
        groups = [(n, referral_group(n, f"Organization/{provider.stored.resource_id}",
                                     f"Organization/{clinic.stored.resource_id}"))
                  for n in range(start, min(rows, start + SEED_GROUP))]
        results = await writer.write(groups)
        assert all(r.outcome == "applied" for r in results), [r.error for r in results if r.error][:1]
    return provider_npi


@dataclass(frozen=True, slots=True)
class CpuUse:
    """CPU seconds one import used: the whole process with its validation worker, the SQLite writer thread and
    the validation worker process alone (None off Linux)."""

    process: float
    writer: float | None
    worker: float | None

    def line(self, rows: int) -> str:
        """Microseconds of CPU per row and the rate the machine's cores would allow at that cost."""
        per_row = (self.process + (self.worker or 0)) / rows * 1e6
        parts = [f"{name} {seconds / rows * 1e6:,.0f} µs" for name, seconds in
                 (("SQLite writer thread", self.writer), ("validation worker", self.worker)) if seconds is not None]
        detail = f" ({', '.join(parts)})" if parts else ""
        bound = (os.cpu_count() or 1) * 1e6 / per_row
        return f"{per_row:>8,.0f} µs a row in all{detail}: {os.cpu_count()} cores allow at most {bound:,.0f} rows/s"


def cpu_seconds(stat_path: str) -> float | None:
    """User + system CPU seconds of the thread or process whose ``/proc`` stat file is ``stat_path``, or None."""
    try:
        stat = Path(stat_path).read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # fields from the third on: utime, stime are the 14th, 15th
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def writer_cpu_seconds() -> float | None:
    """CPU seconds used so far by the SQLite store's writer thread (Linux ``/proc``), or None."""
    for thread in threading.enumerate():
        if thread.name == "sqlite-writer" and thread.native_id is not None:
            return cpu_seconds(f"/proc/self/task/{thread.native_id}/stat")
    return None


def worker_cpu_seconds() -> float | None:
    """CPU seconds used so far by the validation worker process (Linux ``/proc``), or None."""
    pid = shared_pool().worker_pid()
    return None if pid is None else cpu_seconds(f"/proc/{pid}/stat")


def spent(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else after - before


async def measured(run: Callable[[], Awaitable[ImportReport]]) -> tuple[ImportReport, CpuUse]:
    """Run one import; its report and the CPU it used."""
    process, writer, worker = time.process_time(), writer_cpu_seconds(), worker_cpu_seconds()
    report = await run()
    return report, CpuUse(time.process_time() - process, spent(writer, writer_cpu_seconds()),
                          spent(worker, worker_cpu_seconds()))


def rtf_file(rows: int, provider_npi: str, specs: dict[str, MappingSpec], shuffle: bool = False) -> bytes:
    numbers = list(range(rows))
    if shuffle:
        random.Random(7).shuffle(numbers)
    out = io.BytesIO()
    write_table(find_spec("rtf", "ecm", specs=specs), ({
        "mcp_name": "Bench Plan", "member_cin": cin(n), "ecm_provider_name": "Bench ECM provider",
        "ecm_provider_npi": provider_npi, "referral_status": "1", "referral_status_date": date(2026, 11, 2)}
        for n in numbers), "csv", out)
    return out.getvalue()


async def run(rows: int, shuffle: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="fhir-clr-ingest-") as directory:
        services = await build_services(Settings(data_dir=Path(directory), dev=True, fixed_now=NOW))
        tune_runtime()
        try:
            started = time.perf_counter()
            provider_npi = await seed(services, rows)
            seeded = time.perf_counter() - started
            data = rtf_file(rows, provider_npi, services.specs, shuffle)
            importer = FileImporter(services.bundles, services.engine.clock, services.specs)
            await shared_pool().started()  # as in a server that has imported before: the worker is running
            dry = ImportRequest("rtf", data, "bench-rtf.csv", "ecm", dry_run=True)
            _, planning_cpu = await measured(lambda: importer.run(dry))
            tracemalloc.start()  # memory of a dry run (same reading, matching and planning; tracing slows it)
            await importer.run(dry)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            request = ImportRequest("rtf", data, "bench-rtf.csv", "ecm")
            report, report_cpu = await measured(lambda: importer.run(request))
            again, again_cpu = await measured(lambda: importer.run(request))
        finally:
            await services.store.close()
    print(f"{rows:>8,} rows ({len(data) / 1e6:.1f} MB CSV; seeding {rows / seeded:,.0f} referrals/s)")
    print(f"    first import : {report.rows / report.seconds:>8,.0f} rows/s  {report.summary()}")
    print(f"      CPU        : {report_cpu.line(report.rows)}")
    print(f"      planning   : {planning_cpu.process / rows * 1e6:>8,.0f} µs a row in a dry run (reading, matching, "
          f"planning; one thread, so at most {rows / planning_cpu.process:,.0f} rows/s; validation worker "
          f"{(planning_cpu.worker or 0) / rows * 1e6:,.0f} µs)")
    print(f"    peak memory  : {peak / 1e6:>8,.1f} MB traced during a dry run of the same file")
    print(f"    re-import    : {again.rows / again.seconds:>8,.0f} rows/s  {again.summary()}")
    print(f"      CPU        : {again_cpu.line(again.rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="file sizes (default 10,000 and 100,000)")
    parser.add_argument("--shuffle", action="store_true", help="write the RTF rows in a random order")
    args = parser.parse_args()
    for rows in args.rows or [10_000, 100_000]:
        asyncio.run(run(rows, args.shuffle))


if __name__ == "__main__":
    main()
