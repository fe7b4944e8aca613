"""Delivery attempts that fail inside the HTTP client (a URL it cannot read, an exception from the transport)
are failed attempts like any other: backed off, recorded, and the subscription ends in ``error`` after the
configured number of attempts, with one log line and no URL in it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from fhir_clr.outbound.policy import EndpointPolicy
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import RecordWrite
from fhir_clr.store.sqlite import SqliteStore
from fhir_clr.subscriptions import state as records
from fhir_clr.subscriptions.book import BookEntry
from fhir_clr.subscriptions.channel import ChannelReader
from fhir_clr.subscriptions.delivery import Deliverer, Outcome, RetryPolicy
from fhir_clr.subscriptions.state import Counter, DeliveryState
from fhir_clr.subscriptions.topics import TopicCatalog
from tests.api.subscription_helpers import subscription

PROFILES = Path(__file__).resolve().parents[2] / "profiles"
ATTEMPTS = 4


def _answers_200(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200)


def _raises(request: httpx.Request) -> httpx.Response:
    raise RuntimeError(f"transport broke while sending to {request.url}")


@pytest.mark.parametrize(("endpoint", "handler", "reason"), [
    ("https://8.8.8.8:4431/\t@127.0.0.1", _answers_200, "endpoint refused: The endpoint must not contain whitespace"),
    ("https://hooks.example.org/notify?token=SECRET", _raises, "delivery failed: RuntimeError"),
])
async def test_a_delivery_that_raises_backs_off_and_ends_in_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, endpoint: str,
        handler: Callable[[httpx.Request], httpx.Response], reason: str) -> None:
    registry = SearchParamRegistry.from_directory(PROFILES)
    reader = ChannelReader(TopicCatalog.from_directory(PROFILES / "topics", registry), registry,
                           EndpointPolicy.from_entries(["hooks.example.org"]))
    resource = {**subscription(endpoint), "id": "s1"}
    entry = BookEntry("s1", 1, resource, reader.read(resource, check_endpoint=False))  # stored by an older version
    store = SqliteStore(tmp_path / "store.sqlite3", read_threads=1)
    await store.open()
    await store.write_records([RecordWrite(records.COUNTER, "s1", Counter().as_doc())])
    statuses: list[tuple[str, str | None]] = []

    async def set_status(subscription_id: str, status: str, error: str | None) -> None:
        statuses.append((status, error))

    caplog.set_level(logging.DEBUG)
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as http:
        deliverer = Deliverer(store, http, reader.policy, RetryPolicy(ATTEMPTS, 0.05, 0.2), "http://fhir.test",
                              set_status)
        for attempt in range(1, ATTEMPTS + 1):
            assert await deliverer.step(entry) is Outcome.FAILED
            state = DeliveryState.from_doc((await store.get_record(records.DELIVERY, "s1")).doc)
            assert state.failures == attempt
            if attempt < ATTEMPTS:
                assert await deliverer.step(entry) is Outcome.IDLE  # backed off: no tight loop
                await asyncio.sleep(max(0.0, state.next_try_us / 1e6 - time.time()) + 0.01)
    await store.close()
    assert state.next_try_us == 0 and state.error is not None and reason in state.error
    assert statuses == [("error", state.error)] and f"failed {ATTEMPTS} time(s)" in state.error
    lines = [r.getMessage() + str(vars(r)) for r in caplog.records if r.name.startswith(("fhir_clr", "httpx"))]
    assert len(lines) == 1 and "SECRET" not in lines[0] and "hooks.example.org" not in lines[0]
