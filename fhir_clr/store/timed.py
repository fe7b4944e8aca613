"""A store wrapper that times every storage port call into the ``fhir_clr_store_operation_duration_seconds``
histogram and remembers whether the last write failed on the store (for the readiness probe). Attributes other
than the port's coroutines pass straight through."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fhir_clr.observability.metrics import STORE_OPERATIONS
from fhir_clr.store.port import Store, StoreUnavailable

TIMED_OPERATIONS = frozenset({"read", "read_version", "read_many", "search", "count", "history", "commit",
                              "outbox_after", "get_record", "list_records", "write_records", "insert_records",
                              "acquire_lease",
                              "release_lease", "ping"})
WRITE_OPERATIONS = frozenset({"commit", "write_records", "insert_records"})


class TimedStore:
    """Wraps ``inner``; each port coroutine call is observed under its method name."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.writes_failing = False
        """True after a write failed on the store (full disk, read-only file, lost primary) until one succeeds."""

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in TIMED_OPERATIONS:
            return attribute
        timed = _timed(attribute, STORE_OPERATIONS.labels(name), self if name in WRITE_OPERATIONS else None)
        setattr(self, name, timed)  # build the wrapper once per operation
        return timed


def _timed(call: Callable[..., Awaitable[Any]], histogram: Any,
           watched: TimedStore | None) -> Callable[..., Awaitable[Any]]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            result = await call(*args, **kwargs)
        except StoreUnavailable:
            if watched is not None:
                watched.writes_failing = True
            raise
        finally:
            histogram.observe(time.perf_counter() - started)
        if watched is not None:
            watched.writes_failing = False
        return result
    return run
