"""CRUD + search benchmark for fhir-clr (issue: core server).

Prints create / read / update / search / mixed throughput and p50/p95/p99 latency at 16 concurrent
keep-alive clients, the same load against a bare ASGI+SQLite baseline (no FHIR logic) with our throughput as
a fraction of it, and the worklist search ``Task?owner=…&status=requested&_sort=-_lastUpdated&_count=50``
latency over 100,000 stored Tasks.

    python bench/crud.py                       # embedded store, defaults
    python bench/crud.py --store mongodb://localhost:27017/fhirclr_bench
    python bench/crud.py --requests 2000 --worklist-tasks 20000   # quicker
    python bench/crud.py --secured --rounds 3   # dev vs secured (tokens, audit), overhead per operation

``--secured`` runs the CRUD phases against a ``--dev`` server, a secured server (a registered plan client with
a bearer token on every request, audit on, rate limit off) and the bare baseline (unless ``--skip-baseline``),
all up at once and taking turns within each phase (``--slices``), on fresh stores ``--rounds`` times, and
prints the throughputs, the secured overhead per operation with its range over the rounds, and a Markdown
table of the ranges (the worklist is skipped).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadgen import PhaseResult, Request, Response, run_phase
from secured_client import BenchClient

OWNERS = 199  # prime, so every owner gets Tasks of every status
STATUSES = ("requested", "accepted", "in-progress", "completed")


def task(n: int, status: str = "requested") -> dict:
    """A realistic ~1.3 KB SDOHCC referral Task."""
    return {
        "resourceType": "Task",
        "meta": {"profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
                             "SDOHCC-TaskForReferralManagement"]},
        "identifier": [{"system": "urn:fhir-clr:bench", "value": f"task-{n}"}],
        "status": status, "intent": "order", "priority": "routine",
        "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill",
                             "display": "Fulfill the focal request"}]},
        "businessStatus": {"coding": [{"system": "urn:fhir-clr:bench-status", "code": "3",
                                       "display": "Pending"}]},
        "focus": {"reference": f"ServiceRequest/sr-{n}"},
        "for": {"reference": f"Patient/p-{n % 5000}", "display": "Bench Member"},
        "authoredOn": "2026-10-01T09:30:00Z", "lastModified": "2026-10-02T10:00:00Z",
        "requester": {"reference": f"Organization/cbo-{n % 50}"},
        "owner": {"reference": f"Organization/o{n % OWNERS}"},
        "restriction": {"period": {"end": "2026-11-01T00:00:00Z"}},
        "note": [{"text": "Member prefers phone outreach in the afternoon."}],
        "output": [{"type": {"coding": [{"system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/"
                                         "SDOHCC-CodeSystemTemporaryCodes", "code": "resulting-activity"}]},
                    "valueReference": {"reference": f"Procedure/proc-{n}"}}],
    }


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(app: str, port: int, env: dict[str, str], workers: int) -> subprocess.Popen:
    """Start uvicorn for ``app`` and wait for it."""
    args = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--no-access-log", "--log-level", "warning", "--workers", str(workers)]
    if app.endswith("create_app"):
        args.append("--factory")
    proc = subprocess.Popen(args, env={**os.environ, **env}, cwd=Path(__file__).resolve().parent)
    for _ in range(300):
        try:
            httpx.get(f"http://127.0.0.1:{port}/Task/none", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{app} did not start")


def stop(proc: subprocess.Popen) -> None:
    """Stop a server."""
    proc.terminate()
    proc.wait(timeout=30)


Phase = tuple[str, Callable[[int], Request], Callable[[int, Response], None] | None]
"""A load phase: its name, request ``i``, and what to do with response ``i``."""


async def crud_phases(port: int, n: int, concurrency: int) -> list[PhaseResult]:
    """Create, read, update, search and mixed phases against the server on ``port``."""
    return [await run_phase(name, "127.0.0.1", port, concurrency, n, make, on_response=seen)
            for name, make, seen in crud_load(n)]


def crud_load(n: int, headers: dict[str, str] | None = None) -> list[Phase]:
    """The create, read, update, search and mixed phases of ``n`` requests each, for one server (reads and
    updates use the ids its creates returned); ``headers`` go with every request (a secured server's token)."""
    ids: list[str] = []
    rng = random.Random(7)

    def update(i: int) -> Request:
        rid = ids[i % len(ids)]
        body = task(i, STATUSES[(i // len(ids) + 1) % len(STATUSES)]) | {"id": rid}
        return Request("PUT", f"/Task/{rid}", orjson.dumps(body))

    def search(i: int) -> Request:
        return Request("GET", f"/Task?owner=Organization%2Fo{i % OWNERS}&status=requested&_count=20")

    def mixed(i: int) -> Request:
        roll = i % 10
        if roll < 2:
            return Request("POST", "/Task", orjson.dumps(task(n + i)))
        if roll < 7:
            return Request("GET", f"/Task/{ids[rng.randrange(len(ids))]}")
        if roll < 9:
            return update(i)
        return search(i)

    def with_headers(make: Callable[[int], Request]) -> Callable[[int], Request]:
        def made(i: int) -> Request:
            request = make(i)
            request.headers.update(headers or {})
            return request
        return made

    phases: list[Phase] = [
        ("create Task", lambda i: Request("POST", "/Task", orjson.dumps(task(i))),
         lambda i, r: ids.append(r.json()["id"])),
        ("read Task", lambda i: Request("GET", f"/Task/{ids[rng.randrange(len(ids))]}"), None),
        ("update Task", update, None),
        ("search Task owner+status", search, None),
        ("mixed 20/50/20/10 c/r/u/s", mixed, None)]
    return [(name, with_headers(make), seen) for name, make, seen in phases]


async def load_tasks(data_dir: Path, store_url: str | None, count: int) -> float:
    """Write ``count`` Tasks straight through the engine (validation + index + store), in batches."""
    from fhir_clr.app import build_services
    from fhir_clr.config import Settings
    from fhir_clr.store.port import ChangeOp

    settings = Settings(data_dir=data_dir, store_url=store_url)
    services = await build_services(settings)
    planner = services.engine.planner
    started = time.perf_counter()
    batch = 1000
    for first in range(0, count, batch):
        changes = []
        for n in range(first, min(count, first + batch)):
            resource = planner.prepare("Task", f"t{n}", task(n, STATUSES[n % len(STATUSES)]))
            changes.append(planner.change(ChangeOp.CREATE, "Task", f"t{n}", 0, resource))
        await services.store.commit(changes)
    elapsed = time.perf_counter() - started
    await services.store.close()
    return elapsed


async def worklist(port: int, queries: int, concurrency: int) -> PhaseResult:
    """The worklist query, ``queries`` times, ``concurrency`` at a time."""
    return await run_phase(
        f"worklist (c={concurrency})", "127.0.0.1", port, concurrency, queries,
        lambda i: Request("GET", f"/Task?owner=Organization%2Fo{i % OWNERS}&status=requested"
                                 "&_sort=-_lastUpdated&_count=50"),
        ok=lambda r: r.status == 200 and len(r.json().get("entry", [])) > 0)


def secured_env(data_dir: Path, port: int, store: str | None) -> dict[str, str]:
    """Environment of a secured server on ``port`` (audit on, rate limit off) with a registered plan client."""
    env = {"FHIR_CLR_DATA_DIR": str(data_dir), "FHIR_CLR_LOG_LEVEL": "WARNING", "FHIR_CLR_DEV": "false",
           "FHIR_CLR_BASE_URL": f"http://127.0.0.1:{port}", "FHIR_CLR_RATE_LIMIT_PER_SECOND": "0"}
    if store:
        env["FHIR_CLR_STORE_URL"] = store
    return env


@dataclass
class Target:
    """One server taking turns in ``take_turns``: its label, port, process and phases; ``cpu`` collects the
    server's CPU seconds per phase (from ``/proc``, Linux only)."""

    label: str
    port: int
    process: subprocess.Popen
    phases: list[Phase]
    results: list[PhaseResult] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def results_by_name(self) -> dict[str, PhaseResult]:
        """The phase results by phase name."""
        return {result.name: result for result in self.results}

    def cpu_per_request(self, name: str) -> float:
        """Server CPU seconds per request of phase ``name``."""
        result = self.results_by_name[name]
        return self.cpu.get(name, 0.0) / result.requests if result.requests else 0.0


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (0.0 where ``/proc`` is missing)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def compare_secured(args: argparse.Namespace, tmp: Path) -> None:
    """``--rounds`` times: a fresh dev server, a fresh secured server and (unless ``--skip-baseline``) the bare
    baseline, all up, taking turns within each phase (see ``take_turns``); prints each, the overhead of
    security per operation in throughput and in server CPU time per request (which the machine's other load
    moves far less), then the ranges over the rounds and the README's comparison table."""
    labels = ["secured", "dev"] + ([] if args.skip_baseline else ["bare"])
    rates: dict[str, dict[str, list[float]]] = {label: {} for label in labels}
    overheads: dict[str, list[float]] = {}
    cpu_overheads: dict[str, list[float]] = {}
    for round_no in range(1, args.rounds + 1):
        targets = start_targets(args, tmp, round_no, labels)
        try:
            asyncio.run(take_turns(args, targets))
        finally:
            for target in targets:
                stop(target.process)
        print(f"round {round_no}:")
        by_label = {target.label: target for target in targets}
        for phase in by_label["dev"].results:
            name = phase.name
            dev, secured = by_label["dev"], by_label["secured"]
            overhead = 1 - secured.results_by_name[name].rate / phase.rate if phase.rate else 0.0
            cpu_overhead = secured.cpu_per_request(name) / dev.cpu_per_request(name) - 1 \
                if dev.cpu_per_request(name) else 0.0
            overheads.setdefault(name, []).append(overhead)
            cpu_overheads.setdefault(name, []).append(cpu_overhead)
            for target in targets:
                result = target.results_by_name[name]
                rates[target.label].setdefault(name, []).append(result.rate)
                suffix = f"   -> overhead {overhead:.0%}, CPU {cpu_overhead:+.0%}" if target.label == "secured" else ""
                print(f"  {target.label:<8} {result.line()}   cpu {target.cpu_per_request(name) * 1e6:5.0f} us/req"
                      f"{suffix}")
    print("secured overhead against --dev (range over rounds): throughput, server CPU time per request")
    for name, values in overheads.items():
        print(f"  {name:<28} {min(values):5.0%} .. {max(values):5.0%}   "
              f"CPU {min(cpu_overheads[name]):+5.0%} .. {max(cpu_overheads[name]):+5.0%}")
    print_comparison(rates)


def start_targets(args: argparse.Namespace, tmp: Path, round_no: int, labels: list[str]) -> list[Target]:
    """Start the servers of one round (fresh stores), register the plan client and build each one's load;
    every client sends the secured server's bearer token, also to the servers that ignore it."""
    stores = {mode: f"{args.store.rstrip('/')}_{mode}{round_no}" if args.store else None for mode in ("dev", "sec")}
    ports = {label: free_port() for label in labels}
    environments = {
        "dev": {"FHIR_CLR_DATA_DIR": str(tmp / f"dev-{round_no}"), "FHIR_CLR_LOG_LEVEL": "WARNING",
                "FHIR_CLR_DEV": "true", **({"FHIR_CLR_STORE_URL": stores["dev"]} if stores["dev"] else {})},
        "secured": secured_env(tmp / f"secured-{round_no}", ports["secured"], stores["sec"]),
        "bare": {"BASELINE_DB": str(tmp / f"baseline-{round_no}.sqlite3")}}
    client = BenchClient()
    client.register(tmp / f"secured-{round_no}")
    processes: dict[str, subprocess.Popen] = {}
    try:
        for label in labels:
            app = "baseline_app:app" if label == "bare" else "fhir_clr.app:create_app"
            processes[label] = start(app, ports[label], environments[label], args.workers)
        token = client.token(f"http://127.0.0.1:{ports['secured']}")
        bearer = {"Authorization": f"Bearer {token}"}
    except BaseException:
        for process in processes.values():
            stop(process)
        raise
    return [Target(label, ports[label], processes[label], crud_load(args.requests, bearer)) for label in labels]


def print_comparison(rates: dict[str, dict[str, list[float]]]) -> None:
    """The ranges over the rounds as a Markdown table: one row per server, one column per phase."""
    names = list(next(iter(rates.values())))
    print("| | " + " | ".join(f"{name} (req/s)" for name in names) + " |")
    print("|---|" + "---|" * len(names))
    for label, by_phase in rates.items():
        cells = [f"{min(v):,.0f}\N{EN DASH}{max(v):,.0f}" if len(v) > 1 else f"{v[0]:,.0f}" for v in by_phase.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")


async def take_turns(args: argparse.Namespace, targets: list[Target]) -> None:
    """Each CRUD phase in ``args.slices`` slices, each slice on every server in turn, the order rotated from
    slice to slice, so that all see the same machine load; a server's slices add up to its phase result
    (``Target.results``), and the server's CPU time during its slices to ``Target.cpu``."""
    for phase_no in range(len(targets[0].phases)):
        slices: list[list[PhaseResult]] = [[] for _ in targets]
        for number in range(args.slices):
            first = number * args.requests // args.slices
            size = (number + 1) * args.requests // args.slices - first
            for k in range(len(targets)):
                index = (number + k) % len(targets)
                target = targets[index]
                name, make, seen = target.phases[phase_no]
                before = process_cpu_seconds(target.process.pid)
                slices[index].append(await run_phase(
                    name, "127.0.0.1", target.port, args.concurrency, size, partial(_shifted, make, first),
                    on_response=partial(_shifted, seen, first) if seen else None))
                target.cpu[name] = target.cpu.get(name, 0.0) + process_cpu_seconds(target.process.pid) - before
        for target, parts in zip(targets, slices, strict=True):
            target.results.append(_merged(parts))


def _shifted(call: Callable[..., Any], offset: int, i: int, *rest: Any) -> Any:
    return call(offset + i, *rest)


def _merged(parts: list[PhaseResult]) -> PhaseResult:
    return PhaseResult(parts[0].name, sum(p.requests for p in parts), sum(p.seconds for p in parts),
                       [ms for p in parts for ms in p.latencies_ms], sum(p.errors for p in parts))


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--store", default=None, help="store URL (default: embedded SQLite in a temp dir)")
    parser.add_argument("--requests", type=int, default=5000, help="requests per phase")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--worklist-tasks", type=int, default=100_000)
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--secured", action="store_true",
                        help="compare a --dev server with a secured one (tokens, audit; rate limit off)")
    parser.add_argument("--rounds", type=int, default=1, help="dev/secured rounds with --secured")
    parser.add_argument("--slices", type=int, default=4,
                        help="with --secured: each phase alternates between the servers this many times")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fhir-clr-bench-"))
    if args.secured:
        print(f"fhir-clr CRUD benchmark, --dev vs secured: {os.cpu_count()} cores, {args.concurrency} clients, "
              f"{args.requests} requests/phase, store={args.store or 'embedded SQLite'}, workers={args.workers}")
        try:
            compare_secured(args, tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    # Dev mode (no authentication): this measures the FHIR engine and store; --secured measures the
    # overhead of authentication, policy and audit against it.
    env = {"FHIR_CLR_DATA_DIR": str(tmp / "crud"), "FHIR_CLR_LOG_LEVEL": "WARNING", "FHIR_CLR_DEV": "true"}
    if args.store:
        env["FHIR_CLR_STORE_URL"] = args.store
    print(f"fhir-clr CRUD benchmark: {os.cpu_count()} cores, {args.concurrency} clients, "
          f"{args.requests} requests/phase, store={args.store or 'embedded SQLite'}, workers={args.workers}")
    try:
        port = free_port()
        server = start("fhir_clr.app:create_app", port, env, args.workers)
        try:
            ours = asyncio.run(crud_phases(port, args.requests, args.concurrency))
        finally:
            stop(server)
        for result in ours:
            print("  fhir-clr  " + result.line())
        if not args.skip_baseline:
            port = free_port()
            baseline = start("baseline_app:app", port, {"BASELINE_DB": str(tmp / "baseline.sqlite3")},
                             args.workers)
            try:
                bare = asyncio.run(crud_phases(port, args.requests, args.concurrency))
            finally:
                stop(baseline)
            for ours_r, bare_r in zip(ours, bare, strict=True):
                print("  baseline  " + bare_r.line() + f"   -> fhir-clr at {ours_r.rate / bare_r.rate:.0%}")
        wl_dir = tmp / "worklist"
        store_url = f"{args.store.rstrip('/')}_worklist" if args.store else None
        seconds = asyncio.run(load_tasks(wl_dir, store_url, args.worklist_tasks))
        print(f"  loaded {args.worklist_tasks} Tasks through the engine in {seconds:.1f} s "
              f"({args.worklist_tasks / seconds:.0f} resources/s)")
        port = free_port()
        wl_env = {**env, "FHIR_CLR_DATA_DIR": str(wl_dir)}
        if store_url:
            wl_env["FHIR_CLR_STORE_URL"] = store_url
        server = start("fhir_clr.app:create_app", port, wl_env, args.workers)
        try:
            asyncio.run(worklist(port, 200, 1))  # warm-up
            for concurrency in (1, args.concurrency):
                print("  fhir-clr  " + asyncio.run(worklist(port, 2000, concurrency)).line())
        finally:
            stop(server)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
