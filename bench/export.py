"""Bulk export benchmark for fhir-clr (issue: bulk data).

Loads N Tasks into a fresh embedded store straight through the storage port (realistic ~1.3 KB referral
Tasks with their search index), then runs a system ``$export`` of them with the job code the server uses and
prints resources/s, the NDJSON bytes written and the process's peak RSS growth during the export.

    python bench/export.py                      # 100,000 and 1,000,000 resources
    python bench/export.py --sizes 100000
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crud import task

from fhir_clr.app import build_services
from fhir_clr.bulk.params import parse_export
from fhir_clr.bulk.service import ExportService
from fhir_clr.config import Settings
from fhir_clr.engine.access import FULL_ACCESS
from fhir_clr.store.port import ChangeOp

BATCH = 2000


def rss_mb(field: str = "RssAnon") -> float:
    """A resident-memory figure of this process in MB (Linux): ``RssAnon`` is the heap and other private
    memory; ``RssFile`` is file pages mapped into the process (shared page cache the kernel can drop, not
    memory the export holds). The export's scan does not map the SQLite file; the store's own connections do
    (``mmap_size``), which is where most of the process's maximum RSS comes from while loading."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return 0.0


class PeakRss:
    """Samples private resident memory every 20 ms in a thread; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def run(size: int) -> None:
    with tempfile.TemporaryDirectory(prefix="fhir-clr-export-") as directory:
        services = await build_services(Settings(data_dir=Path(directory), dev=True))
        try:
            planner = services.engine.planner
            started = time.perf_counter()
            template = [task(n) for n in range(BATCH)]
            for start in range(0, size, BATCH):
                changes = []
                for body in template[:min(BATCH, size - start)]:
                    rid = uuid.uuid4().hex
                    prepared = planner.prepare("Task", rid, body, trusted=True)
                    changes.append(planner.change(ChangeOp.CREATE, "Task", rid, 0, prepared))
                await services.store.commit(changes)
            loaded = time.perf_counter() - started
            exports = ExportService(services.engine, Path(directory))
            request = parse_export("system", [("_type", "Task")], "bench")
            before = rss_mb()
            with PeakRss() as peak:
                started = time.perf_counter()
                job = await exports.wait(exports.start(request.as_doc(), FULL_ACCESS).id)
                seconds = time.perf_counter() - started
            assert job is not None and job.failure is None, job
            count = sum(f.count for f in job.output)
            size_mb = sum((exports.jobs.folder(job.id) / f.name).stat().st_size for f in job.output) / 1e6
        finally:
            await services.store.close()
    assert count == size, (count, size)
    print(f"{size:>10,} Tasks (loaded at {size / loaded:,.0f}/s)")
    print(f"    export   : {count / seconds:>10,.0f} resources/s  ({seconds:.1f} s, {size_mb:,.0f} MB NDJSON in "
          f"{len(job.output)} files)")
    print(f"    memory   : private RSS peak {peak.peak:,.0f} MB during the export ({before:,.0f} MB before); "
          f"file-backed RSS {rss_mb('RssFile'):,.0f} MB after it; process max RSS (loading included) "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated numbers of resources")
    for size in (int(s) for s in parser.parse_args().sizes.split(",")):
        asyncio.run(run(size))


if __name__ == "__main__":
    main()
