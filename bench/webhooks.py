"""Webhook benchmark for fhir-clr (issue: subscriptions).

Starts a server (embedded store, the loopback receiver allow-listed) and an HTTP receiver in this process,
creates N subscriptions to the SDOHCC Task topic (each filtered to one CBO's Tasks, as CBO platforms
subscribe), waits for their handshakes, then changes Tasks at a steady rate spread over all CBOs. Prints the
write→webhook latency (from sending the write to the notification's arrival) p50/p99 and the number of
events lost (generated but never delivered; must be 0).

    python bench/webhooks.py                          # 100 changes/s for 20 s, 50 subscriptions
    python bench/webhooks.py --rate 50 --seconds 10 --subscriptions 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from crud import free_port, start, stop

from tests.api.subscription_helpers import subscription

arrivals: dict[tuple[str, int], float] = {}
lock = threading.Lock()


class Hook(BaseHTTPRequestHandler):
    """Records when each (subscription, event number) first arrives."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        now = time.perf_counter()
        parameters = body["entry"][0]["resource"]["parameter"]
        subscription_id = next(p for p in parameters if p["name"] == "subscription")[
            "valueReference"]["reference"].rsplit("/", 1)[-1]
        with lock:
            for p in parameters:
                if p["name"] == "notification-event":
                    number = int(next(q for q in p["part"] if q["name"] == "event-number")["valueString"])
                    arrivals.setdefault((subscription_id, number), now)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


async def run(rate: int, seconds: int, subscriptions: int) -> None:
    hook_port, port = free_port(), free_port()
    receiver = ThreadingHTTPServer(("127.0.0.1", hook_port), Hook)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory(prefix="fhir-clr-webhooks-") as data:
        env = {"FHIR_CLR_DATA_DIR": data, "FHIR_CLR_DEV": "true", "FHIR_CLR_LOG_LEVEL": "WARNING",
               "FHIR_CLR_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "FHIR_CLR_LISTEN_URL": f"http://127.0.0.1:{port}"}
        server = start("fhir_clr.app:create_app", port, env, 1)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as api:
                owners, subs, tasks = [], [], []
                for n in range(subscriptions):
                    org = (await api.post("/Organization", json={"resourceType": "Organization",
                                                                 "name": f"CBO {n}"})).json()["id"]
                    owners.append(f"Organization/{org}")
                    made = (await api.post("/Subscription", json=subscription(
                        f"http://127.0.0.1:{hook_port}/hook", filters=(f"owner=Organization/{org}",)))).json()
                    subs.append(made["id"])
                    tasks.append((await api.post("/Task", json={"resourceType": "Task", "status": "requested",
                                                                "intent": "order",
                                                                "owner": {"reference": f"Organization/{org}"}})
                                  ).json())
                for sub in subs:
                    for _ in range(200):
                        if (await api.get(f"/Subscription/{sub}")).json()["status"] == "active":
                            break
                        await asyncio.sleep(0.05)
                sent: dict[tuple[str, int], float] = {}
                acknowledged: dict[tuple[str, int], float] = {}
                failed = 0
                total = rate * seconds
                started = time.perf_counter()

                async def change(i: int) -> None:
                    nonlocal failed
                    k = i % subscriptions
                    at = time.perf_counter()
                    response = await api.put(f"/Task/{tasks[k]['id']}", json={**tasks[k], "description": f"{i}"})
                    if response.status_code != 200:
                        failed += 1
                        return
                    # version v of the Task is event v of its subscription (version 1, the create, is event 1)
                    key = (subs[k], int(response.json()["meta"]["versionId"]))
                    sent[key] = at
                    acknowledged[key] = time.perf_counter()

                pending = []
                for i in range(total):
                    await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
                    pending.append(asyncio.create_task(change(i)))
                await asyncio.gather(*pending)
                achieved = total / (time.perf_counter() - started)
                deadline = time.perf_counter() + 60
                while time.perf_counter() < deadline and any(key not in arrivals for key in sent):
                    await asyncio.sleep(0.1)

        finally:
            stop(server)
            receiver.shutdown()
    latencies = sorted((arrivals[key] - at) * 1000 for key, at in sent.items() if key in arrivals)
    after_commit = sorted((arrivals[key] - at) * 1000 for key, at in acknowledged.items() if key in arrivals)
    writes = sorted((acknowledged[key] - at) * 1000 for key, at in sent.items())
    lost = len(sent) - len(latencies)
    p99 = _p99(latencies)
    print(f"{total:,} changes at {achieved:,.0f}/s over {subscriptions} subscriptions "
          f"(each change matches one subscription)")
    print(f"    write->webhook latency  p50 {statistics.median(latencies):6.1f} ms   p99 {p99:6.1f} ms   "
          f"max {latencies[-1]:6.1f} ms")
    print(f"    commit->webhook latency p50 {statistics.median(after_commit):6.1f} ms   "
          f"p99 {_p99(after_commit):6.1f} ms   (the write itself: p50 {statistics.median(writes):.1f} ms, "
          f"p99 {_p99(writes):.1f} ms)")
    print(f"    lost events             {lost}   (failed writes: {failed})")


def _p99(values: list[float]) -> float:
    return values[min(len(values) - 1, int(len(values) * 0.99))] if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=100, help="changes per second")
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--subscriptions", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONPATH", str(Path(__file__).resolve().parent.parent))
    asyncio.run(run(args.rate, args.seconds, args.subscriptions))


if __name__ == "__main__":
    main()
