"""MongoDB adapter of the storage port (``FHIR_CLR_STORE_URL=mongodb://…``), on pymongo's async API.

Layout and indexes: ``fhir_clr.store.mongo.schema``; document shapes: ``fhir_clr.store.mongo.docs``;
filters: ``fhir_clr.store.mongo.filters``; keyset paging: ``fhir_clr.store.mongo.keyset``; transactions:
``fhir_clr.store.mongo.tx``.

Every commit is one multi-document transaction (replica set or sharded cluster required): it reads the
current versions and claimed match keys, raises ``VersionConflict`` / ``MatchKeyTaken`` before writing
anything, bumps the commit counter (``seq`` for history and outbox, and strictly increasing
``lastUpdated`` instants, one per change), then writes the current documents, history, match keys and
outbox events. Concurrent writers to the same documents hit a write conflict, which MongoDB labels
``TransientTransactionError``; the whole unit is retried and its reads then see the winner.

``transactions=False`` is for in-process test engines (mongomock) that have no sessions: the same code
runs without a session, which is atomic only because such engines never yield to the event loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import orjson
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import PyMongoError

from fhir_clr.store import paging
from fhir_clr.store.mongo import keyset, lease, records
from fhir_clr.store.mongo.docs import (
    doc_id,
    history_id,
    instant_text,
    search_values,
    sort_keys,
    stamped,
    to_stored,
    version_fields,
)
from fhir_clr.store.mongo.filters import (
    Filter,
    all_of,
    base_filter,
    chain_filter,
    condition_filter,
    ids_filter,
)
from fhir_clr.store.mongo.schema import (
    COMMIT_COUNTER,
    COUNTERS,
    HISTORY,
    LEASES,
    MATCH_KEYS,
    OUTBOX,
    RECORDS,
    RESOURCES,
    STANDALONE_MESSAGE,
    ensure_indexes,
    supports_transactions,
)
from fhir_clr.store.mongo.tx import RetryWrite, run_transaction
from fhir_clr.store.port import (
    Change,
    ChangeOp,
    HistoryFilter,
    HistoryPage,
    InvalidPageToken,
    MatchKeyTaken,
    OutboxEvent,
    Record,
    RecordWrite,
    SearchPage,
    StoredResource,
    StoreUnavailable,
    VersionConflict,
)
from fhir_clr.store.query import AnyOf, ChainCondition, Condition, Criterion, HasCondition, Query

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "fhirclr"
SERVER_SELECTION_TIMEOUT_MS = 10_000
_BODY_ONLY = {"_search": 0, "_sort": 0}


def database_name(url: str, configured: str | None = None) -> str:
    """The database named in the URL path, else ``configured`` (``FHIR_CLR_MONGO_DB``), else ``fhirclr``."""
    path = urlsplit(url).path.lstrip("/")
    return path or configured or DEFAULT_DATABASE


def _hosts(url: str) -> str:
    """The host list of a MongoDB URL, without credentials (safe to log)."""
    return urlsplit(url).netloc.rpartition("@")[2] or "localhost"


def _history_position(token: str, fingerprint: str) -> int:
    """The commit ``seq`` a history token continues below."""
    payload = paging.decode_token(token, fingerprint)
    if len(payload) != 1 or type(payload[0]) is not int:
        raise InvalidPageToken("malformed paging token")
    return payload[0]


class MongoStore:
    """The storage port on MongoDB (replica set or sharded cluster)."""

    name = "mongodb"

    def __init__(self, url: str, database: str | None = None, *, client: Any = None,
                 transactions: bool = True) -> None:
        """``client`` injects an async client (e.g. an in-process test engine, which the store does not
        close); ``transactions`` False runs commits without sessions (only for such engines)."""
        self._url = url
        self._database = database or database_name(url)
        self._client = client
        self._owns_client = client is None
        self._transactions = transactions
        self._db: Any = None

    @property
    def database(self) -> Any:
        """The async database handle (after ``open``)."""
        return self._db

    # ---- lifecycle -------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check that transactions are available, and create the indexes."""
        if self._client is None:
            self._client = AsyncMongoClient(self._url, serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS,
                                            appname="fhir-clr", tz_aware=True)
        self._db = self._client[self._database]
        try:
            if self._transactions:
                hello = await self._client.admin.command("hello")
                if not supports_transactions(hello):
                    raise StoreUnavailable(STANDALONE_MESSAGE)
            await ensure_indexes(self._db)
        except PyMongoError as exc:
            raise StoreUnavailable(
                f"Cannot use MongoDB at {_hosts(self._url)} ({type(exc).__name__}); check that it is running "
                "and reachable, and that FHIR_CLR_STORE_URL is right") from None
        log.info("mongodb store open: database=%s transactions=%s", self._database, self._transactions)

    async def close(self) -> None:
        """Release the connection pool (an injected client is left to its owner)."""
        if self._owns_client and self._client is not None:
            await self._client.close()
        self._client = None

    async def ping(self) -> bool:
        """True when the database answers."""
        try:
            await self._db.command("ping")
        except PyMongoError:
            return False
        return True

    # ---- reads -----------------------------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The current version (a tombstone after a delete), or None."""
        doc = await self._db[RESOURCES].find_one({"_id": doc_id(resource_type, resource_id)}, _BODY_ONLY)
        return to_stored(doc) if doc else None

    async def read_version(self, resource_type: str, resource_id: str, version: int) -> StoredResource | None:
        """One historical version, or None."""
        doc = await self._db[HISTORY].find_one({"_id": history_id(resource_type, resource_id, version)})
        return to_stored(doc) if doc else None

    async def read_many(self, keys: Sequence[tuple[str, str]]) -> list[StoredResource]:
        """Current, non-deleted versions for ``(type, id)`` keys in one ``find`` with ``$in``."""
        if not keys:
            return []
        wanted = sorted({doc_id(t, i) for t, i in keys})
        cursor = self._db[RESOURCES].find({"_id": {"$in": wanted}, "deleted": {"$eq": False}}, _BODY_ONLY)
        return [to_stored(doc) for doc in await cursor.to_list(None)]

    async def search(self, query: Query) -> SearchPage:
        """One keyset page of ``query``."""
        if query.count <= 0:
            return SearchPage([])
        where = await self._filter(query)
        spec = keyset.sort_spec(query.sort)
        fingerprint = keyset.query_fingerprint(query)
        token = (keyset.decode_token(query.page_token, fingerprint, len(spec))
                 if query.page_token else None)
        forward = token is None or token.forward
        order = spec if forward else keyset.reverse(spec)
        if token is not None:
            where = all_of([where, keyset.after_filter(order, token.values)])
        cursor = self._db[RESOURCES].find(where, {"_search": 0}, sort=order, limit=query.count + 1)
        docs = await cursor.to_list(None)
        more = len(docs) > query.count
        docs = docs[: query.count]
        if not forward:
            if not docs:  # everything before the token has gone meanwhile: start over, as SQLite does
                return await self.search(replace(query, page_token=None))
            docs.reverse()
        page = SearchPage([to_stored(doc) for doc in docs])
        if docs:
            if more or not forward:
                page.next_token = keyset.encode_token(
                    fingerprint, True, keyset.row_values(docs[-1], spec))
            if (more and not forward) or (forward and token is not None):
                page.prev_token = keyset.encode_token(
                    fingerprint, False, keyset.row_values(docs[0], spec))
        return page

    async def count(self, query: Query) -> int:
        """Number of matches (``count_documents``)."""
        matches: int = await self._db[RESOURCES].count_documents(await self._filter(query))
        return matches

    async def history(self, scope: HistoryFilter, count: int, page_token: str | None = None) -> HistoryPage:
        """Versions newest first (commit order). ``since`` keeps versions written after it; ``at`` keeps, per
        resource, the version current at that instant (resources deleted then are left out)."""
        where: list[Filter] = []
        if scope.resource_type is not None:
            where.append({"type": {"$eq": scope.resource_type}})
            if scope.resource_id is not None:
                where.append({"id": {"$eq": scope.resource_id}})
        elif scope.types:
            where.append({"type": {"$in": list(scope.types)}})
        if scope.since_us is not None:
            where.append({"lastUpdatedUs": {"$gt": scope.since_us}})
        if scope.at_us is not None:
            where.append({"lastUpdatedUs": {"$lte": scope.at_us}, "deleted": {"$eq": False}})
            where.append({"$or": [{"supersededUs": {"$exists": False}}, {"supersededUs": {"$gt": scope.at_us}}]})
        fingerprint = paging.fingerprint("mongo-history", scope.resource_type, scope.resource_id, scope.since_us,
                                         scope.at_us, tuple(scope.types))
        if page_token:
            where.append({"seq": {"$lt": _history_position(page_token, fingerprint)}})
        limit = max(1, count)
        cursor = self._db[HISTORY].find(all_of(where), sort=[("seq", -1)], limit=limit + 1)
        docs = await cursor.to_list(None)
        next_token = paging.encode_token(fingerprint, [docs[limit - 1]["seq"]]) if len(docs) > limit else None
        return HistoryPage([to_stored(doc) for doc in docs[:limit]], next_token)

    async def outbox_after(self, after_seq: int, limit: int) -> list[OutboxEvent]:
        """Committed changes after ``after_seq``, in commit order."""
        cursor = self._db[OUTBOX].find({"_id": {"$gt": after_seq}}, sort=[("_id", 1)], limit=limit)
        return [OutboxEvent(seq=doc["_id"], resource_type=doc["type"], resource_id=doc["id"],
                            version=doc["version"], op=ChangeOp(doc["op"]), last_updated_us=doc["lastUpdatedUs"])
                for doc in await cursor.to_list(None)]

    async def iter_current(self, resource_type: str, *, since_us: int | None = None, until_us: int | None = None,
                           batch: int = 1000) -> AsyncGenerator[list[bytes], None]:
        """Live current bodies of one type in ``rid`` order: one ``find`` per batch that resumes after the
        previous batch's last ``rid``, answered in order by the ``type_live_created`` index."""
        updated: Filter = {}
        if since_us is not None:
            updated["$gt"] = since_us
        if until_us is not None:
            updated["$lte"] = until_us
        after = -1
        while True:
            where: Filter = {"type": {"$eq": resource_type}, "deleted": {"$eq": False}, "rid": {"$gt": after}}
            if updated:
                where["lastUpdatedUs"] = updated
            cursor = self._db[RESOURCES].find(where, {"resource": 1, "rid": 1}, sort=[("rid", 1)],
                                              limit=max(1, batch))
            docs = await cursor.to_list(None)
            if not docs:
                return
            after = docs[-1]["rid"]
            yield [orjson.dumps(doc["resource"]) for doc in docs]

    # ---- search helpers --------------------------------------------------------------------------------

    async def _filter(self, query: Query) -> Filter:
        parts = [base_filter(query.resource_type)]
        for criterion in query.criteria:
            parts.append(await self._criterion(query.resource_type, criterion))
        return all_of(parts)

    async def _criterion(self, resource_type: str, criterion: Criterion) -> Filter:
        if isinstance(criterion, Condition):
            return condition_filter(resource_type, criterion)
        if isinstance(criterion, ChainCondition):
            targets = await self._matching_ids(criterion.target_type, criterion.inner)
            return chain_filter(criterion.param, targets)
        if isinstance(criterion, AnyOf):
            if not criterion.alternatives:
                return ids_filter([])
            return {"$or": [await self._criterion(resource_type, alt) or {} for alt in criterion.alternatives]}
        return ids_filter(await self._referenced_ids(resource_type, criterion))

    async def _matching_ids(self, resource_type: str, inner: Condition) -> list[str]:
        """``Type/id`` of every live ``resource_type`` resource matching ``inner`` (first step of a chain)."""
        where = all_of([base_filter(resource_type), condition_filter(resource_type, inner)])
        cursor = self._db[RESOURCES].find(where, {"_id": 1})
        return [doc["_id"] for doc in await cursor.to_list(None)]

    async def _referenced_ids(self, resource_type: str, has: HasCondition) -> list[str]:
        """``Type/id`` of the ``resource_type`` resources that matching ``has.source_type`` resources
        reference through ``has.param`` (first step of ``_has``)."""
        where = all_of([base_filter(has.source_type), condition_filter(has.source_type, has.inner)])
        cursor = self._db[RESOURCES].find(where, {"_search.ref": 1})
        prefix = f"{resource_type}/"
        found: set[str] = set()
        for doc in await cursor.to_list(None):
            for entry in doc.get("_search", {}).get("ref", ()):
                if entry["p"] == has.param and entry["v"].startswith(prefix) and "/" not in entry["v"][len(prefix):]:
                    found.add(entry["v"])
        return sorted(found)

    # ---- writes ----------------------------------------------------------------------------------------

    async def commit(self, changes: Sequence[Change]) -> list[StoredResource]:
        """Apply all changes in one transaction (see the module docstring)."""
        if not changes:
            return []

        async def work(session: Any) -> list[StoredResource]:
            return await self._apply(changes, session)

        return await run_transaction(self._client, work, transactions=self._transactions)

    async def _apply(self, changes: Sequence[Change], session: Any) -> list[StoredResource]:
        rids = await self._check_versions(changes, session)
        claims = await self._check_match_keys(changes, session)
        seq, clock = await self._advance_clock(len(changes), session)
        stored: list[StoredResource] = []
        for offset, change in enumerate(changes):
            key = doc_id(change.resource_type, change.resource_id)
            rid = rids.setdefault(key, seq + offset)
            stored.append(await self._write(change, rid, seq + offset, clock + offset, session))
        for key, (holder, change) in claims.items():
            owner = {"type": change.resource_type, "id": change.resource_id}
            if holder is None:
                await self._db[MATCH_KEYS].insert_one({"_id": key, **owner}, session=session)
            else:
                await self._db[MATCH_KEYS].replace_one({"_id": key}, owner, upsert=True, session=session)
        return stored

    async def _check_versions(self, changes: Sequence[Change], session: Any) -> dict[str, int]:
        """Compare-and-swap check of every change; returns the creation order (``rid``) of the resources
        that already exist."""
        keys = [doc_id(c.resource_type, c.resource_id) for c in changes]
        cursor = self._db[RESOURCES].find({"_id": {"$in": keys}}, {"version": 1, "rid": 1}, session=session)
        found = {doc["_id"]: doc for doc in await cursor.to_list(None)}
        versions = {key: doc["version"] for key, doc in found.items()}
        for change, key in zip(changes, keys, strict=True):
            actual = versions.get(key, 0)
            if actual != change.expected_version:
                raise VersionConflict(change.resource_type, change.resource_id, change.expected_version, actual)
            versions[key] = actual + 1
        return {key: doc["rid"] for key, doc in found.items()}

    async def _check_match_keys(self, changes: Sequence[Change], session: Any
                                ) -> dict[str, tuple[dict[str, Any] | None, Change]]:
        """The keys to claim, with their current holder; MatchKeyTaken when another resource holds one
        and the change may not steal it."""
        wanted = {key: change for change in changes if change.op is not ChangeOp.DELETE
                  for key in change.match_keys}
        if not wanted:
            return {}
        cursor = self._db[MATCH_KEYS].find({"_id": {"$in": sorted(wanted)}}, session=session)
        holders = {doc["_id"]: doc for doc in await cursor.to_list(None)}
        claims: dict[str, tuple[dict[str, Any] | None, Change]] = {}
        for key, change in wanted.items():
            holder = holders.get(key)
            ours = holder is not None and (holder["type"], holder["id"]) == (change.resource_type,
                                                                             change.resource_id)
            if ours:
                continue
            if holder is not None and not change.steal_match_keys:
                raise MatchKeyTaken(key, holder["type"], holder["id"])
            claims[key] = (holder, change)
        return claims

    async def _advance_clock(self, count: int, session: Any) -> tuple[int, int]:
        """Reserve ``count`` sequence numbers and ``lastUpdated`` instants one microsecond apart, strictly
        after the previous commit's even if the wall clock went back (as SQLite does). Returns the first
        seq and the first instant."""
        counters = self._db[COUNTERS]
        before = await counters.find_one_and_update(
            {"_id": COMMIT_COUNTER}, {"$inc": {"seq": count}}, upsert=True,
            return_document=ReturnDocument.BEFORE, session=session)
        previous_seq = (before or {}).get("seq", 0)
        first_us = max(time.time_ns() // 1_000, (before or {}).get("us", 0) + 1)
        await counters.update_one({"_id": COMMIT_COUNTER}, {"$set": {"us": first_us + count - 1}}, session=session)
        return previous_seq + 1, first_us

    async def _write(self, change: Change, rid: int, seq: int, last_us: int, session: Any) -> StoredResource:
        """Write one change: current document (``rid`` = creation order, kept across versions), history,
        outbox event; a delete also releases the resource's match keys."""
        key = doc_id(change.resource_type, change.resource_id)
        version = change.expected_version + 1
        body = (stamped(change.resource, version, instant_text(last_us))
                if change.op is not ChangeOp.DELETE and change.resource is not None else None)
        fields = version_fields(change.resource_type, change.resource_id, version, change.op, last_us, body)
        current = {"_id": key, "rid": rid, **fields}
        if body is not None and change.index is not None:
            current["_search"] = search_values(change.index)
            current["_sort"] = sort_keys(change.index)
        if change.expected_version == 0:
            await self._db[RESOURCES].insert_one(current, session=session)
        else:
            result = await self._db[RESOURCES].replace_one(
                {"_id": key, "version": change.expected_version}, current, session=session)
            if result.matched_count != 1:
                raise RetryWrite(key)
            await self._db[HISTORY].update_one(
                {"_id": history_id(change.resource_type, change.resource_id, change.expected_version)},
                {"$set": {"supersededUs": last_us}}, session=session)
        await self._db[HISTORY].insert_one(
            {"_id": history_id(change.resource_type, change.resource_id, version), **fields, "seq": seq,
             "method": change.method.value if change.method else None}, session=session)
        await self._db[OUTBOX].insert_one(
            {"_id": seq, "type": change.resource_type, "id": change.resource_id, "version": version,
             "op": change.op.value, "lastUpdatedUs": last_us}, session=session)
        if body is None:
            await self._db[MATCH_KEYS].delete_many(
                {"type": change.resource_type, "id": change.resource_id}, session=session)
        return to_stored(current)

    # ---- records -------------------------------------------------------------------------------------

    async def get_record(self, kind: str, key: str) -> Record | None:
        """One bookkeeping record."""
        return await records.get_record(self._db[RECORDS], kind, key)

    async def list_records(self, kind: str, *, prefix: str = "", after: str | None = None,
                           limit: int = 100) -> list[Record]:
        """Records of ``kind`` by key prefix, after a key, in key order."""
        return await records.list_records(self._db[RECORDS], kind, prefix, after, limit)

    async def write_records(self, writes: Sequence[RecordWrite]) -> list[Record | None]:
        """Write records in one transaction (RecordConflict: nothing written)."""
        if not writes:
            return []
        collection = self._db[RECORDS]
        return await run_transaction(self._client, lambda session: records.write_records(
            collection, writes, session), transactions=self._transactions)

    # ---- leases ----------------------------------------------------------------------------------------

    async def acquire_lease(self, name: str, owner: str, ttl: float) -> bool:
        """Take or renew the named lease for ``ttl`` seconds (see ``fhir_clr.store.mongo.lease``)."""
        return await lease.acquire_lease(self._db[LEASES], name, owner, ttl)

    async def release_lease(self, name: str, owner: str) -> bool:
        """Give the named lease back if ``owner`` holds it."""
        return await lease.release_lease(self._db[LEASES], name, owner)
