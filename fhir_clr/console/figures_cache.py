"""Computed console figures kept for a while, per caller and question: the compliance page reads every referral
of its months, which takes seconds on a large store. A fresh entry is served as is; a stale one is served while
it is recomputed in the background; a missing one (or ``fresh``) is computed before answering. One computation
per key at a time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_ENTRIES = 256


@dataclass(slots=True)
class Computed:
    """A computed value and when it was computed."""

    value: Any
    at: datetime
    monotonic: float


class FiguresCache:
    """Values by key, recomputed after ``ttl_seconds``."""

    def __init__(self, ttl_seconds: float) -> None:
        self.ttl = ttl_seconds
        self._entries: dict[Hashable, Computed] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._refreshing: set[asyncio.Task[None]] = set()

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]], *, fresh: bool = False) -> Computed:
        """The value of ``key`` (see the module docstring for when ``compute`` runs)."""
        entry = self._entries.get(key)
        if entry is not None and not fresh:
            if time.monotonic() - entry.monotonic > self.ttl and not self._lock(key).locked():
                task = asyncio.get_running_loop().create_task(self._compute(key, compute))
                self._refreshing.add(task)
                task.add_done_callback(self._refreshing.discard)
            return entry
        async with self._lock(key):
            entry = self._entries.get(key)
            if entry is None or fresh:
                entry = await self._store(key, compute)
            return entry

    def _lock(self, key: Hashable) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _compute(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> None:
        async with self._lock(key):
            await self._store(key, compute)

    async def _store(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Computed:
        entry = Computed(await compute(), datetime.now(UTC), time.monotonic())
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry
        return entry
