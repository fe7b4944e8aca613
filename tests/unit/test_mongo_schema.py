"""MongoDB start-up: index creation (names, keys, uniqueness, idempotence) and the standalone-server check."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from fhir_clr.store.mongo import MongoStore, database_name
from fhir_clr.store.mongo.schema import INDEXES, RESOURCES, ensure_indexes, supports_transactions
from fhir_clr.store.port import StoreUnavailable
from tests.mongo_engines import InProcClient


async def test_indexes_are_created_once_with_their_names(caplog: pytest.LogCaptureFixture) -> None:
    db = InProcClient()["fhirclr_schema"]
    with caplog.at_level(logging.INFO, logger="fhir_clr.store.mongo.schema"):
        names = await ensure_indexes(db)
        again = await ensure_indexes(db)
    assert names == again
    assert "resources.search_reference" in names and "history.history_system" in names
    assert "search_reference" in caplog.text
    info = await db[RESOURCES].index_information()
    expected = {model.document["name"] for model in INDEXES[RESOURCES]} | {"_id_"}
    assert set(info) == expected


def test_worklist_shape_has_an_index_that_also_orders_it() -> None:
    """Task?owner=X&status=requested&_sort=-_lastUpdated: equality on the owner reference, then the sort
    fields (read backwards), so MongoDB needs no blocking sort."""
    by_name = {m.document["name"]: m.document for m in INDEXES[RESOURCES]}
    keys = list(by_name["search_reference"]["key"].items())
    assert keys == [("type", 1), ("_search.ref.p", 1), ("_search.ref.v", 1), ("lastUpdatedUs", 1), ("rid", 1)]
    assert list(by_name["search_token"]["key"])[:3] == ["type", "_search.tok.p", "_search.tok.c"]


def test_unique_index_on_commit_order() -> None:
    by_name = {m.document["name"]: m.document for m in INDEXES["history"]}
    assert by_name["history_system"].get("unique") is True


def test_topology_detection() -> None:
    assert supports_transactions({"setName": "rs0", "isWritablePrimary": True})
    assert supports_transactions({"msg": "isdbgrid"})
    assert not supports_transactions({"isWritablePrimary": True})


class _StandaloneAdmin:
    async def command(self, name: str) -> dict[str, Any]:
        assert name == "hello"
        return {"isWritablePrimary": True, "maxWireVersion": 21}


class _StandaloneClient(InProcClient):
    admin = _StandaloneAdmin()


async def test_standalone_server_is_refused_with_instructions() -> None:
    store = MongoStore("mongodb://db.example:27017/fhirclr", client=_StandaloneClient())
    with pytest.raises(StoreUnavailable) as caught:
        await store.open()
    message = str(caught.value)
    assert "standalone" in message and "--replSet rs0" in message and "rs.initiate()" in message
    assert "docker compose up" in message


def test_database_name_from_url_or_settings() -> None:
    assert database_name("mongodb://u:p@h1:27017,h2/clinic?replicaSet=rs0", "configured") == "clinic"
    assert database_name("mongodb://h1:27017/?replicaSet=rs0", "configured") == "configured"
    assert database_name("mongodb://h1:27017") == "fhirclr"
