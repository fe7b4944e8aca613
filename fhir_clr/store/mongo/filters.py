"""Compile the backend-neutral search AST (``fhir_clr.store.query``) into MongoDB filter documents over
the layout described in ``fhir_clr.store.mongo.docs``.

Safety rule: a search value only ever appears in a *value* position, behind an operator this module chose
(``$eq``, ``$in``, ``$gt``…, or a regex built with ``re.escape``). Field names come from fixed strings and
param codes from the SearchParameter registry, never from request values, so a value such as ``$where``
or ``{"$gt": ""}`` is compared literally.

Chains and ``_has`` need a first query; the store runs it and passes the resulting keys to
``chain_filter`` / ``ids_filter``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import Any

from fhir_clr.store.query import (
    Condition,
    ParamType,
    Prefix,
    RangeValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
)

Filter = dict[str, Any]
NOTHING: Filter = {"_id": {"$in": []}}
"""A filter no document matches."""

_S = "_search"
_KIND = {ParamType.DATE: "date", ParamType.NUMBER: "num", ParamType.QUANTITY: "qty"}
_APPROX = 0.1
"""``ap`` widens numbers by 10% of their value and dates by 10% of their distance from now."""


def all_of(parts: Sequence[Filter]) -> Filter:
    """AND of filters (``{}`` when empty)."""
    parts = [p for p in parts if p]
    if not parts:
        return {}
    return parts[0] if len(parts) == 1 else {"$and": list(parts)}


def any_of(parts: Sequence[Filter]) -> Filter:
    """OR of filters (matches nothing when empty)."""
    if not parts:
        return NOTHING
    return parts[0] if len(parts) == 1 else {"$or": list(parts)}


def _none_of(part: Filter) -> Filter:
    return {"$nor": [part]}


def _elem(kind: str, param: str, match: Filter) -> Filter:
    return {f"{_S}.{kind}": {"$elemMatch": {"p": {"$eq": param}, **match}}}


def _prefix_regex(text: str) -> dict[str, str]:
    return {"$regex": "^" + re.escape(text)}


def base_filter(resource_type: str) -> Filter:
    """Current, non-deleted resources of one type."""
    return {"type": {"$eq": resource_type}, "deleted": {"$eq": False}}


def condition_filter(resource_type: str, cond: Condition) -> Filter:
    """The filter for one (non-chained) condition on ``resource_type``."""
    if cond.param in ("_id", "_lastUpdated") and cond.modifier == "missing":
        return NOTHING if _wants_missing(cond) else {}
    if cond.param == "_id":
        return _id_filter(resource_type, cond)
    if cond.param == "_lastUpdated":
        return any_of([_range(v, "lastUpdatedUs", "lastUpdatedUs", is_date=True)
                       for v in cond.values if isinstance(v, RangeValue)])
    if cond.modifier == "missing":
        return _missing_filter(cond)
    if cond.modifier == "identifier":
        return _token_filter(f"{cond.param}:identifier", cond.values)
    if cond.type is ParamType.TOKEN:
        matched = _token_filter(cond.param, cond.values)
        return _none_of(matched) if cond.modifier == "not" else matched
    if cond.type is ParamType.REFERENCE:
        return any_of([_reference(cond.param, v) for v in cond.values if isinstance(v, ReferenceValue)])
    if cond.type in _KIND:
        kind = _KIND[cond.type]
        return any_of([_elem(kind, cond.param, _range_match(v, cond.type))
                       for v in cond.values if isinstance(v, RangeValue)])
    if cond.type is ParamType.STRING:
        return any_of([_string(cond.param, v, cond.modifier) for v in cond.values if isinstance(v, StringValue)])
    if cond.type is ParamType.URI:
        return any_of([_uri(cond.param, v, cond.modifier) for v in cond.values if isinstance(v, UriValue)])
    return NOTHING


def chain_filter(param: str, targets: Sequence[str]) -> Filter:
    """Resources whose reference param ``param`` points at one of ``targets`` (``Type/id`` keys)."""
    if not targets:
        return NOTHING
    return _elem("ref", param, {"v": {"$in": list(targets)}})


def ids_filter(doc_ids: Sequence[str]) -> Filter:
    """Resources with one of the given ``_id`` (``Type/id``) keys."""
    return {"_id": {"$in": list(doc_ids)}}


# ---- per type ---------------------------------------------------------------------------------------

def _id_filter(resource_type: str, cond: Condition) -> Filter:
    codes = [v.code for v in cond.values if isinstance(v, TokenValue)]
    negate = cond.modifier == "not"
    if any(code is None for code in codes):
        return NOTHING if negate else {}
    return {"_id": {"$nin" if negate else "$in": [f"{resource_type}/{code}" for code in codes]}}


def _wants_missing(cond: Condition) -> bool:
    first = cond.values[0] if cond.values else None
    return isinstance(first, TokenValue) and first.code == "true"


def _missing_filter(cond: Condition) -> Filter:
    if _wants_missing(cond):
        return {f"{_S}.has": {"$ne": cond.param}}
    return {f"{_S}.has": {"$eq": cond.param}}


def _token_filter(param: str, values: Sequence[Any]) -> Filter:
    any_system: list[str] = []
    clauses: list[Filter] = []
    for value in values:
        if not isinstance(value, TokenValue):
            continue
        if value.system is None and value.code is None:
            clauses.append(_elem("tok", param, {}))
        elif value.system is None:
            any_system.append(value.code or "")
        elif value.code is None:
            clauses.append(_elem("tok", param, {"s": {"$eq": value.system}}))
        else:
            clauses.append(_elem("tok", param, {"s": {"$eq": value.system}, "c": {"$eq": value.code}}))
    if any_system:
        clauses.insert(0, _elem("tok", param, {"c": {"$in": any_system}}))
    return any_of(clauses)


def _reference(param: str, value: ReferenceValue) -> Filter:
    if not value.bare_id:
        return _elem("ref", param, {"v": {"$eq": value.ref}})
    if value.types:
        return _elem("ref", param, {"v": {"$in": [f"{t}/{value.ref}" for t in value.types]}})
    # A bare id matches a local reference of any type: "<Type>/<id>" with no other '/' or ':'.
    return _elem("ref", param, {"v": {"$regex": "^[^/:]+/" + re.escape(value.ref) + "$"}})


def _string(param: str, value: StringValue, modifier: str | None) -> Filter:
    if modifier == "exact":
        return _elem("str", param, {"e": {"$eq": value.raw}})
    if modifier == "contains":
        return _elem("str", param, {"n": {"$regex": re.escape(value.norm)}})
    return _elem("str", param, {"n": _prefix_regex(value.norm)})


def _uri(param: str, value: UriValue, modifier: str | None) -> Filter:
    if modifier == "below":
        return _elem("uri", param, {"v": _prefix_regex(value.uri)})
    if modifier == "above":
        prefixes = [value.uri[:i] for i in range(len(value.uri) + 1)]
        return _elem("uri", param, {"v": {"$in": prefixes}})
    return _elem("uri", param, {"v": {"$eq": value.uri}})


# ---- ordered values ---------------------------------------------------------------------------------

def _range(value: RangeValue, lo: str, hi: str, *, is_date: bool) -> Filter:
    """FHIR R4 prefix semantics between a stored range ``[lo, hi]`` (field names; the same field for a
    single instant) and the search range — the same rules as the SQLite adapter."""
    slo, shi = (int(value.lo), int(value.hi)) if is_date else (value.lo, value.hi)
    contained: Filter = {"$and": [{lo: {"$gte": slo}}, {hi: {"$lte": shi}}]}
    match value.prefix:
        case Prefix.EQ:
            return contained
        case Prefix.NE:
            return {"$nor": [contained]}
        case Prefix.GT:
            return {hi: {"$gt": shi}}
        case Prefix.LT:
            return {lo: {"$lt": slo}}
        case Prefix.GE:
            return {"$or": [{hi: {"$gt": shi}}, contained]}
        case Prefix.LE:
            return {"$or": [{lo: {"$lt": slo}}, contained]}
        case Prefix.SA:
            return {lo: {"$gt": shi}}
        case Prefix.EB:
            return {hi: {"$lt": slo}}
        case _:
            if is_date:
                gap = abs(time.time_ns() // 1_000 - (slo + shi) // 2) // 10
                low, high = slo - gap, shi + gap
            else:
                low, high = slo - abs(slo) * _APPROX, shi + abs(shi) * _APPROX
            return {"$and": [{lo: {"$lte": high}}, {hi: {"$gte": low}}]}


def _range_match(value: RangeValue, ptype: ParamType) -> Filter:
    """Element-level match of one stored range (and, for quantities, its unit) against a search value."""
    match = _range(value, "lo", "hi", is_date=ptype is ParamType.DATE)
    if ptype is ParamType.QUANTITY:
        unit = [{field: {"$eq": v}} for field, v in (("s", value.system), ("c", value.code)) if v is not None]
        if unit:
            return {"$and": [match, *unit]}
    return match
