"""Contract: create/read/update/delete, versions, CAS, atomic commits, match keys, lastUpdated, durability."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import orjson
import pytest

from fhir_clr.store.port import ChangeOp, HistoryFilter, MatchKeyTaken, Store, VersionConflict
from fhir_clr.store.query import (
    Condition,
    IndexEntries,
    ParamType,
    Prefix,
    RangeValue,
    ReferenceValue,
    TokenValue,
)

from .conftest import StoreFactory
from .helpers import change, deletion, id_set, put, remove


async def test_create_read_update_delete(store: Store) -> None:
    assert await store.read("Patient", "p1") is None
    created = await put(store, "Patient", "p1", body={"active": True, "meta": {"versionId": "99", "tag": []}})
    assert (created.version, created.op, created.deleted) == (1, ChangeOp.CREATE, False)
    body = orjson.loads(created.body or b"")
    assert body["meta"] == {"versionId": "1", "lastUpdated": created.last_updated, "tag": []}
    assert body["active"] is True
    assert await store.read("Patient", "p1") == created

    updated = await put(store, "Patient", "p1", body={"active": False})
    assert (updated.version, updated.op) == (2, ChangeOp.UPDATE)
    assert orjson.loads(updated.body or b"")["meta"]["versionId"] == "2"

    tombstone = await remove(store, "Patient", "p1")
    assert (tombstone.version, tombstone.op, tombstone.deleted, tombstone.body) == (3, ChangeOp.DELETE, True, None)
    current = await store.read("Patient", "p1")
    assert current is not None and current.deleted and current.version == 3 and current.body is None

    recreated = await put(store, "Patient", "p1", body={"active": True})
    assert recreated.version == 4 and not recreated.deleted


async def test_bodies_are_stored_byte_for_byte(store: Store) -> None:
    """Escapes, non-ASCII text and control characters survive a write unchanged, in the current version and in
    history (the SQLite store passes bodies to the database inside JSON)."""
    text = 'quote " backslash \\ tab \t newline \n nul \u0000 é 名前 🎉 \u2028 </script>'
    created = await put(store, "Patient", "p1", body={"text": {"status": "generated", "div": text}})
    assert orjson.loads(created.body or b"")["text"]["div"] == text
    updated = await put(store, "Patient", "p1", body={"name": [{"family": text}]})
    for stored in (await store.read("Patient", "p1"), await store.read_version("Patient", "p1", 1),
                   await store.read_version("Patient", "p1", 2)):
        assert stored is not None and isinstance(stored.body, bytes)
    assert (await store.read("Patient", "p1")).body == updated.body  # type: ignore[union-attr]
    assert (await store.read_version("Patient", "p1", 1)).body == created.body  # type: ignore[union-attr]


async def test_read_version_keeps_every_version(store: Store) -> None:
    first = await put(store, "Patient", "p1", body={"gender": "female"})
    await put(store, "Patient", "p1", body={"gender": "male"})
    await remove(store, "Patient", "p1")
    assert await store.read_version("Patient", "p1", 1) == first
    v2 = await store.read_version("Patient", "p1", 2)
    assert v2 is not None and orjson.loads(v2.body or b"")["gender"] == "male"
    v3 = await store.read_version("Patient", "p1", 3)
    assert v3 is not None and v3.deleted and v3.body is None and v3.op is ChangeOp.DELETE
    assert await store.read_version("Patient", "p1", 4) is None
    assert await store.read_version("Patient", "nope", 1) is None


async def test_stale_expected_version_conflicts(store: Store) -> None:
    await put(store, "Patient", "p1")
    with pytest.raises(VersionConflict) as info:
        await store.commit([change("Patient", "p1", 0)])
    assert (info.value.expected, info.value.actual) == (0, 1)
    with pytest.raises(VersionConflict):
        await store.commit([change("Patient", "p1", 5)])
    with pytest.raises(VersionConflict):
        await store.commit([change("Patient", "p2", 1)])
    with pytest.raises(VersionConflict):
        await store.commit([deletion("Patient", "p1", 2)])
    current = await store.read("Patient", "p1")
    assert current is not None and current.version == 1


async def test_multi_change_commit_is_atomic(store: Store) -> None:
    await put(store, "Patient", "p1")
    outbox_before = await store.outbox_after(0, 100)
    index = IndexEntries(tokens=[("status", None, "requested")])
    with pytest.raises(VersionConflict):
        await store.commit([change("Task", "t1", 0, index, keys=["k1"]), change("Patient", "p1", 0)])
    assert await store.read("Task", "t1") is None
    assert await store.outbox_after(0, 100) == outbox_before
    assert await id_set(store, "Task", Condition("status", ParamType.TOKEN, (TokenValue(None, "requested"),))) == set()
    # the key claimed by the rolled-back change is free
    await store.commit([change("Task", "t2", 0, keys=["k1"])])


async def test_commit_returns_versions_in_order(store: Store) -> None:
    await put(store, "Patient", "p1")
    stored = await store.commit([change("Patient", "p2"), change("Patient", "p1", 1), deletion("Patient", "p1", 2)])
    assert [(s.resource_id, s.version, s.op) for s in stored] == [
        ("p2", 1, ChangeOp.CREATE), ("p1", 2, ChangeOp.UPDATE), ("p1", 3, ChangeOp.DELETE)]


async def test_last_updated_strictly_increases(store: Store) -> None:
    stamps = []
    for i in range(30):
        stored = await store.commit([change("Patient", f"p{i}"), change("Patient", f"q{i}")])
        stamps.extend(s.last_updated_us for s in stored)
    assert all(a < b for a, b in itertools.pairwise(stamps))
    stored = await store.read("Patient", "q29")
    assert stored is not None
    assert stored.last_updated.endswith("Z") and len(stored.last_updated) == len("2026-11-23T01:40:00.123456Z")


async def test_match_key_claim_steal_and_release(store: Store) -> None:
    await store.commit([change("Patient", "a", keys=["Patient?identifier=x|1"])])
    with pytest.raises(MatchKeyTaken) as info:
        await store.commit([change("Patient", "b", keys=["Patient?identifier=x|1"])])
    assert (info.value.key, info.value.resource_type, info.value.resource_id) == \
        ("Patient?identifier=x|1", "Patient", "a")
    assert await store.read("Patient", "b") is None
    # the holder may re-claim its own key
    await store.commit([change("Patient", "a", 1, keys=["Patient?identifier=x|1"])])
    await store.commit([change("Patient", "b", keys=["Patient?identifier=x|1"], steal=True)])
    with pytest.raises(MatchKeyTaken) as info:
        await store.commit([change("Patient", "c", keys=["Patient?identifier=x|1"])])
    assert info.value.resource_id == "b"
    await remove(store, "Patient", "b")
    await store.commit([change("Patient", "c", keys=["Patient?identifier=x|1"])])


async def test_match_key_race_has_one_winner(store: Store) -> None:
    attempts = [store.commit([change("Patient", f"p{i}", keys=["Patient?identifier=cin|A1"])]) for i in range(20)]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, MatchKeyTaken) for r in results if isinstance(r, BaseException))
    assert len(await id_set(store, "Patient")) == 1


async def test_if_match_race_has_one_winner(store: Store) -> None:
    await put(store, "Task", "t1", body={"status": "requested"})
    attempts = [store.commit([change("Task", "t1", 1, body={"status": "accepted", "note": [{"text": str(i)}]})])
                for i in range(20)]
    results = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [r for r in results if not isinstance(r, BaseException)]
    assert len(winners) == 1
    assert all(isinstance(r, VersionConflict) for r in results if isinstance(r, BaseException))
    current = await store.read("Task", "t1")
    assert current is not None and current.version == 2 and current == winners[0][0]


async def test_index_rows_follow_the_current_version(store: Store) -> None:
    requested = Condition("status", ParamType.TOKEN, (TokenValue(None, "requested"),))
    accepted = Condition("status", ParamType.TOKEN, (TokenValue(None, "accepted"),))
    await put(store, "Task", "t1", IndexEntries(tokens=[("status", None, "requested")]))
    assert await id_set(store, "Task", requested) == {"t1"}
    await put(store, "Task", "t1", IndexEntries(tokens=[("status", None, "accepted")]))
    assert await id_set(store, "Task", requested) == set()
    assert await id_set(store, "Task", accepted) == {"t1"}
    await remove(store, "Task", "t1")
    assert await id_set(store, "Task", accepted) == set()
    assert await id_set(store, "Task") == set()



async def test_index_rows_of_many_changes_in_one_commit(store: Store) -> None:
    """Several changes of one commit each leave the index of their own (last) version; history and the outbox
    keep the changes' order."""
    def status(code: str) -> IndexEntries:
        return IndexEntries(tokens=[("status", None, code)])

    def having(code: str) -> Condition:
        return Condition("status", ParamType.TOKEN, (TokenValue(None, code),))

    await put(store, "Task", "old", status("requested"))
    await put(store, "Task", "gone", status("requested"))
    before = await store.outbox_after(0, 100)
    await store.commit([change("Task", "old", 1, status("accepted")), change("Task", "new", 0, status("draft")),
                        change("Task", "new", 1, status("ready")), deletion("Task", "gone", 1)])
    assert await id_set(store, "Task", having("requested")) == set()
    assert await id_set(store, "Task", having("accepted")) == {"old"}
    assert await id_set(store, "Task", having("draft")) == set()
    assert await id_set(store, "Task", having("ready")) == {"new"}
    events = await store.outbox_after(before[-1].seq, 100)
    assert [(e.resource_id, e.version) for e in events] == [("old", 2), ("new", 1), ("new", 2), ("gone", 2)]
    history = await store.history(HistoryFilter("Task", "new"), 10)
    assert [e.version for e in history.entries] == [2, 1]


async def test_update_keeps_drops_and_adds_index_values_of_every_kind(store: Store) -> None:
    """An update whose new values share some with the old ones (every parameter type, more resources than one
    read of current rows takes) leaves exactly the new values searchable."""
    def entries(n: int, *, later: bool) -> IndexEntries:
        shift = 1 if later else 0
        return IndexEntries(
            tokens=[("status", None, "kept"), ("code", "sys", f"c{n + shift}")],
            references=[("subject", f"Patient/p{n}")] + ([] if later else [("owner", "Organization/o1")]),
            dates=[("due", 10 * n, 10 * n + 9)] + ([("period", 5, 6)] if later else []),
            strings=[("name", f"n{n}", f"N{n}")],
            numbers=[("score", 1.5 + shift, 1.5 + shift)],
            quantities=[("dose", 2.0, 2.0, None if later else "u", "mg")],
            uris=[("_profile", "http://p")])

    count = 620
    await store.commit([change("Task", f"t{n}", 0, entries(n, later=False)) for n in range(count)])
    await store.commit([change("Task", f"t{n}", 1, entries(n, later=True)) for n in range(count)])
    every = {f"t{n}" for n in range(count)}
    assert await id_set(store, "Task", Condition("status", ParamType.TOKEN, (TokenValue(None, "kept"),))) == every
    assert await id_set(store, "Task", Condition("code", ParamType.TOKEN, (TokenValue("sys", "c0"),))) == set()
    assert await id_set(store, "Task", Condition("code", ParamType.TOKEN, (TokenValue("sys", "c1"),))) == {"t0"}
    assert await id_set(store, "Task", Condition("owner", ParamType.REFERENCE, (ReferenceValue("Organization/o1"),))
                        ) == set()
    assert await id_set(store, "Task", Condition("subject", ParamType.REFERENCE, (ReferenceValue("Patient/p7"),))
                        ) == {"t7"}
    def ranged(param: str, param_type: ParamType, lo: float, hi: float, system: str | None = None) -> Condition:
        return Condition(param, param_type, (RangeValue(Prefix.EQ, lo, hi, system, "mg" if system else None),))

    assert await id_set(store, "Task", ranged("period", ParamType.DATE, 5, 6)) == every
    assert await id_set(store, "Task", ranged("score", ParamType.NUMBER, 1.5, 1.5)) == set()
    assert await id_set(store, "Task", ranged("score", ParamType.NUMBER, 2.5, 2.5)) == every
    assert await id_set(store, "Task", ranged("dose", ParamType.QUANTITY, 2.0, 2.0, "u")) == set()
    assert await id_set(store, "Task", ranged("dose", ParamType.QUANTITY, 2.0, 2.0)) == every
    missing_owner = Condition("owner", ParamType.REFERENCE, (TokenValue(None, "true"),), "missing")
    assert await id_set(store, "Task", missing_owner) == every


async def test_read_many(store: Store) -> None:
    await store.commit([change("Patient", f"p{i}") for i in range(620)] + [change("Group", "g1")])
    await remove(store, "Patient", "p3")
    keys = [("Patient", f"p{i}") for i in range(620)] + [("Group", "g1"), ("Group", "nope"), ("Patient", "p1")]
    found = await store.read_many(keys)
    got = sorted((r.resource_type, r.resource_id) for r in found)
    assert got == sorted({k for k in keys if k not in (("Patient", "p3"), ("Group", "nope"))})
    assert all(not r.deleted and r.body for r in found)
    assert await store.read_many([]) == []


async def test_data_survives_reopen(store_factory: StoreFactory, tmp_path: Path) -> None:
    first = store_factory(tmp_path)
    await first.open()
    await first.open()  # idempotent
    written = await put(first, "Patient", "p1", IndexEntries(tokens=[("gender", None, "female")]),
                        keys=["Patient?identifier=x|1"])
    await first.close()

    second = store_factory(tmp_path)
    await second.open()
    try:
        assert await second.read("Patient", "p1") == written
        assert await id_set(second, "Patient", Condition("gender", ParamType.TOKEN, (TokenValue(None, "female"),))) \
            == {"p1"}
        with pytest.raises(MatchKeyTaken):
            await second.commit([change("Patient", "p2", keys=["Patient?identifier=x|1"])])
        later = await put(second, "Patient", "p1")
        assert later.version == 2 and later.last_updated_us > written.last_updated_us
        assert [e.resource_id for e in await second.outbox_after(0, 10)] == ["p1", "p1"]
        assert await second.ping()
    finally:
        await second.close()
