"""The one access gate of the engine: what a caller may see, decided before anything about a resource is read
into an answer (see ``docs/security.md``).

Every write plan reads the version it changes through ``Visibility.current``, which answers exactly as if the
resource were absent when the caller may not see it; reads, history, conditional matching and the references a
write makes go through the same object. Unrestricted callers (the plan, CLI, server-internal work) pay one
plain store read and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import orjson

from fhir_clr.engine.access import CREATED_BY_SYSTEM, FULL_ACCESS, AccessPolicy, created_by_tags, is_created_by_tag
from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.allowlist import is_served_type
from fhir_clr.search.values import is_local_reference
from fhir_clr.store.port import Store, StoredResource
from fhir_clr.store.query import Condition, Criterion, ParamType, Query, TokenValue


class Visibility:
    """The caller's view of one store (``access`` decides; ``FULL_ACCESS`` sees everything)."""

    def __init__(self, store: Store, access: AccessPolicy = FULL_ACCESS) -> None:
        self.store = store
        self.access = access

    def restriction(self, resource_type: str) -> Criterion | None:
        """The caller's criterion for ``resource_type`` (None: sees all of it)."""
        return self.access.restriction(resource_type)

    @property
    def scope(self) -> str | None:
        """What conditional match keys are scoped to: the organization of a restricted caller, else None."""
        return self.access.organization if self.access.role != "plan" else None

    # ---- current versions ----------------------------------------------------------------------------

    async def current(self, resource_type: str, resource_id: str) -> StoredResource | None:
        """The stored current version when the caller may see it; None exactly as for an absent resource.
        A restricted caller sees live resources only (a deleted one is absent to it); an unrestricted caller
        gets the tombstone of a deleted resource."""
        restriction = self.restriction(resource_type)
        if restriction is None:
            return await self.store.read(resource_type, resource_id)
        query = Query(resource_type, [_ids_condition({resource_id}), restriction], count=1)
        found = (await self.store.search(query)).resources
        return found[0] if found else None

    async def visible_ids(self, resource_type: str, ids: set[str]) -> set[str]:
        """The ids among ``ids`` of live resources the caller may see (one query)."""
        restriction = self.restriction(resource_type)
        if restriction is None or not ids:
            return ids
        query = Query(resource_type, [_ids_condition(ids), restriction], count=len(ids))
        return {r.resource_id for r in (await self.store.search(query)).resources}

    async def visible(self, resources: Sequence[StoredResource]) -> list[StoredResource]:
        """The resources the caller may see (current, live versions decide), in the given order."""
        by_type: dict[str, set[str]] = {}
        for resource in resources:
            if self.restriction(resource.resource_type) is not None:
                by_type.setdefault(resource.resource_type, set()).add(resource.resource_id)
        if not by_type:
            return list(resources)
        hidden: set[tuple[str, str]] = set()
        for resource_type, ids in by_type.items():
            allowed = await self.visible_ids(resource_type, ids)
            hidden.update((resource_type, i) for i in ids - allowed)
        return [r for r in resources if (r.resource_type, r.resource_id) not in hidden]

    # ---- versions (history, vread) -------------------------------------------------------------------

    async def readable_versions(self, versions: Sequence[StoredResource]) -> list[StoredResource]:
        """The history entries the caller may read: for a type whose visibility is in its own body, the
        version's body decides; for others, the resource's current visibility (or the version's own
        created-by tag). Restricted callers get no delete tombstones."""
        if all(self.restriction(v.resource_type) is None for v in versions):
            return list(versions)
        readable: dict[int, bool] = {}
        derived: list[StoredResource] = []
        for position, version in enumerate(versions):
            if self.restriction(version.resource_type) is None:
                readable[position] = True
            elif version.deleted or version.body is None:
                readable[position] = False
            elif self.access.names_caller(version.resource_type, orjson.loads(version.body)):
                readable[position] = True
            elif self.access.visibility_in_body(version.resource_type):
                readable[position] = False
            else:
                derived.append(version)
        seen = {(v.resource_type, v.resource_id) for v in await self.visible(derived)}
        return [v for position, v in enumerate(versions)
                if readable.get(position, (v.resource_type, v.resource_id) in seen)]

    # ---- references a write makes --------------------------------------------------------------------

    async def check_references(self, resource: dict[str, Any], previous: bytes | None = None,
                               written: frozenset[str] = frozenset()) -> None:
        """Refuse (422, as for a resource that does not exist) a write by a restricted caller that adds a
        reference to a resource it may not see, and (422) a reference it writes in a form that is not plainly
        ``Type/id`` or an absolute URL (whitespace, ``./``, trailing slashes, queries: spellings the rule could
        otherwise miss). An absolute URL whose path ends in ``Type/id`` of a served type is checked like the
        relative reference, whatever its host. References already in ``previous`` (the version replaced), to
        directory types, and to resources in ``written`` (those this transaction creates) are not checked."""
        if self.scope is None:
            return
        before = {_target(ref, lenient=True) for _, ref in _references(orjson.loads(previous) if previous else None)}
        wanted: dict[str, dict[str, str]] = {}
        for path, reference in _references(resource, resource.get("resourceType", "")):
            local = _target(reference)
            if local is None or local in written or local in before:
                continue
            target_type, _, target_id = local.partition("/")
            if self.restriction(target_type) is not None:
                wanted.setdefault(target_type, {}).setdefault(target_id, path)
        for target_type, by_id in wanted.items():
            missing = set(by_id) - await self.visible_ids(target_type, set(by_id))
            if missing:
                target_id = min(missing, key=lambda i: by_id[i])
                raise unknown_reference(by_id[target_id], f"{target_type}/{target_id}")

    # ---- created-by --------------------------------------------------------------------------------------

    def stamp(self, resource: dict[str, Any], replaced: StoredResource | None) -> dict[str, Any]:
        """``resource`` with the server's created-by tag: a client-supplied one is dropped, the one of the
        live version it replaces is carried over, and a restricted caller's create gets its organization's.
        Nothing changes for the common resource without such tags."""
        body = replaced.body if replaced is not None and not replaced.deleted else None
        kept = _created_by_tags(body) if body is not None else []
        if body is None and self.scope is not None:
            kept = [{"system": CREATED_BY_SYSTEM, "code": self.scope}]
        given_meta = resource.get("meta")
        meta: dict[str, Any] = given_meta if isinstance(given_meta, dict) else {}
        given_tags = meta.get("tag")
        tags: list[Any] = given_tags if isinstance(given_tags, list) else []
        others = [t for t in tags if not is_created_by_tag(t)]
        if not kept and len(others) == len(tags):
            return resource
        new_meta = {**meta, "tag": [*others, *kept]}
        if not new_meta["tag"]:
            del new_meta["tag"]
        if new_meta:
            return {**resource, "meta": new_meta}
        return {k: v for k, v in resource.items() if k != "meta"}


def unknown_reference(path: str, reference: str) -> FhirError:
    """The one answer for a reference to something absent or hidden (never says which)."""
    return FhirError(422, "processing", f"{path} references {reference}, which does not exist", expression=path)


def _target(reference: str, *, lenient: bool = False) -> str | None:
    """The served ``Type/id`` a reference names (None: contained, a URN, or no served type), for the reference
    rule. A malformed spelling is a 422 (``lenient``: None, for references already stored)."""
    if reference.startswith(("#", "urn:")):
        return None
    text = reference.split("/_history/")[0]
    if "://" in text and not any(c.isspace() for c in text):
        parts = urlsplit(text)
        if parts.scheme.lower() not in ("http", "https"):
            return None
        if not parts.query and not parts.fragment and not text.endswith("/"):
            tail = "/".join(parts.path.split("/")[-2:])
            return tail if is_local_reference(tail) and is_served_type(tail.partition("/")[0]) else None
    elif is_local_reference(text):
        return text if is_served_type(text.partition("/")[0]) else None
    if lenient:
        return None
    raise FhirError(422, "invalid", "A reference must be Type/id, an absolute URL, a contained #id or a URN "
                    "(conditional references resolve only in transactions)")


def _ids_condition(ids: set[str]) -> Condition:
    return Condition("_id", ParamType.TOKEN, tuple(TokenValue(None, i) for i in sorted(ids)))


def _created_by_tags(body: bytes) -> list[dict[str, Any]]:
    """The created-by tags of a stored body (a byte search first: most bodies have none)."""
    return created_by_tags(orjson.loads(body)) if _CREATED_BY_BYTES in body else []


_CREATED_BY_BYTES = CREATED_BY_SYSTEM.encode()


def _references(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(element path, reference)`` for every ``reference`` string in a JSON tree
    (``Task.output[0].valueReference``)."""
    if isinstance(value, dict):
        reference = value.get("reference")
        if isinstance(reference, str):
            yield path, reference
        for key, item in value.items():
            if isinstance(item, dict | list):
                yield from _references(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _references(item, f"{path}[{index}]")
