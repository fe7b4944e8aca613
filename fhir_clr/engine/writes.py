"""Write planning: turn one create/update/patch/delete request into a store ``Change`` without committing.

Single REST writes commit one plan (and re-plan on a lost race); transaction Bundles plan every entry and
commit all changes at once. Both use exactly these functions, so validation, index extraction and
conditional semantics are the same everywhere.

Every plan reads the version it changes through ``Visibility.current`` (``_current``): for a caller who may
not see a resource it is absent, before If-Match, JSON Patch, business rules or content checks look at anything.
A restricted caller never creates a resource at an id of its choosing (``PUT`` on an id it cannot see is 404).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import jsonpatch
import orjson

from fhir_clr.engine.content import new_id, same_content, with_identity
from fhir_clr.engine.fhirpath_patch import apply_fhirpath_patch, is_fhirpath_patch
from fhir_clr.engine.visibility import Visibility
from fhir_clr.errors import FhirError, not_found
from fhir_clr.fhirmodel.allowlist import is_served_type
from fhir_clr.fhirmodel.validate import validate_id, validate_resource
from fhir_clr.search.parse import parse_search
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import Change, ChangeOp, Store, StoredResource, WriteMethod
from fhir_clr.store.query import Criterion


@dataclass(slots=True)
class Plan:
    """A planned write. ``change`` None means nothing to write and ``existing`` is the answer. ``extra`` are
    changes the write entails (side effects the business rules add), committed atomically with ``change``. ``replaced``
    is the stored version an update or delete replaces, when the planner read it."""

    change: Change | None
    status: int
    existing: StoredResource | None = None
    extra: list[Change] = field(default_factory=list)
    replaced: StoredResource | None = None

    def changes(self) -> list[Change]:
        """Every change to commit for this plan: the write itself first, then its extra changes."""
        return [self.change, *self.extra] if self.change is not None else []


def require_type(resource_type: str) -> None:
    """404 unless ``resource_type`` is served here."""
    if not is_served_type(resource_type):
        raise not_found(resource_type)


def parse_criteria(criteria: str) -> list[tuple[str, str]]:
    """Split a conditional URL query (``identifier=a|b&status=active``) into parameters; 400 if empty."""
    params = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    if not params:
        raise FhirError(400, "invalid", "A conditional request needs search criteria")
    return params


def match_key(resource_type: str, params: Sequence[tuple[str, str]], scope: str | None = None) -> str:
    """The unique key that makes a conditional create with these criteria race-free; ``scope`` (a restricted
    caller's organization) keeps the keys of callers who see different resources apart."""
    canonical = f"{resource_type}?{urlencode(sorted(params))}"
    if scope is not None:
        canonical = f"{scope} {canonical}"
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_if_match(current: StoredResource | None, if_match: int | None) -> None:
    """412 when an ``If-Match`` version is given and is not the current one."""
    if if_match is None:
        return
    if current is None or current.deleted or current.version != if_match:
        have = "no current version" if current is None or current.deleted else f"version {current.version}"
        raise FhirError(412, "conflict", f"If-Match expected version {if_match} but the resource has {have}")


def check_if_none_match(current: StoredResource | None, create_only: bool) -> None:
    """412 when ``If-None-Match: *`` (``create_only``) is given and a live version exists: the write may only
    create the resource."""
    if create_only and current is not None and not current.deleted:
        raise FhirError(412, "conflict", "If-None-Match: * allows only creating the resource, and it exists")


class WritePlanner:
    """Plans writes against one store and search-parameter registry."""

    def __init__(self, store: Store, registry: SearchParamRegistry, *, default_count: int,
                 max_count: int, base_urls: Sequence[str] = (), visibility: Visibility | None = None) -> None:
        self.store = store
        self.registry = registry
        self.default_count = default_count
        self.max_count = max_count
        self.base_urls = tuple(base_urls)
        self.visibility = visibility or Visibility(store)
        """The caller's view: every plan reads the current version through it."""

    def seen_by(self, visibility: Visibility) -> WritePlanner:
        """This planner planning for the caller whose view is ``visibility`` (shares store and registry)."""
        return WritePlanner(self.store, self.registry, default_count=self.default_count,
                            max_count=self.max_count, base_urls=self.base_urls, visibility=visibility)

    async def _current(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The current version a write plans from, or None when it is absent or the caller may not see it."""
        validate_id(resource_id)
        return await self.visibility.current(resource_type, resource_id)

    # ---- conditional matching ------------------------------------------------------------------------

    async def find(self, resource_type: str, params: Sequence[tuple[str, str]], limit: int = 2,
                   restriction: Criterion | None = None) -> list[StoredResource]:
        """Resources matching conditional criteria (at most ``limit``), within ``restriction`` (the caller's
        access criterion) when given. Unknown parameters are an error here: ignoring a misspelt criterion
        would match everything."""
        parsed = parse_search(resource_type, list(params), self.registry, default_count=limit,
                              max_count=self.max_count, base_urls=self.base_urls)
        if parsed.unknown:
            raise FhirError(400, "invalid", "Unknown search parameter(s) in conditional criteria: "
                            + ", ".join(sorted(parsed.unknown)))
        parsed.query.count = limit
        if restriction is not None:
            parsed.query.criteria.append(restriction)
        page = await self.store.search(parsed.query)
        return page.resources

    async def match(self, resource_type: str, params: Sequence[tuple[str, str]]) -> list[StoredResource]:
        """Conditional matching for the caller: ``find`` among what it may see (at most two matches)."""
        return await self.find(resource_type, params, restriction=self.visibility.restriction(resource_type))

    # ---- preparation -----------------------------------------------------------------------------

    def prepare(self, resource_type: str, resource_id: str, body: dict[str, Any], *,
                trusted: bool = False, checked_elsewhere: dict[str, Any] | None = None) -> dict[str, Any]:
        """Validate ``body`` as ``resource_type`` with ``resource_id`` and return the dict to store.
        ``trusted`` skips the model validation for resources the server itself builds from validated parts
        (CLR obligations), whose shapes unit tests validate. ``checked_elsewhere`` is a resource whose
        validation the caller runs itself and applies before committing (a row batch's worker process, see
        :mod:`fhir_clr.engine.validation_pool`): a resource equal to it is not validated again here."""
        resource = with_identity(body, resource_id)
        if not trusted and (checked_elsewhere is None or resource != checked_elsewhere):
            validate_resource(resource, resource_type)
        return resource

    def change(self, op: ChangeOp, resource_type: str, resource_id: str, expected: int,
               resource: dict[str, Any] | None, match_keys: Sequence[str] = (), steal: bool = False, *,
               method: WriteMethod | None = None) -> Change:
        """A store Change with the index values of ``resource`` extracted; ``method`` is the HTTP method of the
        interaction (recorded in history; None for the server's own side-effect writes)."""
        index = self.registry.extract(resource) if resource is not None else None
        return Change(op=op, resource_type=resource_type, resource_id=resource_id,
                      expected_version=expected, resource=resource, index=index,
                      match_keys=tuple(match_keys), steal_match_keys=steal, method=method)

    # ---- plans -----------------------------------------------------------------------------------

    async def plan_create(self, resource_type: str, body: dict[str, Any], if_none_exist: str | None = None,
                          *, resource_id: str | None = None, steal_keys: bool = False,
                          method: WriteMethod = WriteMethod.POST) -> Plan:
        """Plan a create (``POST``, or the ``PUT`` of a conditional update that matched nothing). With
        ``If-None-Exist``: one match (among what the caller may see) -> no write, 200; several -> 412."""
        require_type(resource_type)
        keys: tuple[str, ...] = ()
        if if_none_exist:
            params = parse_criteria(if_none_exist)
            found = await self.match(resource_type, params)
            if len(found) > 1:
                raise FhirError(412, "multiple-matches",
                                "If-None-Exist criteria match more than one resource")
            if found:
                return Plan(change=None, status=200, existing=found[0])
            keys = (match_key(resource_type, params, self.visibility.scope),)
        rid = resource_id or new_id()
        resource = self.visibility.stamp(self.prepare(resource_type, rid, body), None)
        return Plan(self.change(ChangeOp.CREATE, resource_type, rid, 0, resource, keys, steal_keys, method=method),
                    201)

    async def plan_update(self, resource_type: str, resource_id: str, body: dict[str, Any],
                          if_match: int | None = None, *, create_only: bool = False,
                          checked_elsewhere: dict[str, Any] | None = None,
                          read_ahead: Mapping[tuple[str, str], StoredResource] | None = None) -> Plan:
        """Plan an update (``PUT``), creating the resource when it does not exist (update-as-create; for
        unrestricted callers only: a restricted caller gets 404 for an id it cannot see). ``create_only``
        (``If-None-Match: *``) refuses to replace a live version (412); ``checked_elsewhere`` as in
        :meth:`prepare`. ``read_ahead`` holds current versions the caller read for a batch of writes, through
        this planner's visibility (the version is read here when it is not among them)."""
        require_type(resource_type)
        validate_id(resource_id)
        body_id = body.get("id")
        if body_id is None:
            raise FhirError(400, "required", "The resource in an update must carry an id equal to the URL id",
                            expression=f"{resource_type}.id")
        if body_id != resource_id:
            raise FhirError(400, "invalid", "The resource id does not match the id in the URL",
                            expression=f"{resource_type}.id")
        current = (read_ahead or {}).get((resource_type, resource_id))
        if current is None:
            current = await self._current(resource_type, resource_id)
        if current is None and self.visibility.scope is not None:
            raise not_found(resource_type, resource_id)
        check_if_match(current, if_match)
        check_if_none_match(current, create_only)
        resource = self.prepare(resource_type, resource_id, body, checked_elsewhere=checked_elsewhere)
        return self._update_plan(resource_type, resource_id, resource, current)

    def _update_plan(self, resource_type: str, resource_id: str, resource: dict[str, Any],
                     current: StoredResource | None, method: WriteMethod = WriteMethod.PUT) -> Plan:
        """An update of ``current`` to ``resource`` (a create when there is no live ``current``), keeping the
        server's created-by tag; ``method`` is the interaction's (``PUT`` or ``PATCH``)."""
        resource = self.visibility.stamp(resource, current)
        if current is None or current.deleted:
            expected = current.version if current else 0
            return Plan(self.change(ChangeOp.CREATE, resource_type, resource_id, expected, resource, method=method),
                        201)
        if same_content(resource, current.body):
            return Plan(change=None, status=200, existing=current)
        return Plan(self.change(ChangeOp.UPDATE, resource_type, resource_id, current.version, resource,
                                method=method), 200, replaced=current)

    async def plan_conditional_update(self, resource_type: str, criteria: str, body: dict[str, Any],
                                      if_match: int | None = None, *, steal_keys: bool = False) -> Plan:
        """Plan ``PUT [type]?criteria``: no match -> create, one match -> update it, several -> 412; matching
        only among what the caller may see."""
        require_type(resource_type)
        params = parse_criteria(criteria)
        found = await self.match(resource_type, params)
        if len(found) > 1:
            raise FhirError(412, "multiple-matches", "Conditional update criteria match more than one resource")
        body_id = body.get("id")
        if found:
            target = found[0]
            if body_id is not None and body_id != target.resource_id:
                raise FhirError(400, "invalid",
                                "The resource id differs from the id of the resource the criteria match",
                                expression=f"{resource_type}.id")
            return await self.plan_update(resource_type, target.resource_id,
                                          {**body, "id": target.resource_id}, if_match)
        if body_id is not None:
            return await self.plan_update(resource_type, body_id, body, if_match)
        return await self.plan_create(resource_type, body, criteria, steal_keys=steal_keys, method=WriteMethod.PUT)

    async def plan_patch(self, resource_type: str, resource_id: str, operations: list[Any] | dict[str, Any],
                         if_match: int | None = None) -> Plan:
        """Plan a JSON Patch (RFC 6902, a list of operations) or a FHIRPath Patch (a Parameters resource) of the
        current version; the result is validated like an update."""
        current = await self.read_live(resource_type, resource_id)
        check_if_match(current, if_match)
        patched = apply_patch(orjson.loads(current.body or b"{}"), operations)
        if patched.get("resourceType") != resource_type or patched.get("id") != resource_id:
            raise FhirError(422, "business-rule", "A patch may not change the resource's type or id")
        resource = self.prepare(resource_type, resource_id, patched)
        return self._update_plan(resource_type, resource_id, resource, current, WriteMethod.PATCH)

    async def plan_delete(self, resource_type: str, resource_id: str, if_match: int | None = None) -> Plan:
        """Plan a delete. Deleting something absent or already deleted writes nothing (still a success)."""
        require_type(resource_type)
        current = await self._current(resource_type, resource_id)
        check_if_match(current, if_match)
        if current is None or current.deleted:
            return Plan(change=None, status=200, existing=current)
        return Plan(self.change(ChangeOp.DELETE, resource_type, resource_id, current.version, None,
                                method=WriteMethod.DELETE), 200, replaced=current)

    async def read_live(self, resource_type: str, resource_id: str) -> StoredResource:
        """The current version, or 404 (never existed, or out of the caller's reach) / 410 (deleted)."""
        require_type(resource_type)
        current = await self._current(resource_type, resource_id)
        if current is None:
            raise not_found(resource_type, resource_id)
        if current.deleted:
            raise FhirError(410, "deleted", f"{resource_type}/{resource_id} has been deleted",
                            headers={"ETag": f'W/"{current.version}"'})
        return current


def apply_patch(document: dict[str, Any], patch: list[Any] | dict[str, Any]) -> dict[str, Any]:
    """Apply a FHIRPath Patch (Parameters) or a JSON Patch (anything else) to ``document``."""
    if isinstance(patch, dict) and is_fhirpath_patch(patch):
        return apply_fhirpath_patch(document, patch)
    return apply_json_patch(document, patch)


def apply_json_patch(document: dict[str, Any], operations: list[Any] | dict[str, Any]) -> dict[str, Any]:
    """Apply RFC 6902 operations to ``document`` (changed in place); a malformed patch is 400, a failed
    ``test`` or an operation that does not fit the document is 422 naming the operation (index, op, path),
    never the document or a value in it."""
    if not isinstance(operations, list):
        raise FhirError(400, "structure", "A JSON Patch document must be a JSON array of operations")
    try:
        steps = [jsonpatch.JsonPatch([operation]) for operation in operations]
    except (jsonpatch.InvalidJsonPatch, jsonpatch.JsonPointerException, TypeError) as exc:
        raise FhirError(400, "structure", f"Malformed JSON Patch: {exc}") from None
    result: Any = document
    for index, step in enumerate(steps):
        try:
            result = step.apply(result, in_place=True)
        except jsonpatch.JsonPatchTestFailed:
            raise FhirError(422, "processing", f"JSON Patch {_describe(index, operations[index])} failed"
                            ) from None
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError,
                IndexError, ValueError):
            raise FhirError(422, "processing", f"JSON Patch {_describe(index, operations[index])} cannot be "
                            "applied to this resource") from None
    if not isinstance(result, dict):
        raise FhirError(422, "processing", "The patched document is not a JSON object")
    return result


def _describe(index: int, operation: dict[str, Any]) -> str:
    """``operation 2 (test /status)``: where a patch failed, in the client's own words."""
    return f"operation {index} ({operation.get('op')} {str(operation.get('path'))[:200]!r})"
