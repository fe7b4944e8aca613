"""Compile the backend-neutral search AST (``fhir_clr.store.query``) into MongoDB filter documents over
the layout described in ``fhir_clr.store.mongo_docs``.

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
"""``ap`` matches within 10% of the value (numbers, quantities) or of its distance from now (dates)."""


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
    if cond.param == "_id":
        return _id_filter(resource_type, cond)
    if cond.param == "_lastUpdated":
        return any_of([_range_on_point("lastUpdatedUs", v) for v in cond.values if isinstance(v, RangeValue)])
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
    ids = [f"{resource_type}/{v.code}" for v in cond.values if isinstance(v, TokenValue) and v.code is not None]
    if cond.modifier == "missing":
        return NOTHING if _wants_missing(cond) else {}
    return {"_id": {"$nin" if cond.modifier == "not" else "$in": ids}}


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
        if value.system is None:
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
    return _elem("ref", param, {"v": {"$regex": "^[A-Za-z]+/" + re.escape(value.ref) + "$"}})


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
        prefixes = [value.uri[:i] for i in range(1, len(value.uri) + 1)]
        return _elem("uri", param, {"v": {"$in": prefixes}})
    return _elem("uri", param, {"v": {"$eq": value.uri}})


# ---- ordered values ---------------------------------------------------------------------------------

def _approx_margin(value: RangeValue, ptype: ParamType) -> float:
    if ptype is ParamType.DATE:
        now_us = time.time() * 1_000_000
        return abs(now_us - (value.lo + value.hi) / 2) * _APPROX
    return abs((value.lo + value.hi) / 2) * _APPROX


def _range_match(value: RangeValue, ptype: ParamType) -> Filter:
    """Element-level match of a stored range ``[lo, hi]`` against a prefixed search range."""
    lo, hi = value.lo, value.hi
    prefix = value.prefix
    if prefix is Prefix.EQ:
        match: Filter = {"lo": {"$gte": lo}, "hi": {"$lte": hi}}
    elif prefix is Prefix.NE:
        match = {"$or": [{"lo": {"$lt": lo}}, {"hi": {"$gt": hi}}]}
    elif prefix is Prefix.GT:
        match = {"hi": {"$gt": hi}}
    elif prefix is Prefix.LT:
        match = {"lo": {"$lt": lo}}
    elif prefix is Prefix.GE:
        match = {"hi": {"$gte": lo}}
    elif prefix is Prefix.LE:
        match = {"lo": {"$lte": hi}}
    elif prefix is Prefix.SA:
        match = {"lo": {"$gt": hi}}
    elif prefix is Prefix.EB:
        match = {"hi": {"$lt": lo}}
    else:
        margin = _approx_margin(value, ptype)
        match = {"lo": {"$lte": hi + margin}, "hi": {"$gte": lo - margin}}
    if ptype is ParamType.QUANTITY:
        if value.system is not None:
            match["s"] = {"$eq": value.system}
        if value.code is not None:
            match["c"] = {"$eq": value.code}
    return match


def _range_on_point(field: str, value: RangeValue) -> Filter:
    """A prefixed search range against a single instant column (``lastUpdatedUs``)."""
    lo, hi = value.lo, value.hi
    match value.prefix:
        case Prefix.EQ:
            return {field: {"$gte": lo, "$lte": hi}}
        case Prefix.NE:
            return {"$or": [{field: {"$lt": lo}}, {field: {"$gt": hi}}]}
        case Prefix.GT | Prefix.SA:
            return {field: {"$gt": hi}}
        case Prefix.LT | Prefix.EB:
            return {field: {"$lt": lo}}
        case Prefix.GE:
            return {field: {"$gte": lo}}
        case Prefix.LE:
            return {field: {"$lte": hi}}
        case _:
            margin = _approx_margin(value, ParamType.DATE)
            return {field: {"$gte": lo - margin, "$lte": hi + margin}}
