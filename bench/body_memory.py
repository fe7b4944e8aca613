"""Peak memory of the server process for the worst request bodies (issue 17, finding 7).

For each case it starts a fresh server (dev mode, embedded store in a temporary directory, default settings:
10 MB body limit, default body budget and large-body concurrency) and sends one 9 MB Patient (88,000
identifiers), 8.4 MB holding 1.4 million tiny strings, four of those at once, four bodies just within the
default budget at once, or, for comparison, a legitimate 2.2 MB transaction Bundle of 2,000 Tasks. It prints
the HTTP status(es), the time to answer, the server's RSS before, its peak RSS (Linux VmHWM) and its RSS
afterwards.

    python bench/body_memory.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crud import free_port, start, stop, task


def big_patient() -> bytes:
    """A 9 MB Patient: 88,000 identifiers of about 100 bytes."""
    identifiers = [{"system": "urn:oid:2.16.840.1.113883.4.1.bench", "value": f"{n:012d}",
                    "type": {"text": "member number"}} for n in range(88_000)]
    return orjson.dumps({"resourceType": "Patient", "identifier": identifiers})


def tiny_strings(count: int = 1_400_000) -> bytes:
    """``count`` three-letter strings (1.4 million: 8.4 MB)."""
    return orjson.dumps({"resourceType": "Patient", "name": [{"given": ["abc"] * count}]})


def within_budget() -> bytes:
    """Just under the default budget of 400,000 strings (2.4 MB)."""
    return tiny_strings(399_990)


def task_bundle() -> bytes:
    """A 2.2 MB transaction of 2,000 referral Tasks (a large but ordinary body)."""
    entries = [{"resource": task(n), "request": {"method": "POST", "url": "Task"}} for n in range(2000)]
    return orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def memory_kb(pid: int, field: str) -> int:
    """``VmHWM`` (peak) or ``VmRSS`` of a process, in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not found")


async def send(port: int, path: str, body: bytes, copies: int) -> list[int]:
    """POST ``copies`` copies of ``body`` at once; their statuses."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=600.0) as http:
        responses = await asyncio.gather(*(http.post(path, content=body, headers={
            "Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}) for _ in range(copies)))
    return [r.status_code for r in responses]


def run_case(name: str, path: str, body: bytes, copies: int) -> str:
    """One case against a fresh server: its result line."""
    tmp = Path(tempfile.mkdtemp(prefix="fhir-clr-body-memory-"))
    port = free_port()
    server = start("fhir_clr.app:create_app", port, {"FHIR_CLR_DATA_DIR": str(tmp), "FHIR_CLR_DEV": "true",
                                                     "FHIR_CLR_LOG_LEVEL": "WARNING"}, 1)
    try:
        httpx.post(f"http://127.0.0.1:{port}/Patient", content=orjson.dumps({"resourceType": "Patient"}),
                   headers={"Content-Type": "application/fhir+json"})
        before = memory_kb(server.pid, "VmRSS")
        started = time.perf_counter()
        statuses = asyncio.run(send(port, path, body, copies))
        elapsed = time.perf_counter() - started
        peak, after = memory_kb(server.pid, "VmHWM"), memory_kb(server.pid, "VmRSS")
        return (f"  {name:30} {len(body) / 1e6:4.1f} MB x{copies}  status {','.join(map(str, statuses)):15} "
                f"{elapsed:6.2f} s   RSS before {before / 1024:5.0f} MB   peak {peak / 1024:5.0f} MB   "
                f"after {after / 1024:5.0f} MB")
    finally:
        stop(server)
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    """Run the cases and print one line each."""
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter).parse_args()
    print(f"fhir-clr body memory benchmark ({os.cpu_count()} cores)")
    for name, path, build, copies in [("one 9 MB Patient", "/Patient", big_patient, 1),
                                      ("1.4 million tiny strings", "/Patient", tiny_strings, 1),
                                      ("four of those at once", "/Patient", tiny_strings, 4),
                                      ("399,990 strings, four at once", "/Patient", within_budget, 4),
                                      ("transaction of 2,000 Tasks", "/", task_bundle, 1)]:
        print(run_case(name, path, build(), copies), flush=True)


if __name__ == "__main__":
    main()
