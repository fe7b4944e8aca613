"""An engine with no write rules is a plain FHIR server on every store adapter: create, read, update, search and
transaction Bundles work on Task and ServiceRequest, and resources claiming the CLR profiles are stored as sent,
with none of the CLR behaviour (no code normalization, no workflow check, no obligations). The same writes
through an engine with the CLR rules prove the rules are what makes the difference."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fhir_clr.clr.config import DEFAULT_PROFILES_DIR
from fhir_clr.engine.bundles import BundleProcessor
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import Store
from tests.api.clr_helpers import referral_body, referral_task_body
from tests.bundled import clr_engine


def plain_engine(store: Store) -> Engine:
    """An engine with the shipped search parameters and nothing else: no reference data, no rules."""
    return Engine(store, SearchParamRegistry.from_directory(DEFAULT_PROFILES_DIR), write_rules=[])


def body(stored: Any) -> dict[str, Any]:
    assert stored is not None and stored.body is not None
    return orjson.loads(stored.body)  # type: ignore[no-any-return]


async def test_plain_engine_creates_reads_updates_and_searches_referrals_as_sent(store: Store) -> None:
    engine = plain_engine(store)
    assert engine.write_rules == [] and engine.rules == {}
    await engine.create("Patient", {"resourceType": "Patient", "id": "m1"})
    referral = (await engine.create("ServiceRequest", referral_body("Patient/m1", "Organization/mcp",
                                                                     service="not a CLR service"))).stored
    assert referral is not None
    sent = body(referral)
    assert sent["code"] == {"text": "not a CLR service"}  # no code normalization, no 422
    task_body = referral_task_body(sent, "Organization/provider")
    task = (await engine.create("Task", task_body)).stored
    assert task is not None and body(task)["businessStatus"] == {"text": "3"}
    tasks = await engine.search("Task", [])
    assert [m.resource_id for m in tasks.matches] == [task.resource_id]  # no obligation Tasks beside it
    read = await engine.read("Task", task.resource_id)
    assert read.version == 1
    moved = {**body(read), "businessStatus": {"text": "no such status"}, "status": "completed"}
    updated = (await engine.update("Task", task.resource_id, moved)).stored
    assert updated is not None and updated.version == 2 and body(updated)["status"] == "completed"
    found = await engine.search("Task", [("focus", f"ServiceRequest/{referral.resource_id}"), ("status", "completed")])
    assert [m.resource_id for m in found.matches] == [task.resource_id]
    assert [m.resource_id for m in (await engine.search("Task", [])).matches] == [task.resource_id]


async def test_plain_engine_runs_a_transaction_of_a_referral_and_its_task(store: Store) -> None:
    engine = plain_engine(store)
    referral = {**referral_body("Patient/m2", "Organization/mcp", service="anything"), "id": "r2"}
    task = referral_task_body(referral, "Organization/provider")
    task["focus"] = {"reference": "urn:uuid:00000000-0000-4000-8000-000000000002"}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000002",
         "resource": {k: v for k, v in referral.items() if k != "id"},
         "request": {"method": "POST", "url": "ServiceRequest"}},
        {"resource": task, "request": {"method": "POST", "url": "Task"}}]}
    response = orjson.loads(await BundleProcessor(engine, max_entries=10).process(bundle, ""))
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created", "201 Created"]
    created_referral, created_task = (e["resource"] for e in response["entry"])
    assert created_task["focus"] == {"reference": f"ServiceRequest/{created_referral['id']}"}
    assert created_referral["code"] == {"text": "anything"}
    assert len((await engine.search("Task", [])).matches) == 1


async def test_the_same_writes_with_the_clr_rules_are_checked_and_owe_obligations(store: Store) -> None:
    engine = clr_engine(store)
    with pytest.raises(FhirError) as refused:
        await engine.create("ServiceRequest", referral_body("Patient/m3", "Organization/mcp",
                                                            service="not a CLR service"))
    assert refused.value.status == 422
    referral = (await engine.create("ServiceRequest", referral_body("Patient/m3", "Organization/mcp"))).stored
    assert referral is not None and body(referral)["code"]["coding"][0]["code"] == "ecm"
    await engine.create("Task", referral_task_body(body(referral), "Organization/provider"))
    assert len((await engine.search("Task", [])).matches) > 1  # the referral Task and its obligations
