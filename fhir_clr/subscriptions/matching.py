"""Subscription filter criteria (R4 Subscriptions Backport IG) parsed once and matched in memory.

A topic-based subscription narrows its topic with ``backport-filter-criteria`` values such as
``owner=Organization/123``, ``status:not=draft&intent=order`` or ``Task?owner=Organization/123``. When a
resource changes, every subscription's filter is checked against the new version without a database query,
so ``ResourceFilter.matches`` must agree exactly with the store's search for the same parameters: it parses
them with the search parser (``parse_search``) and evaluates the resulting conditions against the resource's
index entries (``fhir_clr.subscriptions.matching_values``).

Only plain parameters are supported: chains, ``_has``, full-text and result controls are refused.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from fhir_clr.errors import FhirError
from fhir_clr.search.parse import parse_search
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.query import Condition, IndexEntries
from fhir_clr.subscriptions.matching_values import condition_matches

NOT_FILTERS = frozenset({
    "_sort", "_count", "_include", "_revinclude", "_summary", "_elements", "_total", "_format", "_pretty",
    "_page_token", "_contained", "_containedType", "_text", "_content", "_filter", "_query", "_list", "_has",
})
"""Search parameters that have no meaning (or no support) in a subscription filter."""


class FilterError(ValueError):
    """A filter criteria value that cannot be used; ``param`` names the offending parameter when known."""

    def __init__(self, param: str | None, message: str) -> None:
        super().__init__(f"Filter parameter '{param}': {message}" if param else message)
        self.param = param


@dataclass(frozen=True, slots=True)
class ResourceFilter:
    """The AND of the conditions of a subscription's filter criteria on one resource type."""

    resource_type: str
    conditions: tuple[Condition, ...]
    registry: SearchParamRegistry = field(repr=False, compare=False)

    @property
    def params(self) -> frozenset[str]:
        """The parameter codes used (to check against a topic's ``canFilterBy``)."""
        return frozenset(cond.param for cond in self.conditions)

    def matches(self, resource: dict[str, Any], index: IndexEntries | None = None) -> bool:
        """True when ``resource`` is of the filter's type and satisfies every condition. ``index`` is
        ``registry.extract(resource)`` when the caller already has it (computed here otherwise)."""
        if resource.get("resourceType") != self.resource_type:
            return False
        if not self.conditions:
            return True
        if index is None:
            index = self.registry.extract(resource)
        now_us = time.time_ns() // 1000
        return all(condition_matches(cond, resource, index, now_us) for cond in self.conditions)


def parse_filter(resource_type: str, criteria: Sequence[str], registry: SearchParamRegistry,
                 base_urls: Sequence[str] = ()) -> ResourceFilter:
    """Parse backport filter criteria for resources of ``resource_type``.

    Each string is ``param[:modifier]=value``, ``Type.param=value`` or the query form ``Type?a=b&c=d``
    (names and values may be percent-encoded); parameters within a string and across strings are AND-ed,
    commas inside a value OR. ``base_urls`` are this server's base URLs (absolute references under them
    match local ``Type/id`` references). Raises ``FilterError`` for unknown or unsupported parameters, a
    prefix naming another resource type, and malformed values.
    """
    conditions: list[Condition] = []
    for text in criteria:
        for name, value in _pairs(resource_type, text):
            conditions.append(_condition(resource_type, name, value, registry, base_urls))
    return ResourceFilter(resource_type, tuple(conditions), registry)


def _pairs(resource_type: str, text: str) -> list[tuple[str, str]]:
    """The ``(name, value)`` pairs of one criteria string, type qualifiers checked and removed."""
    query = text.strip()
    prefix, question, rest = query.partition("?")
    if question and "=" not in prefix:  # the query form ``Type?...`` (a value may itself hold a '?')
        _check_type(resource_type, prefix, None)
        query = rest
        if not query:
            return []
    elif not query:
        raise FilterError(None, "empty filter criteria")
    pairs: list[tuple[str, str]] = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        name, value = unquote(name), unquote(value)
        if not eq or not name:
            raise FilterError(name or None, "expected param=value")
        head, dot, rest = name.partition(".")
        if dot and head[:1].isupper():
            _check_type(resource_type, head, rest)
            name = rest
        pairs.append((name, value))
    return pairs


def _check_type(resource_type: str, named: str, param: str | None) -> None:
    if named != resource_type:
        raise FilterError(param, f"the filter names resource type '{named}' but applies to {resource_type}")


def _condition(resource_type: str, name: str, value: str, registry: SearchParamRegistry,
               base_urls: Sequence[str]) -> Condition:
    """The condition of one ``name=value`` pair (through the search parser, so both agree)."""
    code = name.partition(":")[0]
    if code in NOT_FILTERS or code.startswith("_has"):
        raise FilterError(name, "not supported in subscription filters")
    if "." in name:
        raise FilterError(name, "chained parameters are not supported in subscription filters")
    try:
        parsed = parse_search(resource_type, [(name, value)], registry, default_count=1, max_count=1,
                              base_urls=base_urls)
    except FhirError as exc:
        raise FilterError(name, str(exc)) from None
    if parsed.unknown:
        raise FilterError(name, f"unknown search parameter for {resource_type}")
    [criterion] = parsed.query.criteria
    if not isinstance(criterion, Condition):
        raise FilterError(name, "only plain parameters are supported in subscription filters")
    return criterion
