"""MongoDB store behaviour that the shared contract suite does not see: round trips per operation
(counted with a pymongo CommandListener on a real server, or the in-process engine's call log), operator
injection, forged page tokens, and leases. Runs on the server named by ``MONGODB_URI`` when set."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymongo import monitoring

from fhir_clr.search.parse import parse_search
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.mongo import MongoStore
from fhir_clr.store.mongo.filters import condition_filter
from fhir_clr.store.port import Change, ChangeOp, InvalidPageToken
from fhir_clr.store.query import Condition, ParamType, StringValue, TokenValue
from tests.mongo_engines import mongo_engine, mongo_test_store

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


class Commands(monitoring.CommandListener):
    """Records (command name, collection) of every command sent to a real server."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen.append((event.command_name, event.command.get(event.command_name)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        """Nothing to record."""

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        """Nothing to record."""


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.from_directory(PROFILES)


@pytest.fixture()
async def store_and_commands() -> AsyncIterator[tuple[MongoStore, Any]]:
    listener = Commands()
    async with mongo_test_store([listener]) as store:
        yield store, listener


@pytest.fixture()
def store(store_and_commands: tuple[MongoStore, Any]) -> MongoStore:
    return store_and_commands[0]


def finds_on(store_and_commands: tuple[MongoStore, Any], collection: str) -> list[Any]:
    """``find`` commands sent to ``collection`` so far (by either engine)."""
    store, listener = store_and_commands
    if os.environ.get("MONGODB_URI"):
        return [name for name, coll in listener.seen if name == "find" and coll == collection]
    return [c for c in store.database.calls if c[0] == collection and c[1] == "find"]


def test_engine_is_named() -> None:
    assert "MongoDB" in mongo_engine() or "mongomock" in mongo_engine()


async def create(store: MongoStore, registry: SearchParamRegistry, resource: dict[str, Any]) -> None:
    await store.commit([Change(ChangeOp.CREATE, resource["resourceType"], resource["id"], 0, resource,
                               registry.extract(resource))])


async def search_ids(store: MongoStore, registry: SearchParamRegistry, resource_type: str,
                     params: list[tuple[str, str]]) -> list[str]:
    parsed = parse_search(resource_type, params, registry, default_count=50, max_count=100)
    return [r.resource_id for r in (await store.search(parsed.query)).resources]


async def test_read_many_is_one_find_with_in(store_and_commands: tuple[MongoStore, Any],
                                             registry: SearchParamRegistry) -> None:
    store = store_and_commands[0]
    for n in range(5):
        await create(store, registry, {"resourceType": "Organization", "id": f"o{n}", "name": f"Org {n}"})
    before = len(finds_on(store_and_commands, "resources"))
    found = await store.read_many([("Organization", f"o{n}") for n in range(5)] + [("Organization", "nope")])
    assert sorted(r.resource_id for r in found) == [f"o{n}" for n in range(5)]
    assert len(finds_on(store_and_commands, "resources")) - before == 1


async def test_search_values_are_never_operators(store: MongoStore, registry: SearchParamRegistry) -> None:
    hostile = ['$where', '{"$gt": ""}', "$gt", ".*", "^a", "a|$ne"]
    for n, text in enumerate(hostile):
        await create(store, registry, {"resourceType": "Organization", "id": f"h{n}", "name": text,
                                       "identifier": [{"system": "urn:x", "value": text}]})
    await create(store, registry, {"resourceType": "Organization", "id": "plain", "name": "Plain",
                                   "identifier": [{"system": "urn:x", "value": "plain"}]})
    for n, text in enumerate(hostile):
        escaped = text.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")
        assert await search_ids(store, registry, "Organization", [("identifier", f"urn:x|{escaped}")]) == [f"h{n}"]
        assert await search_ids(store, registry, "Organization", [("name:exact", escaped)]) == [f"h{n}"]
    assert await search_ids(store, registry, "Organization", [("name:contains", ".*")]) == ["h3"]


def test_compiled_filters_keep_values_in_value_positions() -> None:
    cond = Condition("status", ParamType.TOKEN, (TokenValue(None, "$where"), TokenValue("$gt", "{}")))
    text = orjson.dumps(condition_filter("Task", cond)).decode()
    assert '{"$in":["$where"]}' in text and '{"$eq":"$gt"}' in text
    name = Condition("name", ParamType.STRING, (StringValue("$where", "$where"),), "exact")
    assert orjson.loads(orjson.dumps(condition_filter("Organization", name))) == {
        "_search.str": {"$elemMatch": {"p": {"$eq": "name"}, "e": {"$eq": "$where"}}}}


async def test_forged_page_token_with_an_operator_is_refused(store: MongoStore,
                                                            registry: SearchParamRegistry) -> None:
    from fhir_clr.store import paging
    from fhir_clr.store.mongo import keyset

    parsed = parse_search("Organization", [("_count", "1")], registry, default_count=1, max_count=10)
    fp = keyset.query_fingerprint(parsed.query)
    parsed.query.page_token = paging.encode_token(fp, ["n", [{"$where": "sleep(1000)"}]])
    with pytest.raises(InvalidPageToken):
        await store.search(parsed.query)


async def test_leases_exclude_other_owners_until_released(store: MongoStore) -> None:
    assert await store.acquire_lease("outbox", "replica-a", ttl=30)
    assert not await store.acquire_lease("outbox", "replica-b", ttl=30)
    assert await store.acquire_lease("outbox", "replica-a", ttl=30)
    assert not await store.release_lease("outbox", "replica-b")
    assert await store.release_lease("outbox", "replica-a")
    assert await store.acquire_lease("outbox", "replica-b", ttl=30)


async def test_expired_lease_can_be_taken_over(store: MongoStore) -> None:
    assert await store.acquire_lease("outbox", "replica-a", ttl=-1)
    assert await store.acquire_lease("outbox", "replica-b", ttl=30)


@pytest.mark.skipif(not os.environ.get("MONGODB_URI"), reason="query plans need a real MongoDB server")
async def test_worklist_is_answered_in_index_order(store: MongoStore, registry: SearchParamRegistry) -> None:
    from fhir_clr.store.mongo import keyset

    for n in range(20):
        await create(store, registry, {"resourceType": "Task", "id": f"t{n}", "status": "requested",
                                       "intent": "order", "owner": {"reference": f"Organization/o{n % 2}"}})
    parsed = parse_search("Task", [("owner", "Organization/o1"), ("status", "requested"),
                                   ("_sort", "-_lastUpdated"), ("_count", "5")], registry,
                          default_count=50, max_count=100)
    where = await store._filter(parsed.query)
    plan = await store.database["resources"].find(
        where, sort=keyset.sort_spec(parsed.query.sort), limit=6).explain()
    stages = orjson.dumps(plan["queryPlanner"]["winningPlan"]).decode()
    assert '"IXSCAN"' in stages and '"SORT"' not in stages
