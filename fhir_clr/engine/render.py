"""Render engine results as FHIR JSON bytes.

Stored resources are already the exact JSON to serve, so Bundles embed them as ``orjson.Fragment``s: no
parse, no model round-trip. Only ``_summary``/``_elements`` parse and trim a resource.
"""

from __future__ import annotations

from functools import cache
from typing import Any
from urllib.parse import urlencode

import orjson

from fhir_clr.engine.results import HistoryResult, SearchResult
from fhir_clr.errors import Issue, operation_outcome
from fhir_clr.search.parse import PAGE_TOKEN
from fhir_clr.store.port import ChangeOp, StoredResource, WriteMethod

SUBSETTED = {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}
ALWAYS_KEPT = frozenset({"resourceType", "id", "meta"})
HISTORY_METHOD = {ChangeOp.CREATE: WriteMethod.POST, ChangeOp.UPDATE: WriteMethod.PUT,
                  ChangeOp.DELETE: WriteMethod.DELETE}
"""The method a history entry shows for a version stored without one (written before methods were recorded)."""
HISTORY_STATUS = {ChangeOp.CREATE: "201 Created", ChangeOp.UPDATE: "200 OK", ChangeOp.DELETE: "200 OK"}


def etag(stored: StoredResource) -> str:
    """The weak ETag of a stored version."""
    return f'W/"{stored.version}"'


def link(base_url: str, path: str, params: list[tuple[str, str]]) -> str:
    """An absolute URL for ``path`` on this server with query ``params``."""
    url = f"{base_url}/{path}" if path else base_url
    return f"{url}?{urlencode(params)}" if params else url


def searchset_bundle(result: SearchResult, base_url: str, path: str) -> bytes:
    """A ``searchset`` Bundle with self/first/next/previous links."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset"}
    if result.total is not None:
        bundle["total"] = result.total
    links = [{"relation": "self", "url": link(base_url, path, result.self_params)}]
    if result.next_token or result.prev_token:
        links.append({"relation": "first", "url": link(base_url, path, result.self_params)})
    if result.next_token:
        links.append({"relation": "next",
                      "url": link(base_url, path, [*result.self_params, (PAGE_TOKEN, result.next_token)])})
    if result.prev_token:
        links.append({"relation": "previous",
                      "url": link(base_url, path, [*result.self_params, (PAGE_TOKEN, result.prev_token)])})
    bundle["link"] = links
    entries = [_search_entry(r, base_url, "match", result.summary, result.elements) for r in result.matches]
    entries += [_search_entry(r, base_url, "include", result.summary, result.elements)
                for r in result.included]
    if result.issues:
        entries.append({"resource": operation_outcome(result.issues), "search": {"mode": "outcome"}})
    if entries:
        bundle["entry"] = entries
    return orjson.dumps(bundle)


def history_bundle(result: HistoryResult, base_url: str, path: str) -> bytes:
    """A ``history`` Bundle, newest first, each entry with request and response."""
    links = [{"relation": "self", "url": link(base_url, path, result.self_params)}]
    if result.next_token:
        links.append({"relation": "next",
                      "url": link(base_url, path, [*result.self_params, (PAGE_TOKEN, result.next_token)])})
    entries = []
    for stored in result.entries:
        url = f"{stored.resource_type}/{stored.resource_id}"
        entry: dict[str, Any] = {"fullUrl": f"{base_url}/{url}"}
        if stored.body is not None:
            entry["resource"] = orjson.Fragment(stored.body)
        method = stored.method or HISTORY_METHOD[stored.op]
        entry["request"] = {"method": str(method),
                            "url": stored.resource_type if method is WriteMethod.POST else url}
        entry["response"] = {"status": HISTORY_STATUS[stored.op], "etag": etag(stored),
                             "lastModified": stored.last_updated}
        entries.append(entry)
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "history", "link": links}
    if result.total is not None:
        bundle["total"] = result.total
    if entries:
        bundle["entry"] = entries
    return orjson.dumps(bundle)


def outcome_bytes(issues: list[Issue]) -> bytes:
    """An OperationOutcome as JSON bytes."""
    return orjson.dumps(operation_outcome(issues))


def resource_bytes(stored: StoredResource, summary: str | None = None, elements: list[str] | None = None
                   ) -> bytes:
    """A stored resource as served, trimmed by ``_summary``/``_elements`` when asked."""
    if stored.body is None:
        return b""
    if not _trims(summary, elements):
        return stored.body
    return orjson.dumps(trim(orjson.loads(stored.body), summary, elements or []))


def _search_entry(stored: StoredResource, base_url: str, mode: str, summary: str | None,
                  elements: list[str]) -> dict[str, Any]:
    body = stored.body or b"{}"
    resource: Any = orjson.Fragment(body)
    if _trims(summary, elements):
        resource = trim(orjson.loads(body), summary, elements)
    return {"fullUrl": f"{base_url}/{stored.resource_type}/{stored.resource_id}", "resource": resource,
            "search": {"mode": mode}}


def _trims(summary: str | None, elements: list[str] | None) -> bool:
    return bool(elements) or summary in ("true", "text", "data")


def trim(resource: dict[str, Any], summary: str | None, elements: list[str]) -> dict[str, Any]:
    """Apply ``_summary`` (true/text/data) or ``_elements`` and tag the result SUBSETTED."""
    resource_type = resource.get("resourceType", "")
    if elements:
        keep = ALWAYS_KEPT | {e.split(".", 1)[-1] if e.startswith(f"{resource_type}.") else e
                              for e in elements}
        out = {k: v for k, v in resource.items() if k in keep}
    elif summary == "true":
        keep = ALWAYS_KEPT | summary_elements(resource_type)
        out = {k: v for k, v in resource.items() if k in keep}
    elif summary == "text":
        keep = ALWAYS_KEPT | {"text"} | mandatory_elements(resource_type)
        out = {k: v for k, v in resource.items() if k in keep}
    else:  # data
        out = {k: v for k, v in resource.items() if k != "text"}
    meta = dict(out.get("meta") or {})
    meta["tag"] = [*meta.get("tag", []), SUBSETTED]
    out["meta"] = meta
    return out


@cache
def summary_elements(resource_type: str) -> frozenset[str]:
    """Top-level JSON names of the elements FHIR marks ``isSummary`` for ``resource_type``."""
    return _model_elements(resource_type, "summary_element_property")


@cache
def mandatory_elements(resource_type: str) -> frozenset[str]:
    """Top-level JSON names of the required (min 1) elements of ``resource_type``."""
    return _model_elements(resource_type, "element_required")


def _model_elements(resource_type: str, flag: str) -> frozenset[str]:
    from fhir.resources.R4B import get_fhir_model_class

    try:
        model = get_fhir_model_class(resource_type)
    except KeyError:
        return frozenset()
    names = set()
    for name, field in model.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get(flag):
            names.add(field.alias or name)
    return frozenset(names)
