"""Small helpers about resource content: server-owned meta, id generation, no-op detection."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from fhir_clr.errors import FhirError

SERVER_META_KEYS = ("versionId", "lastUpdated")
MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays accepted in a request body (FHIR resources stay well below)."""


def new_id() -> str:
    """A fresh server-assigned logical id (a UUID: 36 characters, within FHIR's 64)."""
    return str(uuid.uuid4())


def with_identity(body: dict[str, Any], resource_id: str) -> dict[str, Any]:
    """A shallow copy of ``body`` with ``id`` set and server-owned meta (versionId, lastUpdated) removed;
    the store sets those at commit time."""
    out = dict(body)
    out["id"] = resource_id
    meta = out.get("meta")
    if isinstance(meta, dict) and any(key in meta for key in SERVER_META_KEYS):
        meta = {key: value for key, value in meta.items() if key not in SERVER_META_KEYS}
        if meta:
            out["meta"] = meta
        else:
            del out["meta"]
    return out


def same_content(candidate: dict[str, Any], stored_body: bytes | None) -> bool:
    """True when ``candidate`` (already passed through ``with_identity``) equals the stored version apart
    from server-owned meta and ``meta.source`` (where a version came from is not content): such an update
    writes no new version."""
    if stored_body is None:
        return False
    stored = with_identity(orjson.loads(stored_body), candidate.get("id", ""))
    return _without_source(stored) == _without_source(candidate)


def _without_source(resource: dict[str, Any]) -> dict[str, Any]:
    meta = resource.get("meta")
    if not isinstance(meta, dict) or "source" not in meta:
        return resource
    rest = {k: v for k, v in meta.items() if k != "source"}
    return {**resource, "meta": rest} if rest else {k: v for k, v in resource.items() if k != "meta"}


def parse_json_object(raw: bytes, what: str = "request body") -> dict[str, Any]:
    """Parse JSON bytes into an object or raise a 400 FhirError naming what was wrong."""
    if not raw:
        raise FhirError(400, "structure", f"The {what} is empty; a FHIR JSON resource is required")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FhirError(400, "structure", f"The {what} is not valid JSON ({exc.msg} at position {exc.pos})"
                        ) from None
    if not isinstance(value, dict):
        raise FhirError(400, "structure", f"The {what} must be a JSON object")
    if json_depth_exceeds(value, MAX_JSON_DEPTH):
        raise FhirError(400, "structure", f"The {what} nests deeper than {MAX_JSON_DEPTH} levels")
    return value


def json_depth_exceeds(value: Any, limit: int) -> bool:
    """True when objects/arrays in ``value`` nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
