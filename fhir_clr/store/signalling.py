"""A store wrapper that announces commits, so background workers (the subscription pipeline, the notice
worker) wake at once instead of polling. Every other call goes straight to the wrapped store (:class:`StoreWrapper`)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fhir_clr.store.port import Change, StoredResource
from fhir_clr.store.wrapper import InnerStore, StoreWrapper


class SignallingStore(StoreWrapper[InnerStore]):
    """Wraps a store; ``committed`` (the subscription worker's) and every event handed out by
    :meth:`listener` are set after every successful commit, and ``changed_types`` collects the resource types
    written since the last :meth:`take_changed_types`."""

    def __init__(self, inner: InnerStore) -> None:
        super().__init__(inner)
        self.committed = asyncio.Event()
        self.changed_types: set[str] = set()
        self._listeners: list[asyncio.Event] = []

    def listener(self) -> asyncio.Event:
        """A new event set after every successful commit, for one more background worker to wait on (the
        worker clears its own event; the others are untouched)."""
        event = asyncio.Event()
        self._listeners.append(event)
        return event

    async def commit(self, changes: Sequence[Change]) -> list[StoredResource]:
        """Commit through the wrapped store, then wake the listeners."""
        stored = await self._inner.commit(changes)
        self.changed_types.update(c.resource_type for c in changes)
        self.committed.set()
        for event in self._listeners:
            event.set()
        return stored

    def take_changed_types(self) -> set[str]:
        """The resource types committed since the previous call."""
        taken, self.changed_types = self.changed_types, set()
        return taken
