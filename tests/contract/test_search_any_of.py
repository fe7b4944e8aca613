"""Contract: ``AnyOf`` (OR of criteria, used by the access policy) over conditions, chains and ``_has``."""

from __future__ import annotations

from fhir_clr.store.port import Store
from fhir_clr.store.query import (
    AnyOf,
    ChainCondition,
    Condition,
    HasCondition,
    IndexEntries,
    ParamType,
    Query,
    ReferenceValue,
    TokenValue,
)

from .helpers import id_set, put


def ref(param: str, value: str) -> Condition:
    return Condition(param, ParamType.REFERENCE, (ReferenceValue(value),))


async def test_any_of_conditions_chains_and_has(store: Store) -> None:
    await put(store, "Patient", "p1")
    await put(store, "Patient", "p2")
    await put(store, "Patient", "p3")
    await put(store, "Task", "t1", IndexEntries(references=[("owner", "Organization/a"), ("patient", "Patient/p1")]))
    await put(store, "Task", "t2", IndexEntries(references=[("requester", "Organization/a"),
                                                             ("patient", "Patient/p2")]))
    await put(store, "Task", "t3", IndexEntries(references=[("owner", "Organization/b"), ("patient", "Patient/p3")],
                                                tokens=[("status", None, "ready")]))
    party = AnyOf((ref("owner", "Organization/a"), ref("requester", "Organization/a")))
    assert await id_set(store, "Task", party) == {"t1", "t2"}
    assert await id_set(store, "Task", party, Condition("_id", ParamType.TOKEN, (TokenValue(None, "t2"),))) == {"t2"}
    linked = AnyOf((HasCondition("Task", "patient", ref("owner", "Organization/a")),
                    HasCondition("Task", "patient", ref("requester", "Organization/a"))))
    assert await id_set(store, "Patient", linked) == {"p1", "p2"}
    mixed = AnyOf((ref("owner", "Organization/b"),
                   ChainCondition("patient", "Patient", Condition("_id", ParamType.TOKEN, (TokenValue(None, "p1"),)))))
    assert await id_set(store, "Task", mixed) == {"t1", "t3"}
    assert await id_set(store, "Task", AnyOf(())) == set()
    assert await store.count(Query("Patient", [linked])) == 2


async def test_any_of_created_by_tag_or_link(store: Store) -> None:
    """The access policy's shape for a provider: created by its organization (a ``_tag`` token) or linked to one
    of its referrals."""
    created_by = "https://fhir-clr.org/CodeSystem/created-by"
    await put(store, "Patient", "own", IndexEntries(tokens=[("_tag", created_by, "Organization/a")]))
    await put(store, "Patient", "other", IndexEntries(tokens=[("_tag", created_by, "Organization/b")]))
    await put(store, "Patient", "linked")
    await put(store, "Patient", "plan")
    await put(store, "Task", "t1", IndexEntries(references=[("owner", "Organization/a"),
                                                             ("patient", "Patient/linked")]))
    visible = AnyOf((Condition("_tag", ParamType.TOKEN, (TokenValue(created_by, "Organization/a"),)),
                     HasCondition("Task", "patient", ref("owner", "Organization/a"))))
    assert await id_set(store, "Patient", visible) == {"own", "linked"}
    ids = Condition("_id", ParamType.TOKEN, (TokenValue(None, "own"), TokenValue(None, "plan")))
    assert await id_set(store, "Patient", visible, ids) == {"own"}
