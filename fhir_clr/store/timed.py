"""A store wrapper that times every storage port call into the ``fhir_clr_store_operation_duration_seconds``
histogram. Attributes other than the port's coroutines pass straight through."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fhir_clr.observability.metrics import STORE_OPERATIONS
from fhir_clr.store.port import Store

TIMED_OPERATIONS = frozenset({"read", "read_version", "read_many", "search", "count", "history", "commit",
                              "outbox_after", "get_record", "list_records", "write_records", "acquire_lease",
                              "release_lease", "ping"})


class TimedStore:
    """Wraps ``inner``; each port coroutine call is observed under its method name."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in TIMED_OPERATIONS:
            return attribute
        timed = _timed(attribute, STORE_OPERATIONS.labels(name))
        setattr(self, name, timed)  # build the wrapper once per operation
        return timed


def _timed(call: Callable[..., Awaitable[Any]], histogram: Any) -> Callable[..., Awaitable[Any]]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            histogram.observe(time.perf_counter() - started)
    return run
