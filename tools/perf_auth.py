"""Measure the cost of security on a live server: token endpoint latency, and per-request latency of reads and
searches in dev mode (no auth) vs. with auth + organization policy + audit (plan and provider callers).

Usage: ``.venv/bin/python tools/perf_auth.py`` (starts its own servers in temporary directories)."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.api.helpers import FHIR_JSON, patient, task
from tests.api.security_client import (
    JWT_BEARER,
    access_token,
    assertion,
    new_client,
    register,
)
from tests.conftest import LiveServer

N = 400


def timed(http: httpx.Client, path: str, params: dict[str, str] | None = None) -> float:
    """Median milliseconds of N sequential GETs."""
    samples = []
    for _ in range(N):
        started = time.perf_counter()
        response = http.get(path, params=params)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.text
    return statistics.median(samples)


def seed(http: httpx.Client, owner: str) -> str:
    """A patient and 50 referral tasks (one of them returned) owned by ``owner``."""
    pid = http.post("/Patient", json=patient(), headers=FHIR_JSON).json()["id"]
    ids = [http.post("/Task", json=task(owner=owner, requester={"reference": "Organization/plan"},
                                        **{"for": {"reference": f"Patient/{pid}"}}), headers=FHIR_JSON).json()["id"]
           for _ in range(50)]
    return ids[0]


def main() -> None:
    """Run the measurements and print a table."""
    plan = new_client("plan", "Organization/plan", "plan", ["system/*.cruds"])
    cbo = new_client("cbo", "Organization/cbo-a", "servicing-provider", ["system/*.cruds"], ec=True)
    with tempfile.TemporaryDirectory() as dev_dir, tempfile.TemporaryDirectory() as sec_dir:
        dev = LiveServer(Path(dev_dir), {"FHIR_CLR_LOG_LEVEL": "ERROR"})
        for client in (plan, cbo):
            register(Path(sec_dir), client)
        sec = LiveServer(Path(sec_dir), {"FHIR_CLR_LOG_LEVEL": "ERROR", "FHIR_CLR_RATE_LIMIT_PER_SECOND": "0",
                                         "FHIR_CLR_TOKEN_RATE_PER_MINUTE": "0",
                                         "FHIR_CLR_TOKEN_SOURCE_RATE_PER_MINUTE": "0"}, dev=False)
        dev.start()
        sec.start()
        try:
            token_ms = []
            with httpx.Client(base_url=sec.base_url) as http:
                for client in (plan, cbo) * 25:
                    form = {"grant_type": "client_credentials", "scope": "system/*.rs",
                            "client_assertion_type": JWT_BEARER,
                            "client_assertion": assertion(client, f"{sec.base_url}/auth/token")}
                    started = time.perf_counter()
                    assert http.post("/auth/token", data=form).status_code == 200
                    token_ms.append((time.perf_counter() - started) * 1000)
            print(f"token endpoint: median {statistics.median(token_ms):.2f} ms, max {max(token_ms):.2f} ms")
            rows = []
            with httpx.Client(base_url=dev.base_url) as http:
                tid = seed(http, "Organization/cbo-a")
                rows.append(("dev (no auth)", timed(http, f"/Task/{tid}"),
                             timed(http, "/Task", {"owner": "Organization/cbo-a", "_count": "20"})))
            for name, client in (("plan", plan), ("provider", cbo)):
                headers = {"Authorization": f"Bearer {access_token(sec.base_url, client)}"}
                with httpx.Client(base_url=sec.base_url, headers=headers) as http:
                    if name == "plan":
                        tid = seed(http, "Organization/cbo-a")
                    rows.append((f"auth {name}", timed(http, f"/Task/{tid}"),
                                 timed(http, "/Task", {"status": "requested", "_count": "20"})))
            print(f"{'caller':<16}{'read ms':>10}{'search ms':>12}   (median of {N} sequential requests)")
            for name, read_ms, search_ms in rows:
                print(f"{name:<16}{read_ms:>10.2f}{search_ms:>12.2f}")
        finally:
            dev.stop()
            sec.stop()


if __name__ == "__main__":
    main()
