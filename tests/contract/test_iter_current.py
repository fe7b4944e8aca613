"""``Store.iter_current`` on every adapter: the live current versions of one type, in creation order, in
bounded batches, within an optional ``lastUpdated`` window (the bulk export's read)."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_clr.store.port import Store
from tests.contract.helpers import put, remove


async def batches(store: Store, resource_type: str, batch: int = 2, **bounds: Any) -> list[list[dict[str, Any]]]:
    """Every batch of a scan, bodies parsed."""
    return [[orjson.loads(body) for body in bodies]
            async for bodies in store.iter_current(resource_type, batch=batch, **bounds)]


def flat_ids(found: list[list[dict[str, Any]]]) -> list[str]:
    """Resource ids of all batches, in order."""
    return [resource["id"] for bodies in found for resource in bodies]


async def test_live_current_versions_in_creation_order_and_batches(store: Store) -> None:
    for name in ("m3", "m1", "m2", "m5", "m4"):
        await put(store, "Patient", name, body={"gender": "female"})
    await put(store, "Organization", "org")
    await put(store, "Patient", "m1", body={"gender": "male"})
    await remove(store, "Patient", "m5")
    found = await batches(store, "Patient")
    assert [len(bodies) for bodies in found] == [2, 2]
    assert flat_ids(found) == ["m3", "m1", "m2", "m4"]
    updated = found[0][1]
    assert updated["gender"] == "male" and updated["meta"]["versionId"] == "2"
    assert flat_ids(await batches(store, "Patient", batch=10)) == ["m3", "m1", "m2", "m4"]
    assert await batches(store, "Encounter") == []


async def test_bodies_are_the_stored_json(store: Store) -> None:
    await put(store, "Task", "t1", body={"status": "requested", "intent": "order"})
    [[body]] = [bodies async for bodies in store.iter_current("Task")]
    stored = await store.read("Task", "t1")
    assert stored is not None and orjson.loads(body) == orjson.loads(stored.body or b"")


async def test_window_keeps_versions_written_after_since_and_up_to_until(store: Store) -> None:
    first = await put(store, "Task", "t1")
    second = await put(store, "Task", "t2")
    third = await put(store, "Task", "t3")
    await put(store, "Task", "t1", body={"status": "completed"})
    assert flat_ids(await batches(store, "Task", since_us=first.last_updated_us)) == ["t1", "t2", "t3"]
    assert flat_ids(await batches(store, "Task", since_us=second.last_updated_us)) == ["t1", "t3"]
    assert flat_ids(await batches(store, "Task", until_us=third.last_updated_us)) == ["t2", "t3"]
    window = await batches(store, "Task", since_us=first.last_updated_us, until_us=second.last_updated_us)
    assert flat_ids(window) == ["t2"]


async def test_a_scan_stopped_early_can_be_started_again(store: Store) -> None:
    for n in range(5):
        await put(store, "Goal", f"g{n}")
    scan = store.iter_current("Goal", batch=2)
    first = await anext(scan)
    await scan.aclose()
    assert len(first) == 2
    assert len(flat_ids(await batches(store, "Goal", batch=3))) == 5
