"""The Subscriptions this server serves, read from the store and kept current by a cheap re-read (a server
rarely has more than a few hundred), each with its channel parsed once per version."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_clr.errors import FhirError
from fhir_clr.store.port import Store, StoredResource
from fhir_clr.store.query import Query
from fhir_clr.subscriptions.channel import SUBSCRIBER_URL, ChannelReader, ChannelSpec

log = logging.getLogger(__name__)
PAGE = 1000


@dataclass(frozen=True, slots=True)
class BookEntry:
    """One Subscription as of its current version."""

    id: str
    version: int
    resource: dict[str, Any]
    spec: ChannelSpec | None
    """None when the stored Subscription can no longer be served (e.g. its topic was removed)."""

    @property
    def status(self) -> str:
        """The Subscription's status element."""
        return str(self.resource.get("status") or "")

    @property
    def subscriber(self) -> str | None:
        """The Organization that created the Subscription when it is not the plan (events are limited to what
        it may see); None for the plan's own subscriptions."""
        for extension in self.resource.get("extension") or []:
            if extension.get("url") == SUBSCRIBER_URL:
                return (extension.get("valueReference") or {}).get("reference")
        return None


class SubscriptionBook:
    """Current Subscriptions by id."""

    def __init__(self, store: Store, reader: ChannelReader) -> None:
        self.store = store
        self.reader = reader
        self.entries: dict[str, BookEntry] = {}

    async def refresh(self) -> dict[str, BookEntry]:
        """Re-read every Subscription; parse only new versions. Returns the entries by id."""
        seen: dict[str, BookEntry] = {}
        token: str | None = None
        while True:
            page = await self.store.search(Query("Subscription", count=PAGE, page_token=token))
            for stored in page.resources:
                known = self.entries.get(stored.resource_id)
                if known is not None and known.version == stored.version:
                    seen[known.id] = known
                elif stored.body is not None:
                    seen[stored.resource_id] = self._entry(stored.resource_id, stored.version,
                                                           orjson.loads(stored.body))
            token = page.next_token
            if not token:
                break
        self.entries = seen
        return seen

    def apply(self, subscription_id: str, stored: StoredResource | None) -> None:
        """Take in one version of a Subscription (None or a delete drops it), so that the event generator sees
        each Subscription as of its own position in the outbox."""
        if stored is None or stored.deleted or stored.body is None:
            self.entries.pop(subscription_id, None)
            return
        known = self.entries.get(subscription_id)
        if known is None or known.version < stored.version:
            self.entries[subscription_id] = self._entry(subscription_id, stored.version, orjson.loads(stored.body))

    def _entry(self, subscription_id: str, version: int, resource: dict[str, Any]) -> BookEntry:
        try:
            spec = self.reader.read(resource, check_endpoint=False)
        except FhirError as error:
            log.warning("subscription cannot be served", extra={"subscription": subscription_id,
                                                                "reason": str(error)})
            spec = None
        return BookEntry(subscription_id, version, resource, spec)
