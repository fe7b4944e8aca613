"""Parsing of batch/transaction Bundle entries into typed requests, and reference rewriting helpers."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_clr.errors import FhirError, Issue

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
PROCESSING_ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
CONDITIONAL_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+\?.+")


@dataclass(slots=True)
class EntryRequest:
    """One Bundle entry's request, with its URL split into parts."""

    index: int
    method: str
    url: str
    resource_type: str
    resource_id: str | None = None
    version: str | None = None
    history: bool = False
    query: str | None = None
    full_url: str | None = None
    resource: dict[str, Any] | None = None
    if_match: int | None = None
    if_none_exist: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    checked_elsewhere: dict[str, Any] | None = None
    """The resource with its id as the caller validates it elsewhere (a ``PUT``'s, see
    ``WritePlanner.prepare``): planning does not validate an equal resource again."""


def parse_entries(bundle: dict[str, Any], base_urls: Sequence[str], max_entries: int) -> list[EntryRequest]:
    """Check the Bundle envelope and parse every entry's request; 400 naming the first bad entry."""
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise FhirError(400, "structure", "Bundle.entry must be an array", expression="Bundle.entry")
    if len(entries) > max_entries:
        raise FhirError(413, "too-costly", f"Bundle has {len(entries)} entries; the limit is {max_entries}")
    return [_parse_entry(i, entry, base_urls) for i, entry in enumerate(entries)]


def _parse_entry(index: int, entry: Any, base_urls: Sequence[str]) -> EntryRequest:
    where = f"Bundle.entry[{index}]"
    if not isinstance(entry, dict) or not isinstance(entry.get("request"), dict):
        raise FhirError(400, "required", f"{where} needs a request", expression=f"{where}.request")
    request = entry["request"]
    method = request.get("method")
    url = request.get("url")
    if method not in METHODS:
        raise FhirError(400, "code-invalid", f"{where}.request.method must be one of {', '.join(METHODS)}",
                        expression=f"{where}.request.method")
    if not isinstance(url, str) or not url:
        raise FhirError(400, "required", f"{where}.request.url is required", expression=f"{where}.request.url")
    resource = entry.get("resource")
    if resource is not None and not isinstance(resource, dict):
        raise FhirError(400, "structure", f"{where}.resource must be an object", expression=f"{where}.resource")
    if method in ("POST", "PUT", "PATCH") and resource is None:
        raise FhirError(400, "required", f"{where} ({method}) needs a resource", expression=f"{where}.resource")
    path, _, query = _strip_base(url, base_urls).partition("?")
    parts = [p for p in path.split("/") if p]
    if not parts:
        raise FhirError(400, "invalid", f"{where}.request.url has no resource type",
                        expression=f"{where}.request.url")
    parsed = EntryRequest(index=index, method=method, url=url, resource_type=parts[0],
                          query=query or None, full_url=entry.get("fullUrl"), resource=resource,
                          if_none_exist=request.get("ifNoneExist"), if_none_match=request.get("ifNoneMatch"),
                          if_modified_since=request.get("ifModifiedSince"),
                          params=_query_params(query))
    if len(parts) >= 2:
        parsed.resource_id = parts[1]
    if len(parts) >= 3:
        if parts[2] != "_history":
            raise FhirError(400, "not-supported", f"{where}.request.url form is not supported here",
                            expression=f"{where}.request.url")
        parsed.history = True
        parsed.version = parts[3] if len(parts) >= 4 else None
    if request.get("ifMatch") is not None:
        parsed.if_match = parse_etag(request["ifMatch"])
    return parsed


def _query_params(query: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(query, keep_blank_values=True) if query else []


def _strip_base(url: str, base_urls: Sequence[str]) -> str:
    for base in base_urls:
        if url.startswith(base.rstrip("/") + "/"):
            return url[len(base.rstrip("/")) + 1:]
    return url.lstrip("/")


def parse_etag(value: str) -> int:
    """The version number of an ETag (``W/"3"``, ``"3"`` or ``3``); 400 when it is not one."""
    text = value.strip()
    if text.startswith("W/"):
        text = text[2:]
    text = text.strip('"')
    if not text.isdigit():
        raise FhirError(400, "value", "If-Match must be an ETag such as W/\"3\"")
    return int(text)


def is_create_only(if_none_match: str | None) -> bool:
    """True for ``If-None-Match: *`` on a write (create only when absent); 400 for any other value, which
    FHIR does not define for writes."""
    if if_none_match is None:
        return False
    if if_none_match.strip() != "*":
        raise FhirError(400, "value", "If-None-Match on a write must be * (create only if absent)")
    return True


def patch_from_entry(resource: dict[str, Any]) -> list[Any] | dict[str, Any]:
    """The patch a PATCH entry carries: a FHIRPath Patch (the Parameters resource itself) or the JSON Patch
    operations of a Binary (``contentType`` json-patch)."""
    if resource.get("resourceType") == "Parameters":
        return resource
    if resource.get("resourceType") != "Binary" or "json-patch" not in str(resource.get("contentType", "")):
        raise FhirError(400, "not-supported",
                        "A PATCH entry must carry a FHIRPath Patch Parameters or a Binary with contentType "
                        "application/json-patch+json")
    try:
        operations: list[Any] | dict[str, Any] = orjson.loads(base64.b64decode(resource.get("data", ""),
                                                                                validate=True))
        return operations
    except (ValueError, orjson.JSONDecodeError):
        raise FhirError(400, "structure", "The PATCH entry's Binary.data is not base64 JSON") from None


def rewrite_strings(value: Any, replace: Callable[[str], str | None]) -> Any:
    """Return ``value`` with every string ``s`` for which ``replace(s)`` gives a new value substituted,
    anywhere in the JSON tree (references, uri/url/canonical elements…)."""
    if isinstance(value, str):
        new = replace(value)
        return value if new is None else new
    if isinstance(value, list):
        return [rewrite_strings(item, replace) for item in value]
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "div" and isinstance(item, str):
                out[key] = item
            else:
                out[key] = rewrite_strings(item, replace)
        return out
    return value


def rewrite_narrative(resource: dict[str, Any], mapping: dict[str, str]) -> None:
    """Replace placeholder URLs inside the narrative ``div`` (href/src attributes) in place."""
    text = resource.get("text")
    if not isinstance(text, dict) or not isinstance(text.get("div"), str) or not mapping:
        return
    div = text["div"]
    for old, new in mapping.items():
        if old in div:
            div = div.replace(f'"{old}"', f'"{new}"').replace(f"'{old}'", f"'{new}'")
    resource["text"] = {**text, "div": div}


def locate(error: FhirError, index: int) -> FhirError:
    """Re-anchor an entry's error on its position in the Bundle (``Bundle.entry[3].resource.status``)."""
    issues = []
    for issue in error.issues:
        expression = issue.expression
        if expression and not expression.startswith("Bundle."):
            _, _, rest = expression.partition(".")
            expression = f"Bundle.entry[{index}].resource" + (f".{rest}" if rest else "")
        issues.append(Issue(code=issue.code, message=f"Bundle.entry[{index}]: {issue.message}",
                            severity=issue.severity, expression=expression or f"Bundle.entry[{index}]",
                            diagnostics=issue.diagnostics))
    located = FhirError(error.status, issues[0].code if issues else "processing",
                        issues[0].message if issues else str(error), issues=issues, headers=error.headers)
    return located
