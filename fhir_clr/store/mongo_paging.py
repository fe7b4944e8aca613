"""Keyset paging for MongoDB searches and history: sort specifications, opaque page tokens, and the
"strictly after this row" filters that replace ``skip``.

A search sorts on a list of fields, always ending with ``_id`` so the order is total. A param sort key
uses two fields of ``_sort.<param>``: ``x`` (1 when the resource has a value, descending, so missing
values come last in both directions) and ``lo`` (ascending) or ``hi`` (descending). A token stores the
sort values of the boundary row and a fingerprint of the query, so a token is only accepted by the query
that issued it, and token values are checked to be plain scalars before they reach a filter.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fhir_clr.store.mongo_docs import nested, sort_field
from fhir_clr.store.port import InvalidPageToken
from fhir_clr.store.query import Query, SortKey

SortSpec = list[tuple[str, int]]
_SCALARS = (str, int, float)


def sort_spec(keys: Sequence[SortKey]) -> SortSpec:
    """The MongoDB sort for a query's ``_sort`` keys (default: ``_id`` ascending), ending with ``_id``."""
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
        spec.append(("_id", spec[-1][1] if spec else 1))
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


# ---- tokens ------------------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PageToken:
    """A decoded search token: ``forward`` False means "the page before ``values``"."""

    forward: bool
    values: list[Any]


def digest(value: object) -> str:
    """A short, stable digest of a value's ``repr`` (dataclasses and tuples of plain values)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:16]


def query_fingerprint(query: Query) -> str:
    """A digest of what a query selects and how it sorts (not its paging fields)."""
    return digest((query.resource_type, query.criteria, query.sort))


def encode_token(fingerprint: str, forward: bool, values: Sequence[Any]) -> str:
    """An opaque, URL-safe token."""
    raw = orjson.dumps({"q": fingerprint, "d": "n" if forward else "p", "k": list(values)})
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: str, fingerprint: str, width: int) -> PageToken:
    """Validate and decode a token for the query with ``fingerprint`` and a sort of ``width`` fields."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidPageToken("malformed paging token") from None
    if not isinstance(data, dict) or data.get("q") != fingerprint or data.get("d") not in ("n", "p"):
        raise InvalidPageToken("the paging token belongs to another query")
    values = data.get("k")
    if (not isinstance(values, list) or len(values) != width
            or not all(v is None or (isinstance(v, _SCALARS) and not isinstance(v, bool)) for v in values)):
        raise InvalidPageToken("malformed paging token")
    return PageToken(forward=data["d"] == "n", values=values)


def encode_history_token(fingerprint: str, seq: int) -> str:
    """A history token: continue below commit sequence ``seq``."""
    return base64.urlsafe_b64encode(orjson.dumps({"h": fingerprint, "s": seq})).rstrip(b"=").decode()


def decode_history_token(token: str, fingerprint: str) -> int:
    """The sequence a history token continues below; InvalidPageToken when it is not ours."""
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError):
        raise InvalidPageToken("malformed paging token") from None
    if not isinstance(data, dict) or data.get("h") != fingerprint or type(data.get("s")) is not int:
        raise InvalidPageToken("the paging token belongs to another history request")
    return data["s"]
