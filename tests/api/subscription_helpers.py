"""Building Subscriptions (R4 Backport form) and servers configured for webhook tests."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from tests.api.helpers import FHIR_JSON
from tests.conftest import LiveServer

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
TASK_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
SR_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Servicerequest"
STATUS_TOPIC = "http://fhir-clr.org/fhir/SubscriptionTopic/referral-status-changed"
CLOSED_TOPIC = "http://fhir-clr.org/fhir/SubscriptionTopic/referral-loop-closed"
DUE_TOPIC = "http://fhir-clr.org/fhir/SubscriptionTopic/notice-obligation-due"
OVERDUE_TOPIC = "http://fhir-clr.org/fhir/SubscriptionTopic/notice-obligation-overdue"
SECRET_URL = "http://fhir-clr.org/fhir/StructureDefinition/subscription-signing-secret"
FAST_RETRIES = {"FHIR_CLR_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1", "FHIR_CLR_WEBHOOK_RETRY_BASE_SECONDS": "0.05",
                "FHIR_CLR_WEBHOOK_RETRY_MAX_SECONDS": "0.25", "FHIR_CLR_WEBHOOK_MAX_ATTEMPTS": "12",
                "FHIR_CLR_SUBSCRIPTION_POLL_SECONDS": "0.1", "FHIR_CLR_SUBSCRIPTION_LEASE_SECONDS": "2",
                "FHIR_CLR_OBLIGATION_SWEEP_SECONDS": "0.2"}
"""Webhook settings for tests: the loopback receiver allowed, retries within ~2.5 s, short leases, overdue
obligations looked for every 0.2 s."""


def webhook_server(directory: Path, **env: str) -> LiveServer:
    """A started dev-mode server that may call the loopback receiver, with fast retries."""
    server = LiveServer(directory, {**FAST_RETRIES, **env})
    server.env["FHIR_CLR_LISTEN_URL"] = server.base_url
    server.start()
    return server


def cli_server(directory: Path, **env: str) -> LiveServer:
    """A started dev-mode server run as operators run it (``fhir-clr serve``: its JSON logging at INFO into
    ``log_path``), allowed to call the loopback receiver, with fast retries."""
    server = LiveServer(directory, {**FAST_RETRIES, "FHIR_CLR_LOG_LEVEL": "INFO", **env})
    directory.mkdir(parents=True, exist_ok=True)
    with server.log_path.open("ab") as log:
        server.process = subprocess.Popen(
            [sys.executable, "-m", "fhir_clr.cli", "serve", "--dev", "--port", str(server.port), "--data",
             str(directory)], env=server.env, stdout=log, stderr=subprocess.STDOUT)

    def ready() -> bool:
        try:
            return httpx.get(f"{server.base_url}/readyz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, timeout=30.0, what="server start")
    return server


def subscription(endpoint: str, topic: str = TASK_TOPIC, filters: tuple[str, ...] = (), content: str = "id-only",
                 *, headers: tuple[str, ...] = (), heartbeat: int | None = None, secret: str | None = None,
                 **extra: Any) -> dict[str, Any]:
    """A rest-hook Subscription to ``topic`` in the Backport form."""
    channel_extensions: list[dict[str, Any]] = [{"url": BACKPORT + "backport-timeout", "valueUnsignedInt": 5}]
    if heartbeat:
        channel_extensions.append({"url": BACKPORT + "backport-heartbeat-period", "valueUnsignedInt": heartbeat})
    if secret:
        channel_extensions.append({"url": SECRET_URL, "valueString": secret})
    body: dict[str, Any] = {
        "resourceType": "Subscription", "meta": {"profile": [BACKPORT + "backport-subscription"]},
        "status": "requested", "reason": "test", "criteria": topic,
        "channel": {"extension": channel_extensions, "type": "rest-hook", "endpoint": endpoint,
                    "payload": "application/fhir+json",
                    "_payload": {"extension": [{"url": BACKPORT + "backport-payload-content", "valueCode": content}]},
                    **({"header": list(headers)} if headers else {})}, **extra}
    if filters:
        body["_criteria"] = {"extension": [{"url": BACKPORT + "backport-filter-criteria", "valueString": f}
                                           for f in filters]}
    return body


def subscribe(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    """POST the Subscription (201 required)."""
    response = client.post("/Subscription", json=body, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()


def wait_until(condition: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    """Poll ``condition`` until true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.03)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def status_of(client: httpx.Client, subscription_id: str) -> str:
    """The Subscription's current status."""
    return str(client.get(f"/Subscription/{subscription_id}").json()["status"])


def failed_attempts(client: httpx.Client, subscription_id: str) -> int:
    """How many delivery attempts to the Subscription's endpoint have failed in a row (``$delivery-attempts``)."""
    parameters = client.get(f"/Subscription/{subscription_id}/$delivery-attempts").json()["parameter"]
    return next(int(p["valueInteger"]) for p in parameters if p["name"] == "consecutive-failures")
