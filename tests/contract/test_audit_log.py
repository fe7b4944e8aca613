"""The audit log on every store adapter: entries appended in batches through the port, then found by each
search parameter, paged, read by id; a batch the store refuses is kept and written later."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from fhir_clr.auth.audit import AuditTrail, Interaction
from fhir_clr.auth.audit_log import AuditLog
from fhir_clr.auth.clients import Role
from fhir_clr.auth.scopes import ScopeSet
from fhir_clr.auth.tokens import Caller
from fhir_clr.errors import FhirError
from fhir_clr.store.port import RecordWrite, Store, StoreUnavailable

SCOPES = ScopeSet.from_strings(["system/*.cruds"])
PLAN = Caller("plan-app", "Organization/plan", Role.PLAN, SCOPES)
CBO = Caller("cbo-app", "Organization/cbo", Role.SERVICING_PROVIDER, SCOPES)


def _events(result: Any) -> list[dict[str, Any]]:
    return [orjson.loads(stored.body) for stored in result.matches]


async def _logged(store: Store, batch_size: int = 3) -> AuditLog:
    """Seven interactions written in batches of ``batch_size``."""
    trail = AuditTrail(store, batch_size=batch_size)
    trail.record(PLAN, Interaction("create", "Task"), "", 201)
    trail.record(CBO, Interaction("read", "Task", "t1"), "", 404)
    trail.record(CBO, Interaction("search-type", "Patient"), "family=SecretName&_count=5", 200)
    trail.record(PLAN, Interaction("read", "Task", "t1"), "_format=json", 200)
    trail.record(CBO, Interaction("update", "Task", "t2"), "", 500)
    trail.record(PLAN, Interaction("delete", "Task", "t2"), "", 204)
    trail.record(CBO, Interaction("read", "Patient", "p1"), "", 200)
    await trail.stop()
    return AuditLog(store, default_count=20, max_count=1000)


async def test_each_search_parameter_finds_its_entries(store: Store) -> None:
    log = await _logged(store)

    async def found(**params: str) -> list[tuple[str, str]]:
        events = _events(await log.search(list(params.items())))
        return [(e["agent"][0]["altId"], e["subtype"][0]["code"]) for e in events]

    everything = await found()
    assert len(everything) == 7 and everything[0] == ("plan-app", "create")
    assert await found(altid="cbo-app") == [("cbo-app", "read"), ("cbo-app", "search-type"),
                                            ("cbo-app", "update"), ("cbo-app", "read")]
    assert await found(agent="Organization/plan") == await found(agent="plan") == await found(altid="plan-app")
    assert await found(entity="Task/t1") == [("cbo-app", "read"), ("plan-app", "read")]
    assert await found(entity="Task/t1", altid="plan-app") == [("plan-app", "read")]
    assert await found(subtype="read,delete") == [("cbo-app", "read"), ("plan-app", "read"),
                                                  ("plan-app", "delete"), ("cbo-app", "read")]
    assert await found(action="D") == [("plan-app", "delete")]
    assert await found(outcome="4") == [("cbo-app", "read")]
    assert await found(outcome="8", altid="cbo-app") == [("cbo-app", "update")]
    assert await found(altid="nobody") == [] and await found(entity="Task/none") == []
    assert len(await found(date="ge2020-01-01")) == 7
    assert await found(date="lt2020-01-01") == [] and await found(date="gt2999") == []


async def test_events_hold_parameter_names_never_values(store: Store) -> None:
    log = await _logged(store)
    [search] = _events(await log.search([("subtype", "search-type")]))
    assert search["entity"] == [{"type": {"system": "http://hl7.org/fhir/resource-types", "code": "Patient"},
                                 "detail": [{"type": "parameter-names", "valueString": "_count,family"}]}]
    assert "SecretName" not in str(_events(await log.search([])))
    [missing] = _events(await log.search([("outcome", "4")]))
    assert (missing["outcomeDesc"], missing["agent"][0]["who"]["reference"]) == ("HTTP 404", "Organization/cbo")
    assert missing["entity"] == [{"what": {"reference": "Task/t1"}}]


async def test_pages_follow_one_another_without_gaps(store: Store) -> None:
    log = await _logged(store)
    for params in ([], [("altid", "cbo-app")], [("date", "ge2020")]):
        seen: list[str] = []
        token = None
        while True:
            page = await log.search([*params, ("_count", "2"), *([("_page_token", token)] if token else [])])
            assert len(page.matches) <= 2
            seen += [m.resource_id for m in page.matches]
            if page.next_token is None:
                break
            token = page.next_token
        expected = [m.resource_id for m in (await log.search([*params, ("_count", "100")])).matches]
        assert seen == expected and len(set(seen)) == len(seen) and seen


async def test_read_by_id(store: Store) -> None:
    log = await _logged(store)
    for stored in (await log.search([])).matches:
        read = await log.read(stored.resource_id)
        assert read is not None and read.body == stored.body and read.version == 1
    first = (await log.search([])).matches[0].resource_id
    for unknown in ("nope", first[:-1] + "f", first.split("-")[0] + "-00000000-0", "../Task/t1"):
        assert await log.read(unknown) is None


async def test_unsupported_parameters_and_foreign_page_tokens_are_refused(store: Store) -> None:
    log = await _logged(store)
    ignored = await log.search([("family", "x"), ("_sort", "-date"), ("altid", "plan-app")])
    assert len(ignored.matches) == 3 and ignored.self_params == [("altid", "plan-app")]
    assert [i.severity for i in ignored.issues] == ["warning"] and "_sort, family" in ignored.issues[0].message
    for params, strict in (([("family", "x")], True), ([("_count", "many")], False), ([("date", "2024-13")], False)):
        with pytest.raises(FhirError) as refused:
            await log.search(params, strict=strict)
        assert refused.value.status == 400
    page = await log.search([("altid", "cbo-app"), ("_count", "1")])
    assert page.next_token is not None
    with pytest.raises(FhirError):
        await log.search([("altid", "plan-app"), ("_page_token", page.next_token)])


class RefusingOnce:
    """A store whose first ``insert_records`` fails as an unreachable store would."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.refused = 0

    async def insert_records(self, records: Sequence[RecordWrite]) -> None:
        if not self.refused:
            self.refused += 1
            raise StoreUnavailable("down")
        await self.inner.insert_records(records)


async def test_a_refused_batch_stays_queued_and_is_written_later(store: Store) -> None:
    flaky = RefusingOnce(store)
    trail = AuditTrail(flaky, batch_size=10)  # type: ignore[arg-type]
    for n in range(4):
        trail.record(PLAN, Interaction("read", "Task", f"t{n}"), "", 200)
    assert await trail.flush() is False
    trail.record(PLAN, Interaction("read", "Task", "t4"), "", 200)
    await trail.stop()
    events = _events(await AuditLog(store, default_count=20, max_count=1000).search([]))
    assert [e["entity"][0]["what"]["reference"] for e in events] == [f"Task/t{n}" for n in range(5)]
