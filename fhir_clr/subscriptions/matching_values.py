"""Evaluate one parsed search ``Condition`` against a single resource and its index entries, in memory.

Mirrors how the store adapters answer the same condition (``fhir_clr.store.sqlite.compiler`` is the
reference): a condition holds when some index entry of its parameter equals one of its OR-ed values
(``:not`` negates that), ``:missing`` asks whether the parameter has any entry at all, and the column
parameters ``_id``/``_lastUpdated`` are read from the resource itself.
"""

from __future__ import annotations

from typing import Any

from fhir_clr.search.values import parse_date_range
from fhir_clr.store.query import (
    Condition,
    IndexEntries,
    ParamType,
    Prefix,
    RangeValue,
    ReferenceValue,
    SearchValue,
    StringValue,
    TokenValue,
    UriValue,
)


def condition_matches(cond: Condition, resource: dict[str, Any], index: IndexEntries, now_us: int) -> bool:
    """Whether ``resource`` (with its index ``index``) satisfies ``cond``; ``now_us`` anchors date ``ap``."""
    if cond.param == "_id":
        return _id_matches(cond, resource.get("id"))
    if cond.param == "_lastUpdated":
        return _last_updated_matches(cond, resource, now_us)
    if cond.modifier == "missing":
        present = any(row[0] == cond.param for row in _rows(index, cond.type))
        return present != _missing_wanted(cond)
    param = f"{cond.param}:identifier" if cond.modifier == "identifier" else cond.param
    rows = [row for row in _rows(index, cond.type) if row[0] == param]
    found = any(_value_matches(cond.type, cond.modifier, value, row, now_us)
                for value in cond.values for row in rows)
    return not found if cond.modifier == "not" else found


def _rows(index: IndexEntries, ptype: ParamType) -> list[tuple[Any, ...]]:
    """The index entries of one parameter type (the store keeps one table per type)."""
    rows: dict[ParamType, list[Any]] = {
        ParamType.TOKEN: index.tokens, ParamType.REFERENCE: index.references, ParamType.DATE: index.dates,
        ParamType.STRING: index.strings, ParamType.NUMBER: index.numbers, ParamType.QUANTITY: index.quantities,
        ParamType.URI: index.uris,
    }
    return rows.get(ptype, [])


def _missing_wanted(cond: Condition) -> bool:
    first = cond.values[0] if cond.values else None
    return isinstance(first, TokenValue) and first.code == "true"


# ---- column parameters ----------------------------------------------------------------------------------

def _id_matches(cond: Condition, resource_id: str | None) -> bool:
    if cond.modifier == "missing":
        return not _missing_wanted(cond)
    codes = [v.code for v in cond.values if isinstance(v, TokenValue)]
    if any(code is None for code in codes):  # ``_id=system|``: any id (the system is ignored)
        return cond.modifier != "not"
    found = resource_id in codes
    return not found if cond.modifier == "not" else found


def _last_updated_matches(cond: Condition, resource: dict[str, Any], now_us: int) -> bool:
    if cond.modifier == "missing":
        return not _missing_wanted(cond)
    text = (resource.get("meta") or {}).get("lastUpdated")
    if not isinstance(text, str):
        return cond.modifier == "not"
    try:
        instant = parse_date_range(text)[0]  # the store keeps lastUpdated as one instant, not a range
    except ValueError:
        return cond.modifier == "not"
    found = any(range_matches(instant, instant, v, is_date=True, now_us=now_us)
                for v in cond.values if isinstance(v, RangeValue))
    return not found if cond.modifier == "not" else found


# ---- index values ---------------------------------------------------------------------------------------

def _value_matches(ptype: ParamType, modifier: str | None, value: SearchValue, row: tuple[Any, ...],
                   now_us: int) -> bool:
    """Whether one index row (``row[0]`` is the param) equals one search value."""
    if isinstance(value, TokenValue):
        return token_matches(value, row[1], row[2])
    if isinstance(value, ReferenceValue):
        return reference_matches(value, row[1])
    if isinstance(value, StringValue):
        return string_matches(value, modifier, row[1], row[2])
    if isinstance(value, UriValue):
        return uri_matches(value, modifier, row[1])
    if ptype is ParamType.QUANTITY:
        return (range_matches(row[1], row[2], value, is_date=False, now_us=now_us)
                and (value.system is None or (row[3] or "") == value.system)
                and (value.code is None or (row[4] or "") == value.code))
    return range_matches(row[1], row[2], value, is_date=ptype is ParamType.DATE, now_us=now_us)


def token_matches(value: TokenValue, system: str | None, code: str) -> bool:
    """``code``, ``system|code``, ``|code`` (no system) and ``system|`` (any code)."""
    return ((value.code is None or code == value.code)
            and (value.system is None or (system or "") == value.system))


def reference_matches(value: ReferenceValue, ref: str) -> bool:
    """A normalised reference against ``Type/id``, an absolute URL or a bare id (of ``value.types``)."""
    if not value.bare_id:
        return ref == value.ref
    if value.types:
        return ref in {f"{t}/{value.ref}" for t in value.types}
    # A bare id matches a local reference of any type: "<Type>/<id>" with no other '/' or ':'.
    head, slash, tail = ref.rpartition("/")
    return bool(slash and head) and tail == value.ref and ":" not in ref and "/" not in head


def string_matches(value: StringValue, modifier: str | None, norm: str, exact: str) -> bool:
    """Starts-with on the normalised text by default; ``:exact`` and ``:contains``."""
    if modifier == "exact":
        return norm == value.norm and exact == value.raw
    if modifier == "contains":
        return value.norm in norm
    return norm.startswith(value.norm)


def uri_matches(value: UriValue, modifier: str | None, uri: str) -> bool:
    """Equality by default; ``:below`` (the indexed uri starts with the value) and ``:above`` (the value
    starts with the indexed uri)."""
    if modifier == "below":
        return uri.startswith(value.uri)
    if modifier == "above":
        return value.uri.startswith(uri)
    return uri == value.uri


def range_matches(lo: float, hi: float, value: RangeValue, *, is_date: bool, now_us: int) -> bool:
    """FHIR R4 prefix semantics between an indexed range ``[lo, hi]`` and the search value's range."""
    slo, shi = (int(value.lo), int(value.hi)) if is_date else (value.lo, value.hi)
    contained = lo >= slo and hi <= shi
    match value.prefix:
        case Prefix.EQ:
            return contained
        case Prefix.NE:
            return not contained
        case Prefix.GT:
            return hi > shi
        case Prefix.LT:
            return lo < slo
        case Prefix.GE:
            return hi > shi or contained
        case Prefix.LE:
            return lo < slo or contained
        case Prefix.SA:
            return lo > shi
        case Prefix.EB:
            return hi < slo
        case Prefix.AP:
            if is_date:
                gap = abs(now_us - (slo + shi) // 2) // 10
                low, high = slo - gap, shi + gap
            else:
                low, high = slo - abs(slo) * 0.1, shi + abs(shi) * 0.1
            return lo <= high and hi >= low
    raise ValueError(f"unknown prefix {value.prefix}")
