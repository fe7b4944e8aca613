"""Soak benchmark for fhir-clr: does the cost of a request stay flat as the store grows?

Runs the same mixed load (Task creates, updates, reads, the worklist search
``Task?owner=…&status=requested&_count=20``, a patient search sorted by ``_lastUpdated``, and one transaction
Bundle a second) for ``--duration`` seconds at ``--concurrency`` keep-alive clients against a ``--dev`` server on
the embedded SQLite store: first on an empty store, then on a store prefilled with ``--resources`` resources
(Patients, ServiceRequests, Tasks, most Tasks with a second version in history) written straight through the
storage port. Prints req/s, p50 and p99 per ``--windows``-second window, then the server's private and total RSS,
the database and WAL sizes, and the big-store/empty ratio.

    python bench/soak.py                                        # 180 s, 1,000,000 resources
    python bench/soak.py --duration 60 --windows 15 --resources 100000
    python bench/soak.py --prefilled /var/tmp/soak-1m           # build once, reuse on later runs

The prefilled store is copied before each run, so every run starts from the same file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crud import OWNERS, STATUSES, free_port, start, stop, task
from loadgen import Paced, PhaseResult, Request, Response, run_windows

DB_FILE = "fhir-clr.sqlite3"
PATIENTS = 5000
"""Patients the load's own Tasks point at (``crud.task``); prefilled Tasks point at these too, among others."""
FILLED = ".soak-filled"
"""Marker file of a complete prefilled store (its content: the resource count)."""


# ---- prefilling through the storage port ---------------------------------------------------------------


def prefill_groups(resources: int) -> int:
    """Groups of four resources (a Patient, their referral, two Tasks) making about ``resources``."""
    return max(1, resources // 4)


def _patient(g: int) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": "urn:fhir-clr:bench-member", "value": f"m{g}"}],
            "name": [{"family": f"Member{g}", "given": ["Bench"]}], "gender": "unknown", "birthDate": "1980-01-01"}


def _referral(g: int) -> dict[str, Any]:
    return {"resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "code": {"coding": [{"system": "urn:fhir-clr:bench-service", "code": "ecm"}]},
            "subject": {"reference": f"Patient/p-{g}"}, "authoredOn": "2026-01-15",
            "requester": {"reference": f"Organization/cbo-{g % 50}"}}


def _old_task(n: int, g: int, status: str) -> dict[str, Any]:
    body = task(n, status)
    body["for"] = {"reference": f"Patient/p-{g}"}
    body["focus"] = {"reference": f"ServiceRequest/sr-{g}"}
    return body


async def prefill(data_dir: Path, resources: int, batch: int = 2000) -> float:
    """Write about ``resources`` resources through the store port (index values extracted by the engine's
    registry, validation skipped: the bodies are fixed shapes). Every Task is created ``requested``; nine in ten
    then get a second version (accepted, in progress or completed), as a year of referrals would. Seconds."""
    from fhir_clr.app import build_services
    from fhir_clr.config import Settings
    from fhir_clr.store.port import ChangeOp

    services = await build_services(Settings(data_dir=data_dir))
    planner = services.engine.planner
    started = time.perf_counter()
    groups = prefill_groups(resources)
    step = batch // 4
    closed = STATUSES[1:]
    writing: asyncio.Task[Any] | None = None
    for first in range(0, groups, step):
        changes = []
        for g in range(first, min(groups, first + step)):
            for type_, rid, body in (("Patient", f"p-{g}", _patient(g)), ("ServiceRequest", f"sr-{g}", _referral(g)),
                                     ("Task", f"t{2 * g}", _old_task(2 * g, g, "requested")),
                                     ("Task", f"t{2 * g + 1}", _old_task(2 * g + 1, g, "requested"))):
                changes.append(planner.change(ChangeOp.CREATE, type_, rid, 0,
                                              planner.prepare(type_, rid, body, trusted=True)))
            for n in (2 * g, 2 * g + 1):
                if n % 10:
                    body = _old_task(n, g, closed[n % len(closed)])
                    changes.append(planner.change(ChangeOp.UPDATE, "Task", f"t{n}", 1,
                                                  planner.prepare("Task", f"t{n}", body, trusted=True)))
        if writing is not None:
            await writing  # one batch is written while the next one is planned
        writing = asyncio.create_task(services.store.commit(changes))
        if first // step % 100 == 0:
            print(f"    prefill: {first * 4:,} resources, {time.perf_counter() - started:.0f} s", flush=True)
    if writing is not None:
        await writing
    elapsed = time.perf_counter() - started
    await services.store.close()
    (data_dir / FILLED).write_text(str(resources))
    return elapsed


def prefilled_store(path: Path, resources: int) -> Path:
    """``path`` holding a complete prefilled store of ``resources`` (built there if it is not)."""
    marker = path / FILLED
    if marker.exists() and marker.read_text() == str(resources):
        print(f"  reusing the prefilled store in {path}")
        return path
    shutil.rmtree(path, ignore_errors=True)
    seconds = asyncio.run(prefill(path, resources))
    print(f"  prefilled {resources:,} resources through the store port in {seconds:.0f} s "
          f"({resources / seconds:,.0f} resources/s)")
    return path


# ---- the load --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Mix:
    """The mixed load's requests; reads and updates pick Tasks among the prefilled ones and the run's own."""

    prefilled_tasks: int
    created: list[str]
    rng: random.Random
    worklist_extra: str = ""
    """Appended to the worklist query (``--worklist-total none`` sends ``&_total=none``)."""

    def pick(self) -> str:
        """A random Task id."""
        total = self.prefilled_tasks + len(self.created)
        k = self.rng.randrange(total)
        return f"t{k}" if k < self.prefilled_tasks else self.created[k - self.prefilled_tasks]

    def request(self, i: int) -> Request:
        """Request ``i``: 15 % create, 15 % update, 45 % read, 15 % worklist search, 10 % patient search."""
        roll = i % 20
        if roll < 3 or not (self.prefilled_tasks or self.created):
            return Request("POST", "/Task", orjson.dumps(task(10_000_000 + i, "requested")))
        if roll < 6:
            rid = self.pick()
            body = task(i, STATUSES[self.rng.randrange(len(STATUSES))]) | {"id": rid}
            return Request("PUT", f"/Task/{rid}", orjson.dumps(body))
        if roll < 15:
            return Request("GET", f"/Task/{self.pick()}")
        if roll < 18:
            return Request("GET", f"/Task?owner=Organization%2Fo{self.rng.randrange(OWNERS)}&status=requested"
                                  f"&_count=20{self.worklist_extra}")
        return Request("GET", f"/Task?patient=Patient%2Fp-{self.rng.randrange(PATIENTS)}"
                              "&_sort=-_lastUpdated&_count=10")

    def seen(self, i: int, response: Response) -> None:
        """Remember the ids the load's creates got."""
        if response.status == 201 and i % 20 < 3:
            self.created.append(response.json()["id"])


def transaction(i: int) -> Request:
    """A transaction Bundle: a Patient, their referral and its Task."""
    patient, referral = f"urn:uuid:00000000-0000-4000-8000-{i:012d}", f"urn:uuid:00000000-0000-4000-9000-{i:012d}"
    body = task(20_000_000 + i) | {"for": {"reference": patient}, "focus": {"reference": referral}}
    entries = [(patient, "Patient", _patient(20_000_000 + i)),
               (referral, "ServiceRequest", _referral(20_000_000 + i) | {"subject": {"reference": patient}}),
               (None, "Task", body)]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {**({"fullUrl": url} if url else {}), "request": {"method": "POST", "url": type_}, "resource": resource}
        for url, type_, resource in entries]}
    return Request("POST", "/", orjson.dumps(bundle))


# ---- measuring the server --------------------------------------------------------------------------------


def memory_mb(pid: int) -> tuple[float, float, float]:
    """Private (Private_Clean + Private_Dirty), total RSS and anonymous memory of process ``pid`` in MB.
    Private includes the pages of the memory-mapped database that no other process maps; anonymous is the
    heap (Python objects, SQLite page caches)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, _, value = line.partition(":")
        fields[name] = int(value.split()[0])
    return ((fields["Private_Clean"] + fields["Private_Dirty"]) / 1024, fields["Rss"] / 1024,
            fields["Anonymous"] / 1024)


def file_mb(path: Path) -> float:
    """Size of ``path`` in MB (0 when absent)."""
    return path.stat().st_size / 1e6 if path.exists() else 0.0


@dataclass(slots=True)
class RunResult:
    """One phase's windows and the server's state at its end."""

    name: str
    windows: list[PhaseResult]
    private_mb: float
    rss_mb: float
    anonymous_mb: float
    db_mb: float
    wal_mb: float

    @property
    def rate(self) -> float:
        """Requests per second over the whole run."""
        seconds = sum(w.seconds for w in self.windows)
        return sum(w.requests for w in self.windows) / seconds if seconds else 0.0

    def p99(self) -> float:
        """p99 over the whole run."""
        return PhaseResult(self.name, 0, 0, [ms for w in self.windows for ms in w.latencies_ms], 0).percentile(99)


async def upgrade(data_dir: Path) -> float:
    """Open and close the store once, so that schema upgrades (an index built over a big store) are done
    before the server has to answer within ``crud.start``'s wait. Seconds."""
    from fhir_clr.store.sqlite import SqliteStore

    started = time.perf_counter()
    store = SqliteStore(data_dir / DB_FILE)
    await store.open()
    await store.close()
    return time.perf_counter() - started


def run_phase(name: str, data_dir: Path, prefilled_tasks: int, args: argparse.Namespace) -> RunResult:
    """Start a --dev server on ``data_dir``, run the mixed load and return its figures."""
    if prefilled_tasks:
        print(f"  store opened once (schema upgrades) in {asyncio.run(upgrade(data_dir)):.1f} s", flush=True)
    port = free_port()
    env = {"FHIR_CLR_DATA_DIR": str(data_dir), "FHIR_CLR_LOG_LEVEL": "WARNING", "FHIR_CLR_DEV": "true"}
    server = start("fhir_clr.app:create_app", port, env, 1)
    print(f"  {name}: server up ({file_mb(data_dir / DB_FILE):,.0f} MB database)", flush=True)
    mix = Mix(prefilled_tasks, [], random.Random(11),
              f"&_total={args.worklist_total}" if args.worklist_total else "")
    wal_peak = 0.0

    def show(window: PhaseResult) -> None:
        nonlocal wal_peak
        wal = file_mb(data_dir / f"{DB_FILE}-wal")
        wal_peak = max(wal_peak, wal)
        print(f"    {window.line()}   db {file_mb(data_dir / DB_FILE):,.0f} MB, WAL {wal:,.1f} MB", flush=True)

    try:
        windows = asyncio.run(run_windows(name, "127.0.0.1", port, args.concurrency, args.duration, args.windows,
                                          mix.request, paced=Paced(1.0, transaction), on_response=mix.seen,
                                          on_window=show))
        private, rss, anonymous = memory_mb(server.pid)
    finally:
        stop(server)
    result = RunResult(name, windows, private, rss, anonymous, file_mb(data_dir / DB_FILE), wal_peak)
    print(f"  {name}: {result.rate:,.0f} req/s, p99 {result.p99():.1f} ms; server private {private:,.0f} MB, "
          f"RSS {rss:,.0f} MB, anonymous {anonymous:,.0f} MB; database {result.db_mb:,.0f} MB, "
          f"WAL peak {result.wal_mb:,.1f} MB", flush=True)
    return result


def main() -> None:
    """Run the empty-store and big-store phases and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--resources", type=int, default=1_000_000, help="resources in the prefilled store")
    parser.add_argument("--duration", type=float, default=180.0, help="seconds of load per phase")
    parser.add_argument("--windows", type=float, default=30.0, help="window length in seconds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--prefilled", type=Path, default=None,
                        help="directory of the prefilled store: reused when complete, else built there "
                             "(default: built in a temporary directory and removed)")
    parser.add_argument("--skip-empty", action="store_true", help="run the big-store phase only")
    parser.add_argument("--worklist-total", choices=("none", "accurate"), default=None,
                        help="send _total with the worklist search (default: not sent; the server counts)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fhir-clr-soak-"))
    load = os.getloadavg()
    print(f"fhir-clr soak: {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, "
          f"{args.concurrency} clients, {args.duration:.0f} s per phase in {args.windows:.0f}-s windows, "
          f"{args.resources:,} prefilled resources")
    try:
        results = []
        if not args.skip_empty:
            results.append(run_phase("empty store", tmp / "empty", 0, args))
        source = prefilled_store(args.prefilled or tmp / "prefilled", args.resources)
        work = tmp / "big"
        shutil.copytree(source, work, ignore=shutil.ignore_patterns(FILLED))
        big = run_phase(f"{args.resources:,} resources", work, 2 * prefill_groups(args.resources), args)
        results.append(big)
        if len(results) == 2:
            empty = results[0]
            print(f"  big/empty: throughput {big.rate / empty.rate:.0%}, p99 {big.p99() / empty.p99():.0%}; "
                  f"last window {big.windows[-1].rate / empty.windows[-1].rate:.0%}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
