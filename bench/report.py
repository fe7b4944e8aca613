"""Compliance report benchmark: time ``fhir-clr report compliance`` over a store of many CLR referrals.

Loads ``--referrals`` referrals over one year (each with a referral Task, every third one closed, and one notice
obligation) straight through the engine's planner into a fresh embedded store, then runs the CLI for one
month and for the whole year and prints the wall-clock times.

    python bench/report.py                      # 100,000 referrals
    python bench/report.py --referrals 10000    # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.clr_resources import obligation, referral, referral_task  # noqa: E402

ORGANIZATIONS = 50
SERVICES = ["ecm", "housing-deposits", "medically-tailored-meals", "recuperative-care"]
FIRST_DAY = date(2025, 7, 1)


def resources(n: int) -> list[tuple[str, str, dict]]:
    """Referral ``n`` with its Task and one obligation, as (type, id, body)."""
    authored = FIRST_DAY + timedelta(days=n % 365)
    decided = (authored + timedelta(days=n % 9)).isoformat()
    closed = n % 3 == 0
    out = [("ServiceRequest", f"r{n}", referral(
        f"r{n}", authored.isoformat(), service=SERVICES[n % len(SERVICES)],
        requester=f"Organization/o{n % ORGANIZATIONS}",
        authorization="denied" if n % 10 == 0 else "approved", decided=decided,
        flag="coordination-needed" if n % 25 == 0 else None, subject=f"Patient/p{n}"))]
    out.append(("Task", f"t{n}", referral_task(
        f"t{n}", f"r{n}", status_code="5" if closed else "3", status_date=authored.isoformat(),
        closure_reason="services-received" if closed else None,
        closure_date=(authored + timedelta(days=n % 40)).isoformat() if closed else None,
        task_status="completed" if closed else "requested")))
    out.append(("Task", f"o{n}", obligation(f"o{n}", f"r{n}", decided, status="completed" if n % 4 else "requested",
                                            sent=decided if n % 4 else None)))
    return out


async def load(data_dir: Path, count: int) -> float:
    """Write ``count`` referrals (plus Tasks and obligations) and the Organizations; return the seconds taken."""
    from fhir_clr.app import build_services
    from fhir_clr.config import Settings
    from fhir_clr.store.port import ChangeOp

    services = await build_services(Settings(data_dir=data_dir))
    planner = services.engine.planner
    started = time.perf_counter()
    organizations = [("Organization", f"o{i}", {"resourceType": "Organization", "name": f"Referrer {i}"})
                     for i in range(ORGANIZATIONS)]
    batch: list = []
    for items in [organizations, *(resources(n) for n in range(count))]:
        for resource_type, resource_id, body in items:
            prepared = planner.prepare(resource_type, resource_id, body)
            batch.append(planner.change(ChangeOp.CREATE, resource_type, resource_id, 0, prepared))
        if len(batch) >= 999:
            await services.store.commit(batch)
            batch = []
    if batch:
        await services.store.commit(batch)
    elapsed = time.perf_counter() - started
    await services.store.close()
    return elapsed


def timed_report(data_dir: Path, start: str, end: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fhir_clr.cli", "report", "compliance", "--from", start, "--to", end,
                    "--format", "json", "--data", str(data_dir)], check=True, stdout=subprocess.DEVNULL,
                   cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return time.perf_counter() - started


def main() -> None:
    """Load the store and print the report timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--referrals", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fhir-clr-report-bench-") as tmp:
        data_dir = Path(tmp)
        seconds = asyncio.run(load(data_dir, args.referrals))
        print(f"loaded {args.referrals} referrals (+ Tasks, obligations) in {seconds:.1f} s")
        print(f"report, one month:  {timed_report(data_dir, '2025-10-01', '2025-10-31'):.1f} s")
        print(f"report, whole year: {timed_report(data_dir, '2025-07-01', '2026-06-30'):.1f} s")


if __name__ == "__main__":
    main()
