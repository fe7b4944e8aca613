"""The subscription worker sends through the HTTP transport it is given (the server gives it the pinned
``VettedTransport``): here an in-process receiver stands in for the network, so the whole pipeline — handshake,
activation, event notification — runs without a socket, and the worker closes the transport when it stops."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson

from fhir_clr.app import build_services, subscription_service
from fhir_clr.config import Settings
from fhir_clr.subscriptions.topic_basic import load_topic_resources
from tests.api.helpers import task
from tests.api.subscription_helpers import subscription

ENDPOINT = "https://8.8.8.8/notify"
"""A public address: accepted when the Subscription is written, unreachable from the test machine, so only a
transport that is not the network can deliver to it."""


class Receiver(httpx.MockTransport):
    """Answers every notification 200 and keeps its status parameters; notes when it is closed."""

    def __init__(self) -> None:
        super().__init__(self._receive)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.closed = False

    def _receive(self, request: httpx.Request) -> httpx.Response:
        bundle = orjson.loads(request.content)
        parameters = bundle["entry"][0]["resource"]["parameter"]
        status = {p["name"]: next(v for k, v in p.items() if k.startswith("value")) for p in parameters
                  if "part" not in p}
        self.received.append((str(request.url), status))
        return httpx.Response(200)

    async def aclose(self) -> None:
        self.closed = True

    def kinds(self) -> list[str]:
        return [status["type"] for _, status in self.received]


async def _eventually(condition: Callable[[], Awaitable[bool]], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        await asyncio.sleep(0.02)


async def test_the_worker_delivers_through_the_transport_it_is_given_and_closes_it(tmp_path: Path) -> None:
    services = await build_services(Settings(data_dir=tmp_path, dev=True, subscription_poll_seconds=0.05))
    receiver = Receiver()
    worker = subscription_service(services, transport=receiver)
    try:
        await load_topic_resources(services.engine, services.topics.all())
        await worker.start()
        made = await services.engine.create("Subscription", subscription(ENDPOINT))
        assert made.stored is not None
        subscription_id = made.stored.resource_id

        async def active() -> bool:
            current = await services.engine.read("Subscription", subscription_id)
            return orjson.loads(current.body or b"{}")["status"] == "active"

        await _eventually(active, "activation by the handshake")
        assert receiver.kinds() == ["handshake"]
        await services.engine.create("Task", task())

        async def notified() -> bool:
            return "event-notification" in receiver.kinds()

        await _eventually(notified, "the Task's notification")
    finally:
        await worker.stop()
        await services.store.close()
    assert {url for url, _ in receiver.received} == {ENDPOINT}
    assert all(status["subscription"]["reference"].endswith(f"Subscription/{subscription_id}")
               for _, status in receiver.received)
    assert receiver.received[-1][1]["events-since-subscription-start"] == "1"
    assert receiver.closed
