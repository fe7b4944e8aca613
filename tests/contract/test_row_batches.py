"""Row batches (the import write path) on every store adapter: groups commit together, fail alone, and a group
touching what an earlier group of the batch touched sees that group's result."""

from __future__ import annotations

from typing import Any

from fhir_clr.clr.config import DEFAULT_PROFILES_DIR
from fhir_clr.engine.bundles import BundleProcessor
from fhir_clr.engine.engine import Engine
from fhir_clr.engine.row_batches import RowBatchWriter
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import Store

CIN = "http://fhir-clr.org/fhir/sid/medi-cal-cin"


def member_row(cin: str, family: str, **extra: Any) -> dict[str, Any]:
    """A transaction creating (or keeping) the Member with ``cin``."""
    patient = {"resourceType": "Patient", "identifier": [{"system": CIN, "value": cin}],
               "name": [{"family": family}], **extra}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient, "request": {"method": "POST", "url": "Patient",
                                          "ifNoneExist": f"identifier={CIN}|{cin}"}}]}


def writer(store: Store) -> RowBatchWriter:
    engine = Engine(store, SearchParamRegistry.from_directory(DEFAULT_PROFILES_DIR))
    return RowBatchWriter(BundleProcessor(engine, max_entries=100))


async def test_groups_apply_fail_alone_and_repeat_unchanged(store: Store) -> None:
    rows = [(1, member_row("10000001A", "Alpha")), (2, member_row("10000002B", "Beta", gender="planet")),
            (3, member_row("10000003C", "Gamma"))]
    results = await writer(store).write(rows)
    assert [r.outcome for r in results] == ["applied", "rejected", "applied"]
    assert results[1].error is not None and results[1].error.status in (400, 422)
    assert results[0].written[0].resource_type == "Patient"
    again = await writer(store).write(rows)
    assert [r.outcome for r in again] == ["unchanged", "rejected", "unchanged"]


async def test_a_group_touching_an_earlier_groups_key_sees_its_result(store: Store) -> None:
    rows = [(1, member_row("20000001A", "First")), (2, member_row("20000001A", "Second"))]
    results = await writer(store).write(rows)
    assert [r.outcome for r in results] == ["applied", "unchanged"]
    assert results[1].written[0].resource_id == results[0].written[0].resource_id
