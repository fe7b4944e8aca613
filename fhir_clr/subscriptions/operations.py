"""What ``$status``, ``$events``, ``$resend`` and ``$delivery-attempts`` answer, from the stored
subscription bookkeeping (the API layer checks the caller may read the Subscription first), and
:func:`resend_events`, the whole ``$resend`` for one caller (the API's operation and the console's button)."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.store.port import RecordWrite, Store
from fhir_clr.subscriptions import state as records
from fhir_clr.subscriptions.channel import CONTENTS, ChannelReader
from fhir_clr.subscriptions.delivery import bodies_of
from fhir_clr.subscriptions.notifications import (
    Event,
    StatusFacts,
    instant_of,
    notification_bundle,
    status_parameters,
)
from fhir_clr.subscriptions.state import Counter, DeliveryState

MAX_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class DeliveryOverview:
    """Events raised and delivered, consecutive failures, the last error and the last attempt record."""

    events: int
    delivered: int
    failures: int
    error: Any
    last_attempt: dict[str, Any] | None

    @property
    def queue_depth(self) -> int:
        """Events raised but not delivered yet."""
        return self.events - self.delivered


class SubscriptionOperations:
    """Reads and resets the bookkeeping of subscriptions. ``wake`` tells the delivery worker to look again (after
    a re-send)."""

    def __init__(self, store: Store, channels: ChannelReader, wake: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.channels = channels
        self.wake = wake

    async def _counter(self, subscription_id: str) -> Counter:
        record = await self.store.get_record(records.COUNTER, subscription_id)
        return Counter.from_doc(record.doc) if record else Counter()

    async def _delivery(self, subscription_id: str) -> tuple[DeliveryState, int]:
        record = await self.store.get_record(records.DELIVERY, subscription_id)
        return (DeliveryState.from_doc(record.doc), record.rev) if record else (DeliveryState(), 0)

    async def facts(self, subscription: dict[str, Any]) -> StatusFacts:
        """The status facts of a stored Subscription."""
        counter = await self._counter(subscription["id"])
        return StatusFacts(subscription["id"], str(subscription.get("criteria") or ""),
                           str(subscription.get("status") or ""), counter.events, subscription.get("error"))

    async def status(self, base: str, subscription: dict[str, Any]) -> dict[str, Any]:
        """The ``query-status`` Parameters of one Subscription."""
        return status_parameters(base, await self.facts(subscription), "query-status", "id-only")

    async def events(self, base: str, subscription: dict[str, Any], since: int | None, until: int | None,
                     content: str | None) -> dict[str, Any]:
        """The ``$events`` history Bundle: events ``since``..``until`` (inclusive; at most 1,000)."""
        facts = await self.facts(subscription)
        content = content or self._content(subscription)
        if content not in CONTENTS:
            raise FhirError(400, "value", f"content must be one of {', '.join(CONTENTS)}", expression="content")
        low = max(1, since or 1)
        high = min(facts.events_since_start, until if until is not None else facts.events_since_start)
        high = min(high, low + MAX_EVENTS - 1)
        found = [] if high < low else await self.store.list_records(
            records.EVENT, prefix=f"{facts.subscription_id}/",
            after=records.event_key(facts.subscription_id, low - 1), limit=high - low + 1)
        events = [Event.from_doc(r.doc) for r in found]
        bodies = await bodies_of(self.store, events) if content == "full-resource" else None
        return notification_bundle(base, facts, "query-event", content, events, bodies)

    def _content(self, subscription: dict[str, Any]) -> str:
        try:
            return self.channels.read(subscription, check_endpoint=False).content
        except FhirError:
            return "id-only"

    async def resend(self, subscription: dict[str, Any], since: int | None) -> bool:
        """Deliver again from event ``since`` (default: the first undelivered one) and clear the failure
        count; True when the Subscription must go back to ``requested`` (it was in error)."""
        counter = await self._counter(subscription["id"])
        delivery, rev = await self._delivery(subscription["id"])
        if since is not None and not 1 <= since <= max(counter.events, 1):
            raise FhirError(400, "value", f"eventsSinceNumber must be between 1 and {max(counter.events, 1)}",
                            expression="eventsSinceNumber")
        if since is not None:
            delivery.delivered = since - 1
        delivery.failures, delivery.next_try_us, delivery.error = 0, 0, None
        await self.store.write_records([RecordWrite(records.DELIVERY, subscription["id"], delivery.as_doc(),
                                                    expected_rev=rev)])
        return subscription.get("status") in ("error", "off")

    async def _recent_attempts(self, subscription_id: str, limit: int) -> list[dict[str, Any]]:
        found = await self.store.list_records(records.ATTEMPT, prefix=f"{subscription_id}/", limit=100_000)
        return [r.doc for r in found[-limit:]][::-1]

    async def overview(self, subscription: dict[str, Any]) -> DeliveryOverview:
        """How delivery to one Subscription is going (for the console)."""
        counter = await self._counter(subscription["id"])
        delivery, _ = await self._delivery(subscription["id"])
        last = await self._recent_attempts(subscription["id"], 1)
        return DeliveryOverview(counter.events, delivery.delivered, delivery.failures,
                                delivery.error or subscription.get("error"), last[0] if last else None)

    async def attempts(self, subscription_id: str, limit: int) -> dict[str, Any]:
        """The latest delivery attempts, newest first, with the queue depth and latency percentiles."""
        counter = await self._counter(subscription_id)
        delivery, _ = await self._delivery(subscription_id)
        recent = await self._recent_attempts(subscription_id, limit)
        latencies = sorted(a["ms"] for a in recent if a.get("status_code"))
        summary: list[dict[str, Any]] = [
            {"name": "events", "valueInteger": counter.events},
            {"name": "delivered", "valueInteger": delivery.delivered},
            {"name": "queue-depth", "valueInteger": counter.events - delivery.delivered},
            {"name": "consecutive-failures", "valueInteger": delivery.failures}]
        if latencies:
            summary += [{"name": "latency-p50-ms", "valueDecimal": statistics.median(latencies)},
                        {"name": "latency-max-ms", "valueDecimal": latencies[-1]}]
        for attempt in recent:
            parts: list[dict[str, Any]] = [{"name": "kind", "valueCode": attempt["kind"]},
                                           {"name": "milliseconds", "valueDecimal": attempt["ms"]}]
            if attempt.get("status_code") is not None:
                parts.append({"name": "status-code", "valueInteger": attempt["status_code"]})
            if attempt.get("error"):
                parts.append({"name": "error", "valueString": attempt["error"]})
            if attempt.get("events"):
                parts.append({"name": "events", "valueString": "{}-{}".format(*attempt["events"])})
            summary.append({"name": "attempt", "part": [
                {"name": "time", "valueInstant": instant_of(attempt["at_us"])}, *parts]})
        return {"resourceType": "Parameters", "parameter": summary}



async def resend_events(engine: Engine, operations: SubscriptionOperations, subscription_id: str,
                        since: int | None) -> None:
    """``$resend`` for the caller ``engine`` acts for: it must be allowed to update Subscriptions and see this one;
    delivery starts again from event ``since`` (default: the first undelivered one), a Subscription in ``error`` or
    ``off`` goes back to ``requested`` (new handshake), and the delivery worker is woken."""
    engine.access.require("Subscription", "u")
    stored = await engine.read("Subscription", subscription_id)
    subscription: dict[str, Any] = orjson.loads(stored.body or b"{}")
    if await operations.resend(subscription, since):
        body = {**subscription, "status": "requested"}
        body.pop("error", None)
        await engine.for_server_writes().update("Subscription", subscription_id, body)
    operations.wake()
