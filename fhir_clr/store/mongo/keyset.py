"""Keyset paging for MongoDB searches and history: sort specifications, opaque page tokens, and the
"strictly after this row" filters that replace ``skip``.

A search sorts on a list of fields, always ending with a unique one (``_id`` or ``rid``) so the order is
total. A param sort key
uses two fields of ``_sort.<param>``: ``x`` (1 when the resource has a value, descending, so missing
values come last in both directions) and ``lo`` (ascending) or ``hi`` (descending). A token stores the
sort values of the boundary row and a fingerprint of the query, so a token is only accepted by the query
that issued it, and token values are checked to be plain scalars before they reach a filter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from fhir_clr.store import paging
from fhir_clr.store.mongo.docs import nested, sort_field
from fhir_clr.store.port import InvalidPageToken
from fhir_clr.store.query import Query, SortKey

SortSpec = list[tuple[str, int]]
_SCALARS = (str, int, float)


def sort_spec(keys: Sequence[SortKey]) -> SortSpec:
    """The MongoDB sort for a query's ``_sort`` keys, ending with a unique field: ``_id`` when sorting by
    id, else ``rid`` (creation order, also the default order), in the direction of the last key."""
    spec: SortSpec = []
    for key in keys:
        direction = -1 if key.descending else 1
        if key.param == "_id":
            spec.append(("_id", direction))
            break
        if key.param == "_lastUpdated":
            spec.append(("lastUpdatedUs", direction))
        else:
            field = f"_sort.{sort_field(key.param)}"
            spec.append((f"{field}.x", -1))
            spec.append((f"{field}.{'hi' if key.descending else 'lo'}", direction))
    if not spec or spec[-1][0] != "_id":
        spec.append(("rid", spec[-1][1] if spec else 1))
    return spec


def reverse(spec: SortSpec) -> SortSpec:
    """The same order read backwards."""
    return [(field, -direction) for field, direction in spec]


def row_values(doc: dict[str, Any], spec: SortSpec) -> list[Any]:
    """The sort values of one document (None where the field is missing)."""
    return [nested(doc, field) for field, _ in spec]


def after_filter(spec: SortSpec, values: Sequence[Any]) -> dict[str, Any]:
    """Documents strictly after the row with ``values`` in ``spec`` order (missing sorts lowest, as in
    MongoDB: first ascending, last descending)."""
    clauses: list[dict[str, Any]] = []
    equal: list[dict[str, Any]] = []
    for (field, direction), value in zip(spec, values, strict=True):
        later = _later(field, direction, value)
        if later is not None:
            clauses.append({"$and": [*equal, later]} if equal else later)
        equal.append({field: {"$exists": False}} if value is None else {field: {"$eq": value}})
    if not clauses:
        return {"_id": {"$in": []}}
    return clauses[0] if len(clauses) == 1 else {"$or": clauses}


def _later(field: str, direction: int, value: Any) -> dict[str, Any] | None:
    if direction > 0:
        return {field: {"$exists": True}} if value is None else {field: {"$gt": value}}
    if value is None:
        return None
    return {"$or": [{field: {"$lt": value}}, {field: {"$exists": False}}]}


# ---- tokens (encoded by the shared ``fhir_clr.store.paging``) ------------------------------------------

@dataclass(frozen=True, slots=True)
class PageToken:
    """A decoded search token: ``forward`` False means "the page before ``values``"."""

    forward: bool
    values: list[Any]


def query_fingerprint(query: Query) -> str:
    """A digest of what a query selects and how it sorts (not its paging fields)."""
    return paging.fingerprint("mongo-search", query.resource_type, query.criteria, query.sort)


def encode_token(fp: str, forward: bool, values: Sequence[Any]) -> str:
    """An opaque token for the page after (``forward``) or before the row with sort ``values``."""
    return paging.encode_token(fp, ["n" if forward else "p", list(values)])


def decode_token(token: str, fp: str, width: int) -> PageToken:
    """Validate and decode a token for the query fingerprinted ``fp`` with a sort of ``width`` fields;
    every value must be a plain scalar, so a forged token cannot smuggle an operator document in."""
    payload = paging.decode_token(token, fp)
    if len(payload) != 2 or payload[0] not in ("n", "p") or not isinstance(payload[1], list):
        raise InvalidPageToken("malformed paging token")
    values = payload[1]
    if len(values) != width or not all(
            v is None or (isinstance(v, _SCALARS) and not isinstance(v, bool)) for v in values):
        raise InvalidPageToken("malformed paging token")
    return PageToken(forward=payload[0] == "n", values=values)
