"""Run a unit of work in one MongoDB multi-document transaction, retrying the whole unit on
``TransientTransactionError`` (write conflicts, elections) and the commit alone on
``UnknownTransactionCommitResult`` — the retry rules of the MongoDB drivers' transactions specification,
written out so that the store controls back-off and can be tested with a fake session.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo.errors import DuplicateKeyError, PyMongoError
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

log = logging.getLogger(__name__)

T = TypeVar("T")
TRANSIENT = "TransientTransactionError"
UNKNOWN_COMMIT = "UnknownTransactionCommitResult"
DEFAULT_TIME_LIMIT = 30.0


class RetryWrite(Exception):
    """Raised by a unit of work whose optimistic write lost a race (a unique key appeared after it was
    read): the runner retries the unit, whose reads then see the winner."""


async def _backoff(attempt: int) -> None:
    await asyncio.sleep(random.uniform(0, min(0.1, 0.002 * 2 ** attempt)))


async def run_transaction(client: Any, work: Callable[[Any], Awaitable[T]], *, transactions: bool = True,
                          time_limit: float = DEFAULT_TIME_LIMIT) -> T:
    """Run ``work(session)`` atomically and return its result.

    With ``transactions`` False (in-process test engines without sessions) ``work(None)`` runs directly,
    still retried on ``RetryWrite``. Errors other than the retryable ones propagate after an abort.
    """
    deadline = time.monotonic() + time_limit
    attempt = 0
    while True:
        attempt += 1
        try:
            if not transactions:
                return await work(None)
            return await _attempt(client, work, deadline)
        except (RetryWrite, DuplicateKeyError) as exc:
            if time.monotonic() >= deadline:
                raise
            log.debug("retrying a write after %s", type(exc).__name__)
        except PyMongoError as exc:
            if not exc.has_error_label(TRANSIENT) or time.monotonic() >= deadline:
                raise
            log.debug("retrying a transaction after a transient error (attempt %d)", attempt)
        await _backoff(attempt)


async def _attempt(client: Any, work: Callable[[Any], Awaitable[T]], deadline: float) -> T:
    async with client.start_session() as session:
        await session.start_transaction(read_concern=ReadConcern("snapshot"),
                                        write_concern=WriteConcern("majority"))
        try:
            result = await work(session)
        except BaseException:
            if session.in_transaction:
                await session.abort_transaction()
            raise
        await _commit(session, deadline)
        return result


async def _commit(session: Any, deadline: float) -> None:
    attempt = 0
    while True:
        attempt += 1
        try:
            await session.commit_transaction()
            return
        except PyMongoError as exc:
            if exc.has_error_label(UNKNOWN_COMMIT) and time.monotonic() < deadline:
                log.debug("retrying a commit with an unknown result (attempt %d)", attempt)
                await _backoff(attempt)
                continue
            raise
