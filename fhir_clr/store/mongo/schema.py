"""MongoDB layout for the storage port: collection names, the indexes every query shape needs, and the
start-up checks (reachability, transaction support).

Collections
-----------
``resources``   current version of every resource (``_id`` = ``"Type/id"``), tombstones included, with the
                ``_search`` attribute arrays and ``_sort`` keys (see ``fhir_clr.store.mongo.docs``);
                ``rid`` = the commit ``seq`` that created it (creation order, the default search order).
``history``     every version, tombstones included (``_id`` = ``"Type/id/version"``), ``seq`` = commit order.
``match_keys``  ``_id`` = conditional-create key: the unique ``_id`` makes conditional create race-free.
``outbox``      one event per committed change, ``_id`` = ``seq`` from the same counter as history.
``counters``    one document (``_id`` = ``"commit"``) holding the last ``seq`` and the last ``lastUpdated``.
``leases``      named leases for background workers (``fhir_clr.store.mongo.lease``).

Indexes are derived from the *shape* of the stored search values, not from the SearchParameter registry:
every value kind lives in one array of ``{p: param, ...}`` elements (the attribute pattern), so one
compound multikey index per kind, led by ``type`` and the param code, serves every parameter of that kind
on every resource type — a SearchParameter added to ``profiles/`` is indexed without a migration.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo import ASCENDING, DESCENDING, IndexModel

log = logging.getLogger(__name__)

RESOURCES = "resources"
HISTORY = "history"
MATCH_KEYS = "match_keys"
OUTBOX = "outbox"
COUNTERS = "counters"
LEASES = "leases"
RECORDS = "records"
COMMIT_COUNTER = "commit"

_S = "_search"


def _index(name: str, *keys: tuple[str, int], **options: Any) -> IndexModel:
    return IndexModel(list(keys), name=name, **options)


INDEXES: dict[str, list[IndexModel]] = {
    RESOURCES: [
        # Listing a type in creation order (rid, the default) or _lastUpdated order, and by id.
        _index("type_live_created", ("type", ASCENDING), ("deleted", ASCENDING), ("rid", ASCENDING)),
        _index("type_live_updated", ("type", ASCENDING), ("deleted", ASCENDING), ("lastUpdatedUs", ASCENDING),
               ("rid", ASCENDING)),
        _index("type_live_id", ("type", ASCENDING), ("deleted", ASCENDING), ("_id", ASCENDING)),
        # Tokens and references end with (lastUpdatedUs, _id) so that the worklist shape
        # Task?owner=X&status=requested&_sort=-_lastUpdated is answered in index order (no blocking sort).
        _index("search_token", ("type", ASCENDING), (f"{_S}.tok.p", ASCENDING), (f"{_S}.tok.c", ASCENDING),
               ("lastUpdatedUs", ASCENDING), ("rid", ASCENDING)),
        _index("search_token_system", ("type", ASCENDING), (f"{_S}.tok.p", ASCENDING),
               (f"{_S}.tok.s", ASCENDING), (f"{_S}.tok.c", ASCENDING)),
        _index("search_reference", ("type", ASCENDING), (f"{_S}.ref.p", ASCENDING), (f"{_S}.ref.v", ASCENDING),
               ("lastUpdatedUs", ASCENDING), ("rid", ASCENDING)),
        _index("search_date", ("type", ASCENDING), (f"{_S}.date.p", ASCENDING), (f"{_S}.date.lo", ASCENDING),
               (f"{_S}.date.hi", ASCENDING)),
        _index("search_string", ("type", ASCENDING), (f"{_S}.str.p", ASCENDING), (f"{_S}.str.n", ASCENDING)),
        _index("search_string_exact", ("type", ASCENDING), (f"{_S}.str.p", ASCENDING),
               (f"{_S}.str.e", ASCENDING)),
        _index("search_number", ("type", ASCENDING), (f"{_S}.num.p", ASCENDING), (f"{_S}.num.lo", ASCENDING),
               (f"{_S}.num.hi", ASCENDING)),
        _index("search_quantity", ("type", ASCENDING), (f"{_S}.qty.p", ASCENDING), (f"{_S}.qty.lo", ASCENDING),
               (f"{_S}.qty.hi", ASCENDING)),
        _index("search_uri", ("type", ASCENDING), (f"{_S}.uri.p", ASCENDING), (f"{_S}.uri.v", ASCENDING)),
        _index("search_present", ("type", ASCENDING), (f"{_S}.has", ASCENDING)),
    ],
    HISTORY: [
        _index("history_instance", ("type", ASCENDING), ("id", ASCENDING), ("seq", DESCENDING)),
        _index("history_type", ("type", ASCENDING), ("seq", DESCENDING)),
        _index("history_system", ("seq", DESCENDING), unique=True),
    ],
    MATCH_KEYS: [
        _index("match_keys_holder", ("type", ASCENDING), ("id", ASCENDING)),
    ],
    RECORDS: [_index("records_by_kind_key", ("kind", ASCENDING), ("key", ASCENDING), unique=True)],
}
"""Secondary indexes per collection (``_id`` is always indexed and unique)."""


async def ensure_indexes(db: Any) -> list[str]:
    """Create every index in ``INDEXES`` (idempotent: existing identical indexes are left alone) and log
    their names at INFO. Returns the names."""
    names: list[str] = []
    for collection, models in INDEXES.items():
        created = await db[collection].create_indexes(models)
        names.extend(f"{collection}.{name}" for name in created)
    log.info("mongodb indexes ready: %s", ", ".join(names))
    return names


STANDALONE_MESSAGE = (
    "The MongoDB server is a standalone mongod, which cannot run the multi-document transactions fhir-clr "
    "needs. Start it as a replica set (a single node is enough): `mongod --replSet rs0 --bind_ip localhost` "
    "then run `rs.initiate()` once in mongosh, and add `?replicaSet=rs0` to FHIR_CLR_STORE_URL; or run "
    "`docker compose up` in the fhir-clr repository, which starts MongoDB as an initiated replica set."
)


def supports_transactions(hello: dict[str, Any]) -> bool:
    """True when a ``hello`` reply comes from a replica-set member or a mongos router."""
    return bool(hello.get("setName")) or hello.get("msg") == "isdbgrid"
