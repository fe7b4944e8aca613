"""Delivering one subscription's notifications over its rest-hook: handshake, events in order (up to
``max-count`` per notification), heartbeats, retries with exponential backoff and jitter, and ``error`` once
the retry budget is spent.

Each call of :meth:`Deliverer.step` does at most one HTTP attempt and records it (status code, latency, error)
together with the new delivery state in one atomic record write. The caller holds the subscription's lease,
so deliveries of one subscription never run in two processes at once. Delivery is at-least-once: a crash
after the endpoint answered but before the state was written sends the same event numbers again, which
receivers de-duplicate by event number.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any

import httpx
import orjson

from fhir_clr.observability.metrics import WEBHOOK_ATTEMPTS
from fhir_clr.outbound.capped import ResponseTooLarge, request_capped
from fhir_clr.outbound.policy import EndpointPolicy, EndpointRefused
from fhir_clr.outbound.transport import RefusedByPolicy
from fhir_clr.store.port import RecordWrite, Store
from fhir_clr.subscriptions import state as records
from fhir_clr.subscriptions.book import BookEntry
from fhir_clr.subscriptions.channel import ChannelSpec
from fhir_clr.subscriptions.notifications import Event, StatusFacts, notification_bundle
from fhir_clr.subscriptions.state import Counter, DeliveryState

SIGNATURE_HEADER = "X-FHIR-CLR-Signature"
KEEP_ATTEMPTS = 100
RETRYABLE_STATUSES = frozenset({408, 425, 429})
RECEIVER_ANSWER_BYTES = 64 * 1024
"""Most bytes of a receiver's answer read (its body is never used; a longer one fails the attempt)."""
log = logging.getLogger(__name__)

StatusSetter = Callable[[str, str, str | None], Awaitable[None]]
"""``(subscription id, new status, error text)``: records a status change on the Subscription resource."""


class Outcome(StrEnum):
    """What a delivery step did."""

    IDLE = "idle"
    """Nothing due now."""
    SENT = "sent"
    """Something was delivered; more may be due at once."""
    FAILED = "failed"
    """An attempt failed; the next one is scheduled (or the subscription is in error)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How failed attempts are retried."""

    max_attempts: int = 10
    base_seconds: float = 2.0
    max_seconds: float = 600.0

    def delay(self, failures: int, retry_after: float | None) -> float:
        """Seconds before attempt ``failures + 1``: exponential with full jitter in its upper half, never less
        than the receiver's Retry-After, never more than ``max_seconds``."""
        backoff = min(self.max_seconds, self.base_seconds * 2 ** max(failures - 1, 0))
        delay = backoff * random.uniform(0.5, 1.0)
        return min(self.max_seconds, max(delay, retry_after or 0.0))


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP attempt."""

    kind: str
    status_code: int | None
    milliseconds: float
    error: str | None
    retry_after: float | None = None
    events: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        """The endpoint acknowledged (2xx)."""
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Worth trying again: no answer, a server error, or 408/425/429."""
        code = self.status_code
        return code is None or code >= 500 or code in RETRYABLE_STATUSES

    def as_doc(self, at_us: int) -> dict[str, Any]:
        """The attempt as a record document."""
        return {"at_us": at_us, "kind": self.kind, "status_code": self.status_code,
                "ms": round(self.milliseconds, 1), "error": self.error,
                "events": list(self.events) if self.events else None}


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value: ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def bodies_of(store: Store, events: list[Event]) -> dict[int, dict[str, Any] | None]:
    """Each event's focus as of the event (None when that version is a delete), by event number."""
    bodies: dict[int, dict[str, Any] | None] = {}
    for event in events:
        stored = await store.read_version(event.resource_type, event.resource_id, event.version)
        bodies[event.number] = orjson.loads(stored.body) if stored is not None and stored.body else None
    return bodies


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class Deliverer:
    """Delivery steps for subscriptions of one server."""

    def __init__(self, store: Store, http: httpx.AsyncClient, policy: EndpointPolicy, retry: RetryPolicy,
                 base_url: str, set_status: StatusSetter) -> None:
        self.store = store
        self.http = http
        self.policy = policy
        self.retry = retry
        self.base_url = base_url
        self.set_status = set_status

    async def step(self, entry: BookEntry) -> Outcome:
        """Do the next due thing for ``entry``: a handshake, a batch of events or a heartbeat."""
        spec = entry.spec
        if spec is None or entry.status not in ("requested", "active"):
            return Outcome.IDLE
        counter_record = await self.store.get_record(records.COUNTER, entry.id)
        if counter_record is None:
            return Outcome.IDLE  # the generator has not registered it yet
        counter = Counter.from_doc(counter_record.doc)
        delivery_record = await self.store.get_record(records.DELIVERY, entry.id)
        delivery = DeliveryState.from_doc(delivery_record.doc) if delivery_record else DeliveryState()
        now_us = time.time_ns() // 1000
        if delivery.next_try_us > now_us:
            return Outcome.IDLE
        if spec.end is not None and spec.end.timestamp() * 1e6 <= now_us:
            await self.set_status(entry.id, "off", None)
            return Outcome.IDLE
        if spec.r4_criteria:
            return await self._r4_step(entry, spec, counter, delivery, delivery_record, now_us)
        facts = StatusFacts(entry.id, spec.topic.url, entry.status, counter.events)
        if entry.status == "requested" or (delivery.handshake_version != entry.version and entry.status != "active"):
            attempt = await self._post(spec, notification_bundle(self.base_url, facts, "handshake", spec.content),
                                       "handshake")
            return await self._settle(entry, delivery, delivery_record, attempt, now_us, handshake=True)
        if counter.events > delivery.delivered:
            events = await self._events(entry.id, delivery.delivered, spec.max_count)
            if events:
                bodies = await self._bodies(events) if spec.content == "full-resource" else None
                bundle = notification_bundle(self.base_url, facts, "event-notification", spec.content, events, bodies)
                attempt = await self._post(spec, bundle, "event-notification", (events[0].number, events[-1].number))
                return await self._settle(entry, delivery, delivery_record, attempt, now_us)
        if spec.heartbeat_seconds and now_us - delivery.last_sent_us >= spec.heartbeat_seconds * 1_000_000:
            attempt = await self._post(spec, notification_bundle(self.base_url, facts, "heartbeat", spec.content),
                                       "heartbeat")
            return await self._settle(entry, delivery, delivery_record, attempt, now_us)
        return Outcome.IDLE

    async def _r4_step(self, entry: BookEntry, spec: ChannelSpec, counter: Counter, delivery: DeliveryState,
                       delivery_record: Any, now_us: int) -> Outcome:
        """An R4 criteria subscription: activated without a handshake, then one request per event (the
        resource as ``PUT [endpoint]/[type]/[id]``, or an empty ``POST [endpoint]`` without a payload)."""
        if entry.status == "requested":
            await self.set_status(entry.id, "active", None)
            return Outcome.SENT
        if counter.events <= delivery.delivered:
            return Outcome.IDLE
        events = await self._events(entry.id, delivery.delivered, 1)
        if not events:
            return Outcome.IDLE
        event = events[0]
        span = (event.number, event.number)
        if spec.content == "full-resource":
            body = (await self._bodies(events)).get(event.number)
            url = f"{spec.endpoint.rstrip('/')}/{event.resource_type}/{event.resource_id}"
            attempt = await self._send(spec, "PUT", url, orjson.dumps(body) if body is not None else b"",
                                       "event-notification", span)
        else:
            attempt = await self._send(spec, "POST", spec.endpoint, b"", "event-notification", span)
        return await self._settle(entry, delivery, delivery_record, attempt, now_us)

    def next_due_us(self, entry: BookEntry, delivery: DeliveryState) -> int | None:
        """When a heartbeat or retry falls due for ``entry`` (None: nothing scheduled)."""
        spec = entry.spec
        times = [delivery.next_try_us] if delivery.next_try_us else []
        if spec is not None and spec.heartbeat_seconds and entry.status == "active" and not spec.r4_criteria:
            times.append(delivery.last_sent_us + spec.heartbeat_seconds * 1_000_000)
        return min(times) if times else None

    async def _events(self, subscription_id: str, delivered: int, limit: int) -> list[Event]:
        found = await self.store.list_records(records.EVENT, prefix=f"{subscription_id}/",
                                              after=records.event_key(subscription_id, delivered), limit=limit)
        return [Event.from_doc(r.doc) for r in found]

    async def _bodies(self, events: list[Event]) -> dict[int, dict[str, Any] | None]:
        return await bodies_of(self.store, events)

    async def _post(self, spec: ChannelSpec, bundle: dict[str, Any], kind: str,
                    events: tuple[int, int] | None = None) -> Attempt:
        return await self._send(spec, "POST", spec.endpoint, orjson.dumps(bundle), kind, events)

    async def _send(self, spec: ChannelSpec, method: str, endpoint: str, body: bytes, kind: str,
                    events: tuple[int, int] | None = None) -> Attempt:
        """One attempt to ``endpoint`` with the channel's headers, the payload type when there is a body and the
        signature when the channel has a secret. Every failure (a URL the client cannot read, a refused address,
        a transport error) is a failed Attempt, never an exception. The host's addresses are vetted by the
        client's transport at connect time (see :mod:`fhir_clr.outbound.transport`)."""
        started = time.perf_counter()
        try:
            url = self.policy.parse(endpoint)
        except EndpointRefused as refused:
            return Attempt(kind, None, 0.0, f"endpoint refused: {refused}", events=events)
        headers = {**({"Content-Type": spec.payload} if body else {}), **dict(spec.headers)}
        if spec.signing_secret:
            headers[SIGNATURE_HEADER] = signature(spec.signing_secret, int(time.time()), body)
        try:
            response, _ = await request_capped(self.http, method, url, limit=RECEIVER_ANSWER_BYTES, content=body,
                                               headers=headers, timeout=spec.timeout_seconds)
        except ResponseTooLarge:
            return Attempt(kind, None, _ms(started), "the endpoint's answer was too large", events=events)
        except httpx.TimeoutException:
            return Attempt(kind, None, _ms(started), "timed out", events=events)
        except httpx.HTTPError as error:
            if isinstance(error.__cause__, RefusedByPolicy):
                return Attempt(kind, None, _ms(started), f"endpoint refused: {error.__cause__}", events=events)
            return Attempt(kind, None, _ms(started), f"connection failed: {type(error).__name__}", events=events)
        except Exception as error:  # anything else the client raises fails the attempt (its text may quote the URL)
            return Attempt(kind, None, _ms(started), f"delivery failed: {type(error).__name__}", events=events)
        failure = None if 200 <= response.status_code < 300 else f"endpoint answered {response.status_code}"
        return Attempt(kind, response.status_code, _ms(started), failure, _retry_after(response), events)

    async def _settle(self, entry: BookEntry, delivery: DeliveryState, record: Any, attempt: Attempt, now_us: int,
                      *, handshake: bool = False) -> Outcome:
        """Record the attempt and the new delivery state; change the Subscription's status when due."""
        new_status: tuple[str, str | None] | None = None
        if attempt.ok:
            delivery.failures, delivery.next_try_us, delivery.last_sent_us, delivery.error = 0, 0, now_us, None
            if attempt.events:
                delivery.delivered = attempt.events[1]
            if handshake:
                delivery.handshake_version = entry.version
                new_status = ("active", None)
        else:
            delivery.failures += 1
            if not attempt.retryable or delivery.failures >= self.retry.max_attempts:
                reason = (f"{attempt.kind} failed {delivery.failures} time(s); last: {attempt.error}"
                          + ("" if attempt.retryable else " (not retried)"))
                delivery.error, delivery.next_try_us = reason, 0
                new_status = ("error", reason)
                log.warning("subscription delivery stopped", extra={"subscription": entry.id, "reason": reason})
            else:
                delivery.next_try_us = now_us + int(self.retry.delay(delivery.failures, attempt.retry_after) * 1e6)
        delivery.attempts += 1
        WEBHOOK_ATTEMPTS.labels(attempt.kind, "ok" if attempt.ok else "failed").observe(attempt.milliseconds / 1000)
        writes = [RecordWrite(records.DELIVERY, entry.id, delivery.as_doc(),
                              expected_rev=record.rev if record is not None else 0),
                  RecordWrite(records.ATTEMPT, records.attempt_key(entry.id, now_us), attempt.as_doc(now_us))]
        if delivery.attempts % KEEP_ATTEMPTS == 0:
            writes += await self._prune_attempts(entry.id)
        await self.store.write_records(writes)
        if new_status is not None:
            await self.set_status(entry.id, *new_status)
        return Outcome.SENT if attempt.ok else Outcome.FAILED

    async def _prune_attempts(self, subscription_id: str) -> list[RecordWrite]:
        kept = await self.store.list_records(records.ATTEMPT, prefix=f"{subscription_id}/", limit=10 * KEEP_ATTEMPTS)
        return [RecordWrite(records.ATTEMPT, r.key, None) for r in kept[:-KEEP_ATTEMPTS]]


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
