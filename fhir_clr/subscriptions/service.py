"""The subscription worker of one server process: wakes on every local commit (and polls for other processes'
work), generates events under the ``subscriptions/generate`` lease, and delivers each subscription under its
own lease, one attempt in flight per subscription, in event order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid

import httpx
import orjson

from fhir_clr.auth.clients import Role
from fhir_clr.auth.policy import OrganizationPolicy
from fhir_clr.auth.scopes import ScopeSet
from fhir_clr.auth.tokens import Caller as TokenCaller
from fhir_clr.clr.config import extension_url
from fhir_clr.clr.deadlines import Deadlines
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.outbound.policy import EndpointPolicy
from fhir_clr.outbound.transport import VettedTransport
from fhir_clr.store.port import Store
from fhir_clr.store.signalling import SignallingStore
from fhir_clr.subscriptions import state as records
from fhir_clr.subscriptions.book import SubscriptionBook
from fhir_clr.subscriptions.channel import ChannelReader
from fhir_clr.subscriptions.delivery import Deliverer, Outcome, RetryPolicy
from fhir_clr.subscriptions.generator import BATCH, EventGenerator
from fhir_clr.subscriptions.notifications import instant_of
from fhir_clr.subscriptions.state import DeliveryState

log = logging.getLogger(__name__)
GENERATE_LEASE = "subscriptions/generate"
BOOK_REFRESH_SECONDS = 1.0
MAX_PARALLEL_DELIVERIES = 64


def webhook_transport(policy: EndpointPolicy) -> VettedTransport:
    """The transport of the server's notifications: connections to the addresses ``policy`` vetted only,
    pinned at connect time (:class:`~fhir_clr.outbound.transport.VettedTransport`)."""
    return VettedTransport(policy.addresses, limits=httpx.Limits(max_connections=200, max_keepalive_connections=100))


class SubscriptionService:
    """Runs the pipeline in the background of the server process."""

    def __init__(self, store: SignallingStore[Store], engine: Engine, reader: ChannelReader, policy: EndpointPolicy,
                 retry: RetryPolicy, base_url: str, transport: httpx.AsyncBaseTransport, *,
                 poll_seconds: float = 0.5, lease_seconds: float = 30.0, sweep_seconds: float = 60.0) -> None:
        """``transport`` carries every notification (the server's is :func:`webhook_transport`); the service
        owns it from here on and closes it in :meth:`stop`."""
        self.store = store
        self.engine = engine
        self.book = SubscriptionBook(store, reader)
        self.generator = EventGenerator(store, engine.registry, self._visible, instant_of)
        self.http = httpx.AsyncClient(transport=transport, follow_redirects=False, trust_env=False)
        self.deliverer = Deliverer(store, self.http, policy, retry, base_url, self._set_status)
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.sweep_seconds = sweep_seconds
        self._swept = 0.0
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._leases: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._dirty: set[str] = set()
        self._book_at = 0.0
        self._wake_at: dict[str, float] = {}
        self._slots = asyncio.Semaphore(MAX_PARALLEL_DELIVERIES)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the background loop."""
        self._task = asyncio.create_task(self._run(), name="subscriptions")

    async def stop(self) -> None:
        """Stop the loop and the deliveries in flight (their state stays consistent), give the leases back."""
        tasks = [t for t in (self._task, *self._inflight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for name in list(self._leases):
            with contextlib.suppress(Exception):
                await self.store.release_lease(name, self.owner)
        await self.http.aclose()

    async def _run(self) -> None:
        last_poll = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.store.committed.wait(), timeout=self._sleep_seconds())
            self.store.committed.clear()
            try:
                polled = time.monotonic() - last_poll >= self.poll_seconds
                if polled:
                    last_poll = time.monotonic()
                await self._step(polled)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the worker must survive; no resource content is logged
                log.error("subscription worker step failed: %s", type(error).__name__)
                await asyncio.sleep(self.poll_seconds)

    def _sleep_seconds(self) -> float:
        soonest = min(self._wake_at.values(), default=None)
        until_poll = self.poll_seconds
        if soonest is not None:
            until_poll = min(until_poll, max(0.0, soonest - time.monotonic()))
        return max(until_poll, 0.005)

    async def _step(self, polled: bool) -> None:
        changed = self.store.take_changed_types()
        if polled or "Subscription" in changed or time.monotonic() - self._book_at > BOOK_REFRESH_SECONDS:
            before = {k: v.version for k, v in self.book.entries.items()}
            await self.book.refresh()
            self._book_at = time.monotonic()
            self._dirty |= {k for k, v in self.book.entries.items() if before.get(k) != v.version}
        if await self._hold(GENERATE_LEASE):
            while True:
                count, touched = await self.generator.run_once(self.book)
                self._dirty |= touched
                if count < BATCH:
                    break
            if time.monotonic() - self._swept >= self.sweep_seconds and \
                    self.generator.overdue_subscribers(self.book.entries):
                self._swept = time.monotonic()
                self._dirty |= await self._sweep_overdue()
        now = time.monotonic()
        due = {k for k, at in self._wake_at.items() if at <= now}
        targets = set(self.book.entries) if polled else self._dirty | due
        self._dirty = set()
        for subscription_id in targets:
            self._wake_at.pop(subscription_id, None)
            entry = self.book.entries.get(subscription_id)
            if entry is not None and entry.status in ("requested", "active"):
                self._spawn(entry.id)

    async def _sweep_overdue(self) -> set[str]:
        """Announce open obligations whose due date (plan-local) has passed, page by page."""
        rules = self.engine.rules
        today = Deadlines(rules).local_date(self.engine.clock())
        params = [("_profile", extension_url(rules, "clr-notice-obligation")), ("status", "requested"),
                  ("due-date", f"lt{today.isoformat()}"), ("_count", "500")]
        touched: set[str] = set()
        async for page in self.engine.iter_pages("Task", params):
            touched |= await self.generator.announce_overdue(self.book.entries, page.matches, time.time_ns() // 1000)
        return touched

    def _spawn(self, subscription_id: str) -> None:
        running = self._inflight.get(subscription_id)
        if running is not None and not running.done():
            self._dirty.add(subscription_id)  # look again once it finishes
            return
        task = asyncio.create_task(self._deliver(subscription_id), name=f"deliver {subscription_id}")
        self._inflight[subscription_id] = task
        task.add_done_callback(lambda _: self.store.committed.set())

    async def _deliver(self, subscription_id: str) -> None:
        async with self._slots:
            try:
                if not await self._hold(f"subscriptions/deliver/{subscription_id}"):
                    return
                while True:
                    entry = self.book.entries.get(subscription_id)
                    if entry is None:
                        return
                    outcome = await self.deliverer.step(entry)
                    if outcome is not Outcome.SENT:
                        break
                    if entry.status == "requested":
                        await self.book.refresh()  # the handshake made it active
                await self._schedule(subscription_id)
            except Exception as error:  # e.g. the store failed; the next poll tries again. No content is logged.
                log.error("subscription delivery step failed: %s", type(error).__name__,
                          extra={"subscription": subscription_id})

    async def _schedule(self, subscription_id: str) -> None:
        """Remember when a retry or heartbeat of this subscription falls due."""
        entry = self.book.entries.get(subscription_id)
        if entry is None:
            return
        record = await self.store.get_record(records.DELIVERY, subscription_id)
        due_us = self.deliverer.next_due_us(entry, DeliveryState.from_doc(record.doc) if record else DeliveryState())
        if due_us is not None:
            self._wake_at[subscription_id] = time.monotonic() + max(0.0, due_us / 1e6 - time.time())

    async def _hold(self, name: str) -> bool:
        """Take or keep the named lease (renewed when half of it is gone)."""
        now = time.monotonic()
        if self._leases.get(name, 0.0) - now > self.lease_seconds / 2:
            return True
        if await self.store.acquire_lease(name, self.owner, self.lease_seconds):
            self._leases[name] = now + self.lease_seconds
            return True
        self._leases.pop(name, None)
        return False

    async def _visible(self, organization: str, resource_type: str, resource_id: str) -> bool:
        caller = TokenCaller("subscription", organization, Role.SERVICING_PROVIDER, ScopeSet.from_strings(
            ["system/*.rs"]))
        scoped = self.engine.with_access(OrganizationPolicy(caller, self.engine.registry))
        return await scoped.is_visible(resource_type, resource_id)

    async def _set_status(self, subscription_id: str, status: str, error: str | None) -> None:
        """Record the server's status change on the Subscription resource (with history)."""
        for _ in range(5):
            try:
                current = await self.engine.read("Subscription", subscription_id)
            except FhirError:
                return
            body = orjson.loads(current.body or b"{}")
            if body.get("status") == status and body.get("error") == error:
                return
            body["status"] = status
            if error:
                body["error"] = error
            else:
                body.pop("error", None)
            try:
                await self.engine.for_server_writes().update("Subscription", subscription_id, body,
                                                             if_match=current.version)
                await self.book.refresh()
                return
            except FhirError as failure:
                if failure.status != 412:
                    log.error("subscription status not recorded: %s", failure.status)
                    return
