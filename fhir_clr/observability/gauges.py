"""Gauges refreshed when ``/metrics`` is scraped, at most once per ``REFRESH_SECONDS`` and in the background
(counting 100,000s of obligations takes seconds; a scrape waits ``FIRST_WAIT_SECONDS`` at most, only for the
first values): open notice obligations per worklist group, through the engine's count search, and the webhook
queue depth over all subscriptions, from the stored subscription counters and delivery states."""

from __future__ import annotations

from typing import Any

from fhir_clr.background_cache import FiguresCache
from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.deadlines import Deadlines
from fhir_clr.clr.worklist import worklist_groups
from fhir_clr.engine.engine import Engine
from fhir_clr.observability.metrics import OBLIGATIONS, WEBHOOK_QUEUE
from fhir_clr.store.port import Store
from fhir_clr.subscriptions import state as records
from fhir_clr.subscriptions.state import Counter, DeliveryState

REFRESH_SECONDS = 60.0
FIRST_WAIT_SECONDS = 3.0
OBLIGATION_GROUPS = ("overdue", "due-soon")
MAX_SUBSCRIPTIONS = 100_000


class ScrapeGauges:
    """Refreshes the scrape-time gauges of one server process."""

    def __init__(self, engine: Engine, store: Store, rules: dict[str, Any], codes: CodeLists) -> None:
        self.engine = engine
        self.store = store
        self.rules = rules
        self.codes = codes
        self.cache = FiguresCache(REFRESH_SECONDS)
        """Holds the background refresh (stopped by the app's lifespan)."""

    async def refresh(self) -> None:
        """Make sure the gauges are being kept up to date (see the module docstring)."""
        await self.cache.get("gauges", self._compute, wait=FIRST_WAIT_SECONDS)

    async def _compute(self) -> None:
        today = Deadlines(self.rules).local_date(self.engine.clock())
        for group in worklist_groups(today, self.rules, self.codes):
            if group.name in OBLIGATION_GROUPS:
                result = await self.engine.search(group.resource_type, [*group.params, ("_summary", "count")])
                OBLIGATIONS.labels(group.name).set(result.total or 0)
        counters = await self.store.list_records(records.COUNTER, limit=MAX_SUBSCRIPTIONS)
        deliveries = {r.key: DeliveryState.from_doc(r.doc).delivered
                      for r in await self.store.list_records(records.DELIVERY, limit=MAX_SUBSCRIPTIONS)}
        WEBHOOK_QUEUE.set(sum(max(0, Counter.from_doc(r.doc).events - deliveries.get(r.key, 0)) for r in counters))
