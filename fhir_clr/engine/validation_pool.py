"""R4 model validation in a worker process, for large batches of row writes.

The ``fhir.resources`` model check is the largest single cost of planning an import row (about a third of it)
and is pure Python, so on the event loop's thread it holds the GIL that the store's writer thread needs too.
:class:`ValidationPool` runs that check for a batch in one worker process while the event loop plans the same
batch; the batch's writer applies the verdicts before anything commits (see
:class:`fhir_clr.engine.row_batches.RowBatchWriter`). The worker answers only valid or not: a resource it finds
invalid is planned again in-process with the ordinary validation, which gives the row exactly the error it
always had.

The worker process is started on first use (``spawn``: a fresh interpreter, no copy of this one's threads or
connections) and reused for the life of the process; until it has answered once, batches are validated
in-process, so nothing waits for it to start.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.validate import validate_resource

MIN_BATCH = 100
"""Fewer resources than this are validated in-process: shipping them costs more than it saves."""


def _valid_all(resources: list[tuple[str, dict[str, Any]]]) -> list[bool]:
    """In the worker: whether each ``(type, resource)`` passes :func:`validate_resource`."""
    verdicts = []
    for resource_type, resource in resources:
        try:
            validate_resource(resource, resource_type)
        except FhirError:
            verdicts.append(False)
        else:
            verdicts.append(True)
    return verdicts


def _ready() -> bool:
    """In the worker: the answer to the warm-up call (the worker has imported the validator)."""
    return True


class ValidationPool:
    """One worker process validating batches of resources; :meth:`check` hands back their verdicts."""

    def __init__(self) -> None:
        self._executor: ProcessPoolExecutor | None = None
        self._warm: Future[bool] | None = None

    def check(self, resources: list[tuple[str, dict[str, Any]]]) -> asyncio.Future[list[bool]] | None:
        """Start validating ``resources`` (``(type, resource)``) in the worker; the future of one verdict each
        (True: valid), or None when the caller should validate in-process (a small batch, or the worker not
        started yet: this call starts it)."""
        if len(resources) < MIN_BATCH:
            return None
        warm = self._start()
        if not warm.done() or warm.exception() is not None:
            return None
        assert self._executor is not None
        return asyncio.wrap_future(self._executor.submit(_valid_all, resources))

    async def started(self) -> bool:
        """Start the worker (if not yet) and wait until it answers; False when it cannot run."""
        try:
            return await asyncio.wrap_future(self._start())
        except Exception:  # the process could not start: batches are validated in-process
            return False

    def worker_pid(self) -> int | None:
        """The worker process's id, when it runs (for measuring its CPU time)."""
        return next(iter(self._executor._processes), None) if self._executor is not None else None

    def _start(self) -> Future[bool]:
        """The warm-up call of the worker process, started now if it has not been."""
        if self._executor is None or self._warm is None:
            self._executor = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self._warm = self._executor.submit(_ready)
        return self._warm

    def close(self) -> None:
        """Stop the worker process (if started); later calls start a new one."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self._executor = self._warm = None


_SHARED = ValidationPool()


def shared_pool() -> ValidationPool:
    """The process's validation pool, shared by every import (one worker process however many run)."""
    return _SHARED
