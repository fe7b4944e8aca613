"""Computed console figures kept for a while, per caller and question: the compliance page reads every referral
of its months and the worklist counts every group, which takes seconds on a large store.

A fresh entry is served as is; a stale one is served while it is recomputed in the background. Without an
entry (or with ``fresh``) the caller waits for the computation up to ``wait`` seconds and gets None if it is
still running; it goes on in the background and the next request finds it. One computation per key at a
time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAX_ENTRIES = 256
log = logging.getLogger("fhir_clr.figures")


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
        self._running: dict[Hashable, asyncio.Task[Computed]] = {}

    async def get(self, key: Hashable, compute: Callable[[], Awaitable[Any]], *, fresh: bool = False,
                  wait: float | None = None) -> Computed | None:
        """The value of ``key`` (see the module docstring); None when it is still being computed after
        ``wait`` seconds (never None when ``wait`` is None)."""
        entry = self._entries.get(key)
        if entry is not None and not fresh:
            if time.monotonic() - entry.monotonic > self.ttl:
                self._start(key, compute)
            return entry
        try:
            return await asyncio.wait_for(asyncio.shield(self._start(key, compute)), wait)
        except TimeoutError:
            return None

    async def stop(self) -> None:
        """Cancel the computations still running and wait for them (at shutdown, before the store closes)."""
        running = list(self._running.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def _start(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> asyncio.Task[Computed]:
        running = self._running.get(key)
        if running is None:
            running = asyncio.get_running_loop().create_task(self._store(key, compute))
            self._running[key] = running
            running.add_done_callback(lambda done: self._finished(key, done))
        return running

    def _finished(self, key: Hashable, done: asyncio.Task[Computed]) -> None:
        self._running.pop(key, None)
        if not done.cancelled() and done.exception() is not None:
            log.warning("console figures failed: %s", type(done.exception()).__name__)

    async def _store(self, key: Hashable, compute: Callable[[], Awaitable[Any]]) -> Computed:
        entry = Computed(await compute(), datetime.now(UTC), time.monotonic())
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry
        return entry
