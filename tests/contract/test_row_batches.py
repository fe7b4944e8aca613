"""Row batches (the import write path) on every store adapter: groups commit together, fail alone, a group
touching what an earlier group of the batch touched sees that group's result, a batch's commit can be awaited
later, and the batch's prefetched obligations are those the per-Task lookup finds."""

from __future__ import annotations

from typing import Any

from fhir_clr.clr.obligations import OBLIGATION_PROFILE
from fhir_clr.clr.rules.context import ObligationCache
from fhir_clr.engine.bundles import BundleProcessor
from fhir_clr.engine.row_batches import RowBatchWriter
from fhir_clr.engine.validation_pool import MIN_BATCH, ValidationPool
from fhir_clr.store.port import Change, ChangeOp, Store
from tests.bundled import clr_engine, clr_rules_of, plan_planning

CIN = "http://fhir-clr.org/fhir/sid/medi-cal-cin"


def member_row(cin: str, family: str, **extra: Any) -> dict[str, Any]:
    """A transaction creating (or keeping) the Member with ``cin``."""
    patient = {"resourceType": "Patient", "identifier": [{"system": CIN, "value": cin}],
               "name": [{"family": family}], **extra}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient, "request": {"method": "POST", "url": "Patient",
                                          "ifNoneExist": f"identifier={CIN}|{cin}"}}]}


def writer(store: Store) -> RowBatchWriter:
    engine = clr_engine(store)
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


async def test_start_plans_now_and_commits_when_awaited(store: Store) -> None:
    """A caller can plan the next groups while this commit runs: nothing is written before it is awaited."""
    rows = writer(store)
    [created] = await rows.write([(1, member_row("30000001A", "Before"))])
    patient_id = created.written[0].resource_id
    renamed = {"resourceType": "Patient", "id": patient_id, "identifier": [{"system": CIN, "value": "30000001A"}],
               "name": [{"family": "After"}]}
    finish = await rows.start([(1, {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": renamed, "request": {"method": "PUT", "url": f"Patient/{patient_id}"}}]})])
    current = await store.read("Patient", patient_id)
    assert current is not None and current.version == 1
    [result] = await finish()
    assert result.outcome == "applied" and result.written[0].version == 2
    current = await store.read("Patient", patient_id)
    assert current is not None and current.version == 2 and b'"After"' in (current.body or b"")


async def test_prefetched_obligations_match_the_lookup_of_each_task(store: Store) -> None:
    """The batch's one search for open obligations (the CLR rule's ``prefetch``, asked through the engine) finds
    what the status clocks' per-Task lookup finds."""
    engine = clr_engine(store)

    def obligation(number: int, task: str, status: str) -> Change:
        body = {"resourceType": "Task", "meta": {"profile": [OBLIGATION_PROFILE]}, "status": status,
                "intent": "order", "partOf": [{"reference": task}]}
        return engine.planner.change(ChangeOp.CREATE, "Task", f"ob{number}", 0,
                                     engine.planner.prepare("Task", f"ob{number}", body, trusted=True))

    await store.commit([obligation(1, "Task/a", "requested"), obligation(2, "Task/a", "completed"),
                        obligation(3, "Task/b", "requested"), obligation(4, "Task/c", "requested")])
    rules = clr_rules_of(engine)
    cache = (await engine.prefetch(["Task/a", "Task/b", "Task/none", "ServiceRequest/x"])).of(rules)
    assert isinstance(cache, ObligationCache)
    assert {task: [o.stored.resource_id for o in found] for task, found in cache.by_task.items()} == {
        "Task/a": ["ob1"], "Task/b": ["ob3"], "Task/none": []}
    for task in ("Task/a", "Task/b"):
        assert [o.stored for o in cache.by_task[task]] == [o.stored for o in await rules.context.open_obligations(
            plan_planning(), part_of=task)]


async def test_validation_in_the_worker_process_gives_the_in_process_results(store: Store) -> None:
    """With the validation pool, a batch's PUT resources are validated in its worker process while they are
    planned: the valid ones are written, and the invalid ones get the error they get without the pool."""
    pool = ValidationPool()
    try:
        assert await pool.started()
        rows = [(n, member_put(n, gender="planet" if n in (7, 60) else "female")) for n in range(MIN_BATCH + 20)]
        pooled = await RowBatchWriter(BundleProcessor(clr_engine(store), max_entries=100), validation=pool
                                      ).write(rows)
        assert [r.outcome for r in pooled] == ["rejected" if n in (7, 60) else "applied" for n, _ in rows]
        assert (await store.read("Patient", "member-8")) is not None
        assert await store.read("Patient", "member-7") is None
        again = rows[:10]
        plain = await writer(store).write(again)
        assert [r.outcome for r in plain] == ["rejected" if n == 7 else "unchanged" for n, _ in again]
        errors = [r.error for r in (pooled[7], plain[7])]
        assert errors[0] is not None and errors[1] is not None
        assert (errors[0].status, errors[0].issues) == (errors[1].status, errors[1].issues)
    finally:
        pool.close()


def member_put(number: int, **extra: Any) -> dict[str, Any]:
    """A transaction writing the Member ``member-<number>`` by id."""
    patient = {"resourceType": "Patient", "id": f"member-{number}",
               "identifier": [{"system": CIN, "value": f"{number:08d}A"}], **extra}
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": patient, "request": {"method": "PUT", "url": f"Patient/member-{number}"}}]}


async def test_the_batch_reads_ahead_the_current_versions_it_updates(store: Store) -> None:
    """``Engine.prefetch`` reads the current versions of the resources a batch updates in one read; an update
    planned from a version that is no longer current is re-planned, never written over the newer one."""
    engine = clr_engine(store)
    rows = RowBatchWriter(BundleProcessor(engine, max_entries=100))
    await rows.write([(1, member_put(1, gender="female"))])
    prefetched = await engine.prefetch(["Patient/member-1", "Patient/absent", "Task"])
    assert [(k, s.version) for k, s in prefetched.current.items()] == [(("Patient", "member-1"), 1)]
    stale = await rows.start([(1, member_put(1, gender="male"))])
    await rows.write([(1, member_put(1, gender="other"))])  # commits first: the planned update is stale
    [result] = await stale()
    assert result.outcome == "applied" and result.written[0].version == 3
    current = await store.read("Patient", "member-1")
    assert current is not None and current.version == 3 and b'"male"' in (current.body or b"")
