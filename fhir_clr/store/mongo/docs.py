"""Document shapes of the MongoDB store: how a resource version, its search values and its sort keys are
written, and how stored documents become ``StoredResource`` objects again.

``_search`` holds one array per value kind (the attribute pattern; every element names its param ``p``)::

    tok:  {p, s, c}          token; s = system ("" when the coding has none), c = code
    ref:  {p, v}             reference, "Type/id" for local targets, the URL otherwise
    date: {p, lo, hi}        inclusive epoch-microsecond range
    str:  {p, n, e}          normalised and exact string
    num:  {p, lo, hi}        number widened by its precision
    qty:  {p, lo, hi, s, c}  quantity with unit system/code ("" when absent)
    uri:  {p, v}
    has:  [param, ...]       params with at least one value (``:missing``)

``_sort.<param>`` = ``{x: 1, lo, hi}``: the smallest and largest sortable value of a param (ascending
sorts use ``lo``, descending ``hi``); ``x`` lets missing values sort last in both directions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson

from fhir_clr.store.port import ChangeOp, StoredResource, WriteMethod
from fhir_clr.store.query import IndexEntries

SortValue = str | int | float


def doc_id(resource_type: str, resource_id: str) -> str:
    """The ``_id`` of a resource's current-version document."""
    return f"{resource_type}/{resource_id}"


def history_id(resource_type: str, resource_id: str, version: int) -> str:
    """The ``_id`` of one history document."""
    return f"{resource_type}/{resource_id}/{version}"


def sort_field(param: str) -> str:
    """The ``_sort`` sub-document key of a param code (``.`` and a leading ``$`` cannot be field names)."""
    return param.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def instant_text(us: int) -> str:
    """``meta.lastUpdated`` for an epoch-microsecond instant (UTC, microsecond precision)."""
    moment = datetime.fromtimestamp(us / 1_000_000, tz=UTC).replace(microsecond=us % 1_000_000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def search_values(index: IndexEntries) -> dict[str, Any]:
    """The ``_search`` sub-document for one version's index entries (empty kinds are left out)."""
    kinds: dict[str, list[Any]] = {
        "tok": [{"p": p, "s": s or "", "c": c} for p, s, c in index.tokens],
        "ref": [{"p": p, "v": v} for p, v in index.references],
        "date": [{"p": p, "lo": lo, "hi": hi} for p, lo, hi in index.dates],
        "str": [{"p": p, "n": n, "e": e} for p, n, e in index.strings],
        "num": [{"p": p, "lo": lo, "hi": hi} for p, lo, hi in index.numbers],
        "qty": [{"p": p, "lo": lo, "hi": hi, "s": s or "", "c": c or ""}
                for p, lo, hi, s, c in index.quantities],
        "uri": [{"p": p, "v": v} for p, v in index.uris],
        "has": sorted(index.params()),
    }
    return {kind: rows for kind, rows in kinds.items() if rows}


def sort_keys(index: IndexEntries) -> dict[str, dict[str, Any]]:
    """The ``_sort`` sub-document: per param the lowest (``lo``) and highest (``hi``) sort value."""
    values: dict[str, list[tuple[SortValue, SortValue]]] = {}
    for p, _, c in index.tokens:
        values.setdefault(p, []).append((c, c))
    for p, v in (*index.references, *index.uris):
        values.setdefault(p, []).append((v, v))
    for p, n, _ in index.strings:
        values.setdefault(p, []).append((n, n))
    for p, lo, hi in (*index.dates, *index.numbers):
        values.setdefault(p, []).append((lo, hi))
    for p, lo, hi, _, _ in index.quantities:
        values.setdefault(p, []).append((lo, hi))
    return {sort_field(p): {"x": 1, "lo": min(v[0] for v in pairs), "hi": max(v[1] for v in pairs)}
            for p, pairs in values.items()}


def stamped(resource: dict[str, Any], version: int, last_updated: str) -> dict[str, Any]:
    """``resource`` with the server-owned ``meta.versionId`` and ``meta.lastUpdated`` set."""
    meta = dict(resource.get("meta") or {})
    meta["versionId"] = str(version)
    meta["lastUpdated"] = last_updated
    return {**resource, "meta": meta}


def version_fields(resource_type: str, resource_id: str, version: int, op: ChangeOp, last_updated_us: int,
                   body: dict[str, Any] | None) -> dict[str, Any]:
    """The fields shared by the current-version and history documents of one version."""
    return {"type": resource_type, "id": resource_id, "version": version, "op": op.value,
            "lastUpdatedUs": last_updated_us, "lastUpdated": instant_text(last_updated_us),
            "deleted": body is None, "resource": body}


def to_stored(doc: dict[str, Any]) -> StoredResource:
    """A ``StoredResource`` from a current-version or history document."""
    body = doc.get("resource")
    return StoredResource(
        resource_type=doc["type"], resource_id=doc["id"], version=doc["version"],
        last_updated_us=doc["lastUpdatedUs"], last_updated=doc["lastUpdated"], deleted=doc["deleted"],
        body=None if body is None else orjson.dumps(body), op=ChangeOp(doc["op"]),
        method=WriteMethod(doc["method"]) if doc.get("method") else None)


def nested(doc: dict[str, Any], path: str) -> Any:
    """The value at a dotted ``path`` in ``doc``, or None when any step is missing."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value
