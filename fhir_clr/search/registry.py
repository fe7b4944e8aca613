"""The SearchParameter registry: every SearchParameter found in the profiles directory, compiled per
resource type into extractors that produce the index entries stored with each resource."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fhir_clr.fhirmodel.allowlist import R4_RESOURCE_TYPES
from fhir_clr.search.extract import IndexWriter, compile_extractor
from fhir_clr.search.paths import Walker, expression_root, expression_roots, split_union
from fhir_clr.store.query import IndexEntries, ParamType

log = logging.getLogger(__name__)

ABSTRACT_BASES = frozenset({"Resource", "DomainResource"})
CORE_URL_PREFIX = "http://hl7.org/fhir/SearchParameter/"
COLUMN_PARAMS = frozenset({"_id", "_lastUpdated"})
"""Answered by stores from resource columns, so never written as index entries."""

MODIFIERS: dict[ParamType, tuple[str, ...]] = {
    ParamType.TOKEN: ("missing", "not"),
    ParamType.REFERENCE: ("missing", "identifier", "type"),
    ParamType.DATE: ("missing",),
    ParamType.STRING: ("missing", "exact", "contains"),
    ParamType.NUMBER: ("missing",),
    ParamType.QUANTITY: ("missing",),
    ParamType.URI: ("missing", "above", "below"),
}
"""Modifiers this server implements, per parameter type (``type`` stands for the ``:[Type]`` modifier)."""


@dataclass(frozen=True, slots=True)
class SearchParamDef:
    """One SearchParameter as it applies to one resource type."""

    code: str
    url: str
    type: ParamType
    bases: tuple[str, ...]
    targets: tuple[str, ...]
    expression: str
    modifiers: tuple[str, ...]
    extractor: Walker
    """Returns the (value, FHIR type) pairs the expression selects in a resource of this type."""
    roots: tuple[str, ...] | None = None
    """The top-level elements the expression reads (None: unknown); a resource with none of them has no value
    for this parameter, so extraction skips it."""


def _expression_for(expression: str, base: str) -> str | None:
    """The part of a (possibly multi-type) expression that applies to ``base``."""
    kept = [part for part in split_union(expression) if expression_root(part) in (base, *ABSTRACT_BASES)]
    return " | ".join(kept) if kept else None


def iter_search_parameters(data: Any) -> Iterable[dict[str, Any]]:
    """SearchParameter resources in a JSON document (a SearchParameter, or a Bundle holding some)."""
    if not isinstance(data, dict):
        return
    if data.get("resourceType") == "SearchParameter":
        yield data
    elif data.get("resourceType") == "Bundle":
        for entry in data.get("entry", ()):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if isinstance(resource, dict) and resource.get("resourceType") == "SearchParameter":
                yield resource


class SearchParamRegistry:
    """SearchParameters by resource type and code, with compiled extractors.

    When two SearchParameters define the same code for a type, a non-core one (an IG's or ours) wins over
    the FHIR core one; among equals the one loaded later wins.
    """

    def __init__(self, resources: Iterable[dict[str, Any]], *, base_urls: Sequence[str] = ()) -> None:
        self._writer = IndexWriter(base_urls)
        self._by_type: dict[str, dict[str, SearchParamDef]] = {}
        self._resources: dict[str, dict[str, Any]] = {}
        self._indexed: dict[str, list[SearchParamDef]] = {}
        """Per type, the parameters written as index entries (built on first use)."""
        for resource in resources:
            self._add(resource)

    @classmethod
    def from_directory(cls, directory: Path | str, *, base_urls: Sequence[str] = ()) -> SearchParamRegistry:
        """Load every SearchParameter in the ``*.json`` files of ``directory`` (sorted by file name)."""
        found: list[dict[str, Any]] = []
        for path in sorted(Path(directory).glob("*.json")):
            try:
                data = orjson.loads(path.read_bytes())
            except orjson.JSONDecodeError:
                log.warning("skipping unreadable profiles file %s", path.name)
                continue
            found.extend(iter_search_parameters(data))
        return cls(found, base_urls=base_urls)

    # ---- loading -------------------------------------------------------------------------------------

    def _add(self, resource: dict[str, Any]) -> None:
        try:
            param_type = ParamType(resource["type"])
            code, url, expression = resource["code"], resource["url"], resource.get("expression") or ""
        except (KeyError, ValueError):
            log.warning("skipping SearchParameter %s: unsupported or incomplete", resource.get("url"))
            return
        if param_type is ParamType.SPECIAL or not expression:
            return
        bases = tuple(resource.get("base", ()))
        targets = tuple(resource.get("target", ()))
        modifiers = MODIFIERS[param_type]
        added = False
        for base in bases:
            types = sorted(R4_RESOURCE_TYPES) if base in ABSTRACT_BASES else [base] if base in R4_RESOURCE_TYPES \
                else []
            for resource_type in types:
                own = _expression_for(expression, base)
                if own is None:
                    continue
                current = self._by_type.get(resource_type, {}).get(code)
                if current is not None and not current.url.startswith(CORE_URL_PREFIX) \
                        and url.startswith(CORE_URL_PREFIX):
                    continue
                definition = SearchParamDef(code=code, url=url, type=param_type, bases=bases, targets=targets,
                                            expression=own, modifiers=modifiers,
                                            extractor=compile_extractor(own, resource_type),
                                            roots=expression_roots(own, resource_type))
                self._by_type.setdefault(resource_type, {})[code] = definition
                self._indexed.pop(resource_type, None)
                added = True
        if added:
            self._resources[url] = resource

    # ---- lookups -------------------------------------------------------------------------------------

    def get(self, resource_type: str, code: str) -> SearchParamDef | None:
        """The parameter ``code`` of ``resource_type``, if defined."""
        return self._by_type.get(resource_type, {}).get(code)

    def for_type(self, resource_type: str) -> dict[str, SearchParamDef]:
        """Every parameter of ``resource_type`` by code (a copy)."""
        return dict(self._by_type.get(resource_type, {}))

    def types(self) -> set[str]:
        """Resource types that have at least one parameter."""
        return set(self._by_type)

    def resources(self) -> list[dict[str, Any]]:
        """The loaded SearchParameter resources (for REST reads and the CapabilityStatement)."""
        return list(self._resources.values())

    # ---- extraction ----------------------------------------------------------------------------------

    def extract(self, resource: dict[str, Any]) -> IndexEntries:
        """The index entries of every parameter of the resource's type."""
        entries = IndexEntries()
        add = self._writer.add
        for definition in self._indexed_params(resource.get("resourceType", "")):
            if definition.roots is not None and resource.keys().isdisjoint(definition.roots):
                continue
            values = definition.extractor(resource)
            if values:
                add(entries, definition.type, definition.code, values)
        return entries

    def _indexed_params(self, resource_type: str) -> list[SearchParamDef]:
        """The parameters of ``resource_type`` that are written as index entries."""
        found = self._indexed.get(resource_type)
        if found is None:
            found = self._indexed[resource_type] = [d for code, d in self._by_type.get(resource_type, {}).items()
                                                    if code not in COLUMN_PARAMS]
        return found

    def extract_param(self, resource: dict[str, Any], code: str) -> IndexEntries:
        """The index entries of one parameter (empty if the type has no such parameter)."""
        entries = IndexEntries()
        definition = self.get(resource.get("resourceType", ""), code)
        if definition is not None:
            self._writer.add(entries, definition.type, code, definition.extractor(resource))
        return entries
