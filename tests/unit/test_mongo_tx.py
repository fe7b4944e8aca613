"""Transaction retry rules of the MongoDB store, with a fake client and session (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest
from pymongo.errors import OperationFailure

from fhir_clr.store.mongo.tx import run_transaction


def _labelled(label: str) -> OperationFailure:
    return OperationFailure("simulated", code=112, details={"errorLabels": [label]})


class FakeSession:
    """Records the transaction calls; ``commit_errors`` are raised by successive commits."""

    def __init__(self, log: list[str], commit_errors: list[Exception]) -> None:
        self.log = log
        self.commit_errors = commit_errors
        self.in_transaction = False

    async def __aenter__(self) -> FakeSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.log.append("end")

    async def start_transaction(self, **_: Any) -> None:
        self.in_transaction = True
        self.log.append("start")

    async def commit_transaction(self) -> None:
        self.log.append("commit")
        if self.commit_errors:
            raise self.commit_errors.pop(0)
        self.in_transaction = False

    async def abort_transaction(self) -> None:
        self.log.append("abort")
        self.in_transaction = False


class FakeClient:
    """Hands out FakeSessions sharing one call log."""

    def __init__(self, commit_errors: list[Exception] | None = None) -> None:
        self.log: list[str] = []
        self.commit_errors = commit_errors or []

    def start_session(self) -> FakeSession:
        return FakeSession(self.log, self.commit_errors)


async def test_transient_error_in_work_retries_the_whole_transaction() -> None:
    client = FakeClient()
    attempts: list[int] = []

    async def work(session: Any) -> str:
        attempts.append(1)
        client.log.append("work")
        if len(attempts) == 1:
            raise _labelled("TransientTransactionError")
        return "done"

    assert await run_transaction(client, work) == "done"
    assert client.log == ["start", "work", "abort", "end", "start", "work", "commit", "end"]


async def test_transient_error_at_commit_retries_the_whole_transaction() -> None:
    client = FakeClient([_labelled("TransientTransactionError")])

    async def work(session: Any) -> int:
        client.log.append("work")
        return 7

    assert await run_transaction(client, work) == 7
    assert client.log.count("work") == 2
    assert client.log.count("commit") == 2


async def test_unknown_commit_result_retries_only_the_commit() -> None:
    client = FakeClient([_labelled("UnknownTransactionCommitResult")])

    async def work(session: Any) -> int:
        client.log.append("work")
        return 1

    assert await run_transaction(client, work) == 1
    assert client.log == ["start", "work", "commit", "commit", "end"]


async def test_other_errors_abort_and_propagate() -> None:
    client = FakeClient()

    async def work(session: Any) -> None:
        raise OperationFailure("not retryable", code=2)

    with pytest.raises(OperationFailure):
        await run_transaction(client, work)
    assert client.log == ["start", "abort", "end"]


async def test_without_transactions_work_runs_without_a_session() -> None:
    seen: list[Any] = []

    async def work(session: Any) -> str:
        seen.append(session)
        return "ok"

    assert await run_transaction(FakeClient(), work, transactions=False) == "ok"
    assert seen == [None]
