"""Batch and transaction Bundles.

* batch: entries are independent; each gets its own status or OperationOutcome.
* transaction: all or nothing. Entries are processed DELETE, POST, PUT/PATCH, GET (FHIR's order);
  ``urn:uuid`` fullUrls get ids and every reference to them is rewritten; conditional references and
  conditional entries resolve first; every write is planned through the same ``WritePlanner`` as single
  requests and committed in **one** store transaction (re-planned if a concurrent writer wins a race).
"""

from __future__ import annotations

from typing import Any

import orjson

from fhir_clr.engine.bundle_requests import (
    CONDITIONAL_REFERENCE,
    PROCESSING_ORDER,
    EntryRequest,
    is_create_only,
    locate,
    parse_entries,
    patch_from_entry,
    rewrite_narrative,
    rewrite_strings,
)
from fhir_clr.engine.content import new_id
from fhir_clr.engine.engine import Engine
from fhir_clr.engine.render import etag, history_bundle, resource_bytes, searchset_bundle
from fhir_clr.engine.rules import Prefetched
from fhir_clr.engine.writes import Plan, parse_criteria, require_type
from fhir_clr.errors import FhirError
from fhir_clr.store.port import MatchKeyTaken, StoredResource, VersionConflict

TRANSACTION_ATTEMPTS = 5
STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


WRITE_SCOPE_LETTER = {"POST": "c", "PUT": "u", "PATCH": "u", "DELETE": "d"}
"""The SMART scope letter each write entry of a transaction needs."""


DEFAULT_RESPONSE_BYTES = 32 * 1024 * 1024


class ResponseBudget:
    """The bytes one Bundle's read entries may still answer with: a batch of thousands of wide searches would
    otherwise build a response (and a peak of memory) of hundreds of MB from a request body of a few hundred KB."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def check(self) -> None:
        """422 too-costly once the budget is spent (later read entries are not run)."""
        if self.used > self.limit:
            raise FhirError(422, "too-costly", f"The Bundle's read entries would answer with more than "
                            f"{self.limit} bytes; split it into smaller Bundles or page the searches")

    def take(self, body: bytes) -> bytes:
        """Count ``body`` against the budget and hand it back."""
        self.used += len(body)
        self.check()
        return body


class BundleProcessor:
    """Processes ``POST [base]`` Bundles of type batch or transaction."""

    def __init__(self, engine: Engine, *, max_entries: int, base_urls: tuple[str, ...] = (),
                 max_response_bytes: int = DEFAULT_RESPONSE_BYTES) -> None:
        self.engine = engine
        self.max_entries = max_entries
        self.base_urls = base_urls
        self.max_response_bytes = max_response_bytes

    def with_engine(self, engine: Engine) -> BundleProcessor:
        """The same processor running its entries through ``engine`` (e.g. one acting for a caller)."""
        return BundleProcessor(engine, max_entries=self.max_entries, base_urls=self.base_urls,
                               max_response_bytes=self.max_response_bytes)

    async def process(self, bundle: dict[str, Any], base_url: str, *, return_body: bool = True) -> bytes:
        """Run the Bundle and return the response Bundle as JSON bytes."""
        kind = bundle.get("type")
        if bundle.get("resourceType") != "Bundle" or kind not in ("batch", "transaction"):
            raise FhirError(400, "invalid", "POST to the base URL takes a Bundle of type batch or transaction",
                            expression="Bundle.type")
        requests = parse_entries(bundle, (*self.base_urls, base_url), self.max_entries)
        budget = ResponseBudget(self.max_response_bytes)
        if kind == "batch":
            entries = [await self._batch_entry(request, base_url, return_body, budget) for request in requests]
        else:
            entries = await self._transaction(requests, base_url, return_body, budget)
        response = {"resourceType": "Bundle", "type": f"{kind}-response", "entry": entries}
        return orjson.dumps(response)

    # ---- batch ------------------------------------------------------------------------------------

    async def _batch_entry(self, request: EntryRequest, base_url: str, return_body: bool, budget: ResponseBudget
                           ) -> dict[str, Any]:
        try:
            if request.method in ("GET", "HEAD"):
                return await self._read_entry(request, base_url, budget)
            result_stored, status = await self._single_write(request)
            return _write_entry(result_stored, status, return_body)
        except FhirError as error:
            located = locate(error, request.index)
            return {"response": {"status": str(error.status), "outcome": located.outcome()}}

    async def _single_write(self, request: EntryRequest) -> tuple[StoredResource | None, int]:
        engine = self.engine
        resource = request.resource or {}
        if request.method == "POST":
            result = await engine.create(request.resource_type, resource, request.if_none_exist)
        elif request.method == "PUT" and request.query:
            result = await engine.conditional_update(request.resource_type, request.query, resource,
                                                     request.if_match)
        elif request.method == "PUT":
            result = await engine.update(request.resource_type, _need_id(request), resource, request.if_match)
        elif request.method == "PATCH" and request.query:
            result = await engine.conditional_patch(request.resource_type, request.query,
                                                    patch_from_entry(resource), request.if_match)
        elif request.method == "PATCH":
            result = await engine.patch(request.resource_type, _need_id(request),
                                        patch_from_entry(resource), request.if_match)
        elif request.query:
            result = await engine.conditional_delete(request.resource_type, request.query)
        else:
            result = await engine.delete(request.resource_type, _need_id(request), request.if_match)
        return result.stored, result.status

    async def _read_entry(self, request: EntryRequest, base_url: str, budget: ResponseBudget) -> dict[str, Any]:
        engine = self.engine
        budget.check()
        if request.history:
            if request.version is not None:
                stored = await engine.vread(request.resource_type, _need_id(request), request.version)
                return _read_response(stored, budget)
            page = await engine.history(request.resource_type, request.resource_id, request.params)
            path = "/".join(p for p in (request.resource_type, request.resource_id, "_history") if p)
            return {"resource": orjson.Fragment(budget.take(history_bundle(page, base_url, path))),
                    "response": {"status": "200 OK"}}
        if request.resource_id is not None:
            return _read_response(await engine.read(request.resource_type, request.resource_id), budget)
        result = await engine.search(request.resource_type, request.params)
        return {"resource": orjson.Fragment(budget.take(searchset_bundle(result, base_url, request.resource_type))),
                "response": {"status": "200 OK"}}

    # ---- transaction ------------------------------------------------------------------------------

    async def _transaction(self, requests: list[EntryRequest], base_url: str, return_body: bool,
                           budget: ResponseBudget) -> list[dict[str, Any]]:
        steal = False
        for _ in range(TRANSACTION_ATTEMPTS):
            try:
                results = await self._transaction_once(requests, steal)
                break
            except VersionConflict:
                continue
            except MatchKeyTaken:
                # As for single creates: the re-plan finds the key's holder if it still matches the criteria;
                # otherwise the holder no longer matches them and the new resource takes the key over.
                steal = True
        else:
            raise FhirError(409, "conflict", "The transaction kept conflicting with concurrent writes; retry")
        entries: list[dict[str, Any]] = []
        for request in requests:
            if request.method in ("GET", "HEAD"):
                try:
                    entries.append(await self._read_entry(request, base_url, budget))
                except FhirError as error:
                    raise locate(error, request.index) from None
            else:
                stored, status = results[request.index]
                entries.append(_write_entry(stored, status, return_body))
        return entries

    async def _transaction_once(self, requests: list[EntryRequest], steal_keys: bool
                                ) -> dict[int, tuple[StoredResource | None, int]]:
        plans = await self.plan_transaction(requests, steal_keys=steal_keys)
        changes = [change for plan in plans.values() for change in plan.changes()]
        stored = iter(await self.engine.store.commit(changes)) if changes else iter(())
        results: dict[int, tuple[StoredResource | None, int]] = {}
        for index, plan in plans.items():
            written = [next(stored) for _ in plan.changes()]
            results[index] = (written[0] if written else plan.existing, plan.status)
        return results

    async def plan_transaction(self, requests: list[EntryRequest], *, steal_keys: bool = False,
                               prefetched: Prefetched | None = None) -> dict[int, Plan]:
        """Plan every write entry of a transaction (identities, urn:uuid rewriting, business rules,
        authorization) without committing; the plans by entry index. Raises the first entry's error, located.
        ``steal_keys``: conditional creates take over match keys whose holders no longer match (after a lost key
        race). Each entry's rules see what the earlier entries write, and ``prefetched`` (what the rules read
        ahead for the batch this transaction belongs to, see ``Engine.prefetch``)."""
        ids: dict[int, str] = {}
        resolved: dict[int, StoredResource] = {}
        mapping: dict[str, str] = {}
        creates: set[int] = set()
        for request in requests:
            try:
                require_type(request.resource_type)
                await self._assign_identity(request, ids, resolved, mapping, creates)
            except FhirError as error:
                raise locate(error, request.index) from None
        resources = {r.index: await self._rewrite(r, mapping) for r in requests if r.resource is not None}
        _check_overlaps(requests, ids)
        written = frozenset(f"{r.resource_type}/{ids[r.index]}" for r in requests
                            if (r.method == "POST" or r.index in creates) and r.index in ids)
        """What this transaction creates: references to it need no visibility check (anything else it writes
        must already be visible to the caller)."""
        plans: dict[int, Plan] = {}
        planned: dict[str, dict[str, Any]] = {}
        for request in sorted(requests, key=lambda r: PROCESSING_ORDER[r.method]):
            if request.method in ("GET", "HEAD"):
                continue
            try:
                self.engine.access.require(request.resource_type, WRITE_SCOPE_LETTER[request.method])
                plan = await self._plan(request, ids, resolved, resources.get(request.index), creates, steal_keys,
                                        prefetched)
                plans[request.index] = await self.engine.vet(plan, written, planned=planned, prefetched=prefetched)
            except FhirError as error:
                raise locate(error, request.index) from None
            planned.update((f"{c.resource_type}/{c.resource_id}", c.resource)
                           for c in plans[request.index].changes() if c.resource is not None)
        return plans

    async def _assign_identity(self, request: EntryRequest, ids: dict[int, str],
                               resolved: dict[int, StoredResource], mapping: dict[str, str],
                               creates: set[int]) -> None:
        """The id each entry writes (matched among what the caller may see); ``creates`` gets the conditional
        PUTs that match nothing and so create."""
        planner = self.engine.planner
        if request.method == "POST":
            if request.if_none_exist:
                found = await planner.match(request.resource_type, parse_criteria(request.if_none_exist))
                if len(found) > 1:
                    raise FhirError(412, "multiple-matches", "ifNoneExist criteria match more than one resource")
                if found:
                    resolved[request.index] = found[0]
                    ids[request.index] = found[0].resource_id
            ids.setdefault(request.index, new_id())
        elif request.method in ("PUT", "PATCH", "DELETE") and request.query:
            found = await planner.match(request.resource_type, parse_criteria(request.query))
            if len(found) > 1:
                raise FhirError(412, "multiple-matches", "Conditional criteria match more than one resource")
            if found:
                ids[request.index] = found[0].resource_id
            elif request.method == "PUT":
                body_id = (request.resource or {}).get("id")
                ids[request.index] = body_id if isinstance(body_id, str) else new_id()
                if not isinstance(body_id, str):
                    creates.add(request.index)
            elif request.method == "PATCH":
                raise FhirError(404, "not-found", "Conditional patch criteria match no resource")
        elif request.resource_id is not None:
            ids[request.index] = request.resource_id
        if request.full_url and request.index in ids:
            mapping[request.full_url] = f"{request.resource_type}/{ids[request.index]}"

    async def _rewrite(self, request: EntryRequest, mapping: dict[str, str]) -> dict[str, Any]:
        conditional: dict[str, str] = {}
        for value in _conditional_references(request.resource or {}):
            target_type, _, criteria = value.partition("?")
            try:
                require_type(target_type)
                found = await self.engine.planner.match(target_type, parse_criteria(criteria))
            except FhirError as error:
                raise locate(error, request.index) from None
            if len(found) != 1:
                raise locate(FhirError(412 if found else 404, "multiple-matches" if found else "not-found",
                                       f"Conditional reference {target_type}?… matches {len(found)} resources; "
                                       "exactly one is required"), request.index)
            conditional[value] = f"{target_type}/{found[0].resource_id}"
        full = {**mapping, **conditional}
        resource: dict[str, Any] = rewrite_strings(request.resource, full.get)
        rewrite_narrative(resource, mapping)
        return resource

    async def _plan(self, request: EntryRequest, ids: dict[int, str], resolved: dict[int, StoredResource],
                    resource: dict[str, Any] | None, creates: set[int], steal_keys: bool,
                    prefetched: Prefetched | None = None) -> Plan:
        planner = self.engine.planner
        type_ = request.resource_type
        if request.method == "POST":
            if request.index in resolved:
                return Plan(change=None, status=200, existing=resolved[request.index])
            return await planner.plan_create(type_, resource or {}, request.if_none_exist,
                                             resource_id=ids[request.index], steal_keys=steal_keys)
        if request.index in creates:
            return await planner.plan_create(type_, resource or {}, request.query, resource_id=ids[request.index],
                                             steal_keys=steal_keys)
        if request.method == "DELETE":
            if request.index not in ids:
                return Plan(change=None, status=200)
            return await planner.plan_delete(type_, ids[request.index], request.if_match)
        if request.method == "PUT":
            body = dict(resource or {})
            if request.query:
                body["id"] = ids[request.index]
            return await planner.plan_update(type_, ids[request.index], body, request.if_match,
                                             create_only=is_create_only(request.if_none_match),
                                             checked_elsewhere=request.checked_elsewhere,
                                             read_ahead=prefetched.current if prefetched is not None else None)
        operations = patch_from_entry(resource or {})
        return await planner.plan_patch(type_, ids[request.index], operations, request.if_match)


def _need_id(request: EntryRequest) -> str:
    if request.resource_id is None:
        raise FhirError(400, "invalid", f"{request.method} {request.url} needs a resource id in the URL")
    return request.resource_id


def _conditional_references(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and CONDITIONAL_REFERENCE.match(ref):
            found.add(ref)
        for item in value.values():
            if isinstance(item, dict | list):
                found |= _conditional_references(item)
    elif isinstance(value, list):
        for item in value:
            found |= _conditional_references(item)
    return found


def _check_overlaps(requests: list[EntryRequest], ids: dict[int, str]) -> None:
    seen: dict[tuple[str, str], int] = {}
    for request in requests:
        if request.method in ("GET", "HEAD") or request.index not in ids:
            continue
        key = (request.resource_type, ids[request.index])
        if key in seen:
            raise FhirError(400, "invalid", f"Bundle.entry[{request.index}] and Bundle.entry[{seen[key]}] "
                            "write the same resource; a transaction may touch each resource once",
                            expression=f"Bundle.entry[{request.index}]")
        seen[key] = request.index


def _write_entry(stored: StoredResource | None, status: int, return_body: bool) -> dict[str, Any]:
    if stored is None or stored.deleted:
        response: dict[str, Any] = {"status": STATUS_TEXT[200]}
        if stored is not None:
            response["etag"] = etag(stored)
        return {"response": response}
    entry: dict[str, Any] = {}
    if return_body and stored.body is not None:
        entry["resource"] = orjson.Fragment(stored.body)
    entry["response"] = {"status": STATUS_TEXT.get(status, str(status)),
                         "location": f"{stored.resource_type}/{stored.resource_id}/_history/{stored.version}",
                         "etag": etag(stored), "lastModified": stored.last_updated}
    return entry


def _read_response(stored: StoredResource, budget: ResponseBudget) -> dict[str, Any]:
    return {"resource": orjson.Fragment(budget.take(resource_bytes(stored))),
            "response": {"status": "200 OK", "etag": etag(stored), "lastModified": stored.last_updated}}

