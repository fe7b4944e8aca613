"""Pydantic validation errors of the fhir.resources models as OperationOutcome issues.

Each error's ``loc`` (JSON keys and list indexes, e.g. ``('output', 0, 'valueReference')``) becomes a
FHIRPath-style element path (``Task.output[0].value``): choice keys lose their type suffix, ``_x`` primitive
siblings are named ``x``, nested resources keep their position (``Bundle.entry[2].resource.status``).
Messages are built from the error type; pydantic's own text is used only when it does not quote the input,
so values (possibly PHI) are never echoed.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from fhir_clr.errors import Issue
from fhir_clr.fhirmodel.bindings import NESTED_RESOURCE, PRIMITIVE_SIBLING, BindingTable

REQUIRED_TYPES = frozenset({"missing", "model_field_validation.missing"})
STRUCTURE_TYPES = frozenset({"extra_forbidden", "list_type", "dict_type", "model_type", "model_attributes_type",
                             "json_invalid", "json_type", "is_instance_of", "model_validation_format",
                             "too_short", "too_long", "union_tag_invalid", "union_tag_not_found"})
WRONG_JSON_TYPE = {"string_type": "a string", "bool_type": "a boolean", "bool_parsing": "a boolean",
                   "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
                   "float_type": "a number", "float_parsing": "a number", "decimal_type": "a number",
                   "decimal_parsing": "a number", "list_type": "an array", "dict_type": "an object",
                   "model_type": "an object", "model_attributes_type": "an object", "json_invalid": "an object"}
GENERIC_VALUE_MESSAGE = "the value is not valid for this element"


def model_issues(error: ValidationError, data: dict[str, Any], root: str, table: BindingTable) -> list[Issue]:
    """One issue per pydantic error of validating ``data`` (a resource whose path is ``root``)."""
    issues = []
    for detail in error.errors(include_url=False, include_context=False):
        path = element_path(detail["loc"], data, root, table)
        kind = detail["type"]
        issues.append(Issue(code=_issue_code(kind), expression=path, message=f"{path}: {_message(detail)}"))
    return issues


def element_path(loc: tuple[Any, ...], data: Any, root: str, table: BindingTable) -> str:
    """The FHIRPath-style path of ``loc`` inside ``data`` (whose path is ``root``)."""
    path = root
    node: str | None = data.get("resourceType") if isinstance(data, dict) else None
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
            data = data[part] if isinstance(data, list) and 0 <= part < len(data) else None
            if node == NESTED_RESOURCE:
                node = _nested_type(data)
            continue
        if part == "resource_type":
            part = "resourceType"
        elif part == "root" and not isinstance(data, dict):
            continue  # pydantic's name for a root model's value, not an element
        entry = table.elements.get(node or "", {}).get(part)
        if entry is not None:
            name, node = entry[0], entry[1]
        elif part.startswith("_"):
            name, node = part[1:], PRIMITIVE_SIBLING
        else:
            name, node = part, None
        path += f".{name}"
        data = data.get(part) if isinstance(data, dict) else None
        if node == NESTED_RESOURCE:
            node = _nested_type(data)
    return path


def _nested_type(data: Any) -> str | None:
    """The type of a nested resource, or None while ``data`` is still the list holding it."""
    if isinstance(data, dict):
        resource_type = data.get("resourceType")
        return resource_type if isinstance(resource_type, str) else None
    return NESTED_RESOURCE if isinstance(data, list) else None


def _issue_code(kind: str) -> str:
    if kind in REQUIRED_TYPES:
        return "required"
    if kind in STRUCTURE_TYPES:
        return "structure"
    return "value"


def _message(detail: Any) -> str:
    kind = detail["type"]
    if kind in REQUIRED_TYPES:
        return "a value is required"
    if kind == "extra_forbidden":
        return "unknown element (not part of this R4 type)"
    if kind in WRONG_JSON_TYPE:
        return f"wrong JSON type (expected {WRONG_JSON_TYPE[kind]})"
    text = str(detail.get("msg", "")).split("\n")[0].removeprefix("Value error, ")
    return text if text and not _quotes_input(text, detail.get("input")) else GENERIC_VALUE_MESSAGE


def _quotes_input(text: str, value: Any) -> bool:
    """True when ``text`` might contain ``value`` (or any scalar inside it)."""
    if isinstance(value, dict):
        return any(_quotes_input(text, item) for item in value.values())
    if isinstance(value, list):
        return any(_quotes_input(text, item) for item in value)
    return value is not None and str(value) in text
