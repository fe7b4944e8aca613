"""Notice delivery benchmark (issue 22): notices per second through a real SMTP relay, and the latency from the
moment a notice falls due (the decision that owes it is committed) to the moment the relay accepts it.

A fhir-clr server (embedded store, notice worker on) sends to an aiosmtpd relay in this process that requires
STARTTLS with a certificate from a throw-away CA (trustme); both come with the test extras
(``pip install -e '.[test]'``). The benchmark creates N referrals, each from its own Referring Entity with an
email address, then records the N authorization decisions at once and waits for the N Referring Entity notices.

    python bench/notices.py                  # 200 notices
    python bench/notices.py --notices 50     # quicker
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import trustme
from aiosmtpd.controller import Controller

BASE = "http://fhir-clr.org/fhir"
JSON = {"Content-Type": "application/fhir+json"}


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Relay:
    """Accepts every message over STARTTLS and notes when each recipient's message arrived."""

    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            for address in envelope.rcpt_tos:
                self.arrived.setdefault(address, time.monotonic())
        return "250 OK"


def referral(subject: str, requester: str) -> dict[str, Any]:
    """A CLR Referral for ECM."""
    return {"resourceType": "ServiceRequest", "meta": {"profile": [f"{BASE}/StructureDefinition/clr-referral"]},
            "status": "active", "intent": "order", "code": {"text": "ECM"}, "subject": {"reference": subject},
            "requester": {"reference": requester}, "authoredOn": "2026-11-30",
            "extension": [{"url": f"{BASE}/StructureDefinition/referral-type", "valueCoding": {"code": "1"}}]}


def decided(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` with an approval recorded now."""
    extension = {"url": f"{BASE}/StructureDefinition/authorization-decision", "extension": [
        {"url": "status", "valueCoding": {"code": "approved"}},
        {"url": "date", "valueDateTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]}
    return {**body, "extension": [*body["extension"], extension]}


class Server:
    """A fhir-clr server process on one data directory."""

    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, delivery: bool) -> None:
        """Start it (with or without the notice worker) and wait until it is ready."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "fhir_clr.app:create_app", "--factory", "--port", str(self.port),
             "--no-access-log"], env={**self.env, "FHIR_CLR_NOTICE_DELIVERY": str(delivery).lower()},
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        while True:
            try:
                if httpx.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)

    def stop(self) -> None:
        """Stop it."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def create_referrals(base: str, count: int, prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """``count`` referrals, each from its own Referring Entity with an email address: (address, referral)."""
    referrals = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for n in range(count):
            address = f"{prefix}-{n}@bench.example.org"
            org = client.post("/Organization", headers=JSON, json={
                "resourceType": "Organization", "name": f"Clinic {n}", "telecom": [{"system": "email",
                                                                                  "value": address}]}).json()
            patient = client.post("/Patient", headers=JSON, json={
                "resourceType": "Patient", "name": [{"family": f"Bench{n}"}], "address": [{"city": "Fresno"}]}).json()
            referrals.append((address, client.post("/ServiceRequest", headers=JSON, json=(
                referral(f"Patient/{patient['id']}", f"Organization/{org['id']}"))).json()))
    return referrals


def decide(base: str, item: tuple[str, dict[str, Any]]) -> float:
    """Record the approval of one referral; when it was committed (monotonic)."""
    with httpx.Client(base_url=base, timeout=60) as http:
        http.put(f"/ServiceRequest/{item[1]['id']}", headers=JSON, json=decided(item[1])).raise_for_status()
    return time.monotonic()


def wait_for(relay: Relay, addresses: list[str], timeout: float = 600) -> dict[str, float]:
    """When each address got its message (waits until all did, or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with relay.lock:
            if all(a in relay.arrived for a in addresses):
                break
        time.sleep(0.05)
    with relay.lock:
        return {a: relay.arrived[a] for a in addresses if a in relay.arrived}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notices", type=int, default=200, help="backlog sent after a restart (throughput)")
    parser.add_argument("--latency-notices", type=int, default=20, help="decisions recorded one by one (latency)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="fhir-clr-notices-bench-"))
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca.cert_pem.write_to_path(str(work / "ca.pem"))
    relay = Relay()
    smtp_port = free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=smtp_port, tls_context=context, require_starttls=True)
    controller.start()
    server = Server({**os.environ, "FHIR_CLR_DATA_DIR": str(work / "data"), "FHIR_CLR_DEV": "true",
                     "FHIR_CLR_LOG_LEVEL": "WARNING", "FHIR_CLR_NOTICE_POLL_SECONDS": "0.5",
                     "FHIR_CLR_SMTP_HOST": "127.0.0.1", "FHIR_CLR_SMTP_PORT": str(smtp_port),
                     "FHIR_CLR_SMTP_CA_FILE": str(work / "ca.pem"), "FHIR_CLR_NOTICE_FROM": "notices@plan.example.org"})
    try:
        # throughput: a backlog of owed notices (decided while the worker was off), sent after a restart
        server.start(delivery=False)
        backlog = create_referrals(server.base, args.notices, "backlog")
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda item: decide(server.base, item), backlog))
        server.stop()
        server.start(delivery=True)
        started = time.monotonic()
        arrived = wait_for(relay, [a for a, _ in backlog])
        elapsed = max(arrived.values()) - started
        print(f"backlog: {len(arrived)}/{args.notices} Referring Entity notices sent {elapsed:.1f} s after the "
              f"restarted server was ready ({len(arrived) / elapsed:.1f} notices/s through SMTP with STARTTLS; "
              "the Member letters are composed in the same passes)")
        # latency: decisions one at a time, each notice timed from its commit to the relay's acceptance
        steady = create_referrals(server.base, args.latency_notices, "steady")
        due = {}
        for item in steady:
            due[item[0]] = decide(server.base, item)
            time.sleep(0.5)
        arrived = wait_for(relay, list(due))
        latencies = sorted(arrived[a] - due[a] for a in arrived)
        quantiles = statistics.quantiles(latencies, n=20) if len(latencies) > 1 else latencies * 19
        print(f"due -> sent latency over {len(latencies)} notices (worker poll 0.5 s): p50 "
              f"{statistics.median(latencies):.2f} s, p95 {quantiles[18]:.2f} s, max {latencies[-1]:.2f} s")
    finally:
        server.stop()
        controller.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
