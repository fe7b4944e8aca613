"""Turning committed changes (the store's outbox, written in the same transaction as each change) into
numbered per-subscription events.

One process at a time generates (it holds the ``subscriptions/generate`` lease). For each outbox entry after
the cursor it finds the subscriptions whose topic fires and whose filters accept the resource (the version
written, or the deleted one's last version), checks that the subscriber may see it, and appends an event.
The events, the advanced counters and the advanced cursor are written in one atomic record write, so a crash
repeats a batch entirely or not at all and event numbers never skip or repeat. A subscription counts only
changes committed after it was created, and each change is matched against the Subscriptions as of that
change's place in the outbox (a Subscription's own outbox entry updates the book before later changes).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import ChangeOp, OutboxEvent, RecordWrite, Store, StoredResource
from fhir_clr.store.query import IndexEntries
from fhir_clr.subscriptions import state as records
from fhir_clr.subscriptions.book import BookEntry, SubscriptionBook
from fhir_clr.subscriptions.notifications import Event
from fhir_clr.subscriptions.state import Counter

BATCH = 500
OVERDUE_EVENT = "obligation-overdue"
LIVE_STATUSES = frozenset({"requested", "active", "error"})
"""Statuses that keep counting events (an ``error`` subscription keeps them for when it is re-activated)."""

Visibility = Callable[[str, str, str], Awaitable[bool]]
"""``(subscriber Organization reference, resource type, id)`` -> may that organization see the resource."""


class EventGenerator:
    """Reads the outbox from the stored cursor and writes events."""

    def __init__(self, store: Store, registry: SearchParamRegistry, visible: Visibility,
                 instant: Callable[[int], str]) -> None:
        self.store = store
        self.registry = registry
        self.visible = visible
        self.instant = instant

    async def run_once(self, book: SubscriptionBook) -> tuple[int, set[str]]:
        """Process one batch of the outbox: the number of outbox entries consumed (0: caught up) and the
        subscriptions that got new events."""
        cursor = await self.store.get_record(records.CURSOR, records.EVENTS_CURSOR)
        after = int(cursor.doc["seq"]) if cursor else 0
        changes = await self.store.outbox_after(after, BATCH)
        if not changes:
            return 0, set()
        states = {r.key: r for r in await self.store.list_records(records.COUNTER, limit=100_000)}
        counters = {key: Counter.from_doc(r.doc) for key, r in states.items()}
        touched: set[str] = set()
        writes: list[RecordWrite] = []
        for change in changes:
            if change.resource_type == "Subscription":
                book.apply(change.resource_id, await self.store.read_version(
                    "Subscription", change.resource_id, change.version))
                self._subscription_changed(change, counters, touched)
                continue
            for entry, event_fields in await self._matches(change, book.entries, counters):
                counter = counters[entry.id]
                counter.events += 1
                touched.add(entry.id)
                event = Event(counter.events, self.instant(change.last_updated_us), *event_fields)
                writes.append(RecordWrite(records.EVENT, records.event_key(entry.id, counter.events), event.as_doc(),
                                          expected_rev=0))
        writes += [RecordWrite(records.COUNTER, key, counters[key].as_doc(),
                               expected_rev=states[key].rev if key in states else 0) for key in sorted(touched)]
        writes.append(RecordWrite(records.CURSOR, records.EVENTS_CURSOR, {"seq": changes[-1].seq},
                                  expected_rev=cursor.rev if cursor else 0))
        await self.store.write_records(writes)
        return len(changes), touched

    def overdue_subscribers(self, book: dict[str, BookEntry]) -> list[BookEntry]:
        """Live subscriptions to a topic raised by overdue obligations."""
        return [e for e in book.values() if e.spec is not None and e.status in LIVE_STATUSES
                and OVERDUE_EVENT in e.spec.topic.event_codes]

    async def announce_overdue(self, book: dict[str, BookEntry], overdue: list[StoredResource], now_us: int
                               ) -> set[str]:
        """Events for the ``overdue`` obligations not announced before (each is announced once, atomically
        with its events); the subscriptions that got events."""
        candidates = self.overdue_subscribers(book)
        fresh = [s for s in overdue if s.body is not None
                 and await self.store.get_record(records.OVERDUE, s.resource_id) is None]
        if not candidates or not fresh:
            return set()
        states = {r.key: r for r in await self.store.list_records(records.COUNTER, limit=100_000)}
        counters = {key: Counter.from_doc(r.doc) for key, r in states.items()}
        touched: set[str] = set()
        writes: list[RecordWrite] = []
        for stored in fresh:
            body = orjson.loads(stored.body or b"{}")
            index = self.registry.extract(body)
            for entry in candidates:
                spec = entry.spec
                assert spec is not None
                if entry.id not in counters or not spec.matches("Task", body, index) or (
                        entry.subscriber and not await self.visible(entry.subscriber, "Task", stored.resource_id)):
                    continue
                counter = counters[entry.id]
                counter.events += 1
                touched.add(entry.id)
                event = Event(counter.events, self.instant(now_us), "Task", stored.resource_id, stored.version, "event")
                writes.append(RecordWrite(records.EVENT, records.event_key(entry.id, counter.events), event.as_doc(),
                                          expected_rev=0))
            writes.append(RecordWrite(records.OVERDUE, stored.resource_id, {"at_us": now_us}, expected_rev=0))
        writes += [RecordWrite(records.COUNTER, key, counters[key].as_doc(), expected_rev=states[key].rev)
                   for key in sorted(touched)]
        await self.store.write_records(writes)
        return touched

    @staticmethod
    def _subscription_changed(change: OutboxEvent, counters: dict[str, Counter], touched: set[str]) -> None:
        if change.op is ChangeOp.CREATE and change.resource_id not in counters:
            counters[change.resource_id] = Counter(start_seq=change.seq)
            touched.add(change.resource_id)

    async def _matches(self, change: OutboxEvent, book: dict[str, BookEntry], counters: dict[str, Counter]
                       ) -> list[tuple[BookEntry, tuple[str, str, int, str]]]:
        candidates = [e for e in book.values() if e.spec is not None and e.status in LIVE_STATUSES
                      and e.id in counters and counters[e.id].start_seq < change.seq
                      and change.resource_type in e.spec.topic.focus_types()]
        if not candidates:
            return []
        current, previous = await self._versions(change)
        interaction = change.op.value
        subject = current if current is not None else previous
        indexes: dict[int, IndexEntries] = {}

        def index_of(resource: dict[str, Any]) -> IndexEntries:
            if id(resource) not in indexes:
                indexes[id(resource)] = self.registry.extract(resource)
            return indexes[id(resource)]

        found = []
        for entry in candidates:
            spec = entry.spec
            assert spec is not None
            if not spec.topic.fires(change.resource_type, interaction, previous, current, index_of):
                continue
            if subject is None or not spec.matches(change.resource_type, subject, index_of(subject)):
                continue
            subscriber = entry.subscriber
            if subscriber and not await self.visible(subscriber, change.resource_type, change.resource_id):
                continue
            found.append((entry, (change.resource_type, change.resource_id, change.version, interaction)))
        return found

    async def _versions(self, change: OutboxEvent) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The version written (None for a delete) and the one it replaced (None for a create)."""
        current = previous = None
        if change.op is not ChangeOp.DELETE:
            stored = await self.store.read_version(change.resource_type, change.resource_id, change.version)
            current = orjson.loads(stored.body) if stored is not None and stored.body else None
        if change.version > 1:
            stored = await self.store.read_version(change.resource_type, change.resource_id, change.version - 1)
            previous = orjson.loads(stored.body) if stored is not None and stored.body else None
        return current, previous
