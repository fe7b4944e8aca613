"""Console page-time benchmark for fhir-clr (issue: plan staff console).

Builds a store of N CLR referrals on the embedded store: a synthetic population (``fhir-clr seed``'s generator,
loaded through the real MIF → decisions → RTF pipeline) is copied with fresh ids until it holds N referrals,
each copy with its Members, referral Tasks and notice obligations (Organizations are shared). Then it starts a
dev-mode server on that store and times each console page over HTTP: the first view (until the page shows its
figures, which the console computes in the background and keeps a while), then the median and 95th
percentile of repeated loads, and the page size.

    python bench/console.py                     # 100,000 referrals
    python bench/console.py --referrals 20000 --repeat 10
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fhir_clr.app import build_services
from fhir_clr.config import Settings
from fhir_clr.store.port import ChangeOp
from fhir_clr.synthetic import generate_population, load_population
from tests.conftest import LiveServer

TEMPLATE_MEMBERS = 400
COPIED_TYPES = ("Patient", "ServiceRequest", "Task", "Communication")
BATCH = 2000
_REFERENCE = re.compile(r'"reference":"(Patient|ServiceRequest|Task|Communication)/([^"]+)"')


async def _template(directory: Path) -> list[dict[str, Any]]:
    """A seeded population's Members, referrals, Tasks and notices, plus its Organizations (copied once)."""
    services = await build_services(Settings(data_dir=directory, dev=True))
    try:
        await load_population(services, generate_population(TEMPLATE_MEMBERS, date.today(), services.codes))
        resources = []
        for resource_type in (*COPIED_TYPES, "Organization"):
            token = None
            while True:
                params = [("_count", "1000")] + ([("_page_token", token)] if token else [])
                page = await services.engine.search(resource_type, params)
                resources += [orjson.loads(m.body) for m in page.matches if m.body]
                token = page.next_token
                if token is None:
                    break
        return resources
    finally:
        await services.store.close()


def _copy(resource: dict[str, Any], suffix: str) -> dict[str, Any]:
    text = _REFERENCE.sub(lambda m: f'"reference":"{m[1]}/{m[2]}{suffix}"', orjson.dumps(resource).decode())
    copied = orjson.loads(text)
    copied["id"] = f"{resource['id']}{suffix}"
    copied.pop("meta", None)
    copied["meta"] = {k: v for k, v in resource.get("meta", {}).items() if k in ("profile", "tag", "source")}
    return copied


async def build_store(directory: Path, referrals: int) -> float:
    """Fill ``directory`` with ``referrals`` referrals; seconds taken."""
    started = time.perf_counter()
    template = await _template(directory / "template")
    per_copy = sum(1 for r in template if r["resourceType"] == "ServiceRequest")
    copies = -(-referrals // per_copy)
    services = await build_services(Settings(data_dir=directory / "store", dev=True))
    try:
        planner = services.engine.planner
        changes = []
        for resource in (r for r in template if r["resourceType"] == "Organization"):
            prepared = planner.prepare("Organization", resource["id"], resource, trusted=True)
            changes.append(planner.change(ChangeOp.CREATE, "Organization", resource["id"], 0, prepared))
        copied_types = [r for r in template if r["resourceType"] in COPIED_TYPES]
        for copy in range(copies):
            for resource in copied_types:
                body = _copy(resource, f"-c{copy}")
                prepared = planner.prepare(body["resourceType"], body["id"], body, trusted=True)
                changes.append(planner.change(ChangeOp.CREATE, body["resourceType"], body["id"], 0, prepared))
                if len(changes) >= BATCH:
                    await services.store.commit(changes)
                    changes = []
        if changes:
            await services.store.commit(changes)
    finally:
        await services.store.close()
    print(f"store: {copies * per_copy:,} referrals ({copies} copies of {per_copy}), "
          f"{copies * len(copied_types):,} copied resources, built in {time.perf_counter() - started:.0f} s")
    return time.perf_counter() - started


def _time(http: httpx.Client, path: str, repeat: int) -> tuple[float, float, int, str]:
    times, body = [], ""
    for _ in range(repeat):
        started = time.perf_counter()
        response = http.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code, response.text[:300])
        body = response.text
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))], len(body), body


PENDING = ("<h1>Computing</h1>", "Counting the groups")


def _cold(http: httpx.Client, path: str) -> tuple[float, str]:
    """Seconds from the first request until the page shows its figures (they are computed in the background
    meanwhile), and the final page."""
    started = time.perf_counter()
    while True:
        body = http.get(path).text
        if not any(marker in body for marker in PENDING):
            return time.perf_counter() - started, body
        time.sleep(0.25)


def measure(data_dir: Path, repeat: int) -> None:
    """Start a server on the store and time each page: first (figures computed) and then repeated loads."""
    server = LiveServer(data_dir)
    server.start(timeout=300)
    try:
        with httpx.Client(base_url=server.base_url, timeout=300) as http:
            counting, worklist = _cold(http, "/console/")
            print(f"first worklist view on a fresh server (all groups counted): {counting * 1000:,.0f} ms")
            next_page = re.search(r'href="(/console/\?[^"]+)" rel="next"', worklist)
            referral = re.search(r'href="(/console/referrals/[^"]+)"', worklist)
            provider = re.search(r'<select id="provider".*?<option value="([0-9a-f-]{36})"', worklist, re.S)
            month = f"{date.today():%Y-%m}"
            pages = [("worklist (overdue, first page)", "/console/"),
                     ("worklist, next page", next_page[1].replace("&amp;", "&") if next_page else "/console/"),
                     ("worklist, stale statuses", "/console/?group=stale-status"),
                     ("worklist, one service", "/console/?service=ecm"),
                     ("worklist, one provider", f"/console/?provider={provider[1] if provider else ''}"),
                     ("referral timeline", referral[1] if referral else "/console/"),
                     ("imports", "/console/imports"),
                     ("subscriptions", "/console/subscriptions"),
                     ("metrics quick view", "/console/metrics"),
                     ("compliance, one month", f"/console/compliance?from={month}&to={month}"),
                     ("compliance, six months (default)", "/console/compliance")]
            print(f"{'page':<36} {'first view':>11} {'median':>9} {'p95':>9} {'HTML':>9}")
            for label, path in pages:
                cold, _ = _cold(http, path)
                median, p95, size, _ = _time(http, path, repeat)
                print(f"{label:<36} {cold * 1000:>8.0f} ms {median:>6.0f} ms {p95:>6.0f} ms {size / 1024:>6.0f} KB")
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--referrals", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None,
                        help="build the store in this directory and keep it; reuse it when it is already there")
    args = parser.parse_args()
    if args.keep is not None:
        if not (args.keep / "store").is_dir():
            asyncio.run(build_store(args.keep, args.referrals))
        measure(args.keep / "store", args.repeat)
        return
    with tempfile.TemporaryDirectory(prefix="fhir-clr-console-") as directory:
        asyncio.run(build_store(Path(directory), args.referrals))
        measure(Path(directory) / "store", args.repeat)


if __name__ == "__main__":
    main()
