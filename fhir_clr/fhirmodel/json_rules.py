"""FHIR JSON rules the pydantic models do not enforce: ``ele-1`` (no empty arrays, objects or strings),
no whitespace-only strings, and ``null`` only inside primitive-extension sibling arrays (``_given``)."""

from __future__ import annotations

from typing import Any

from fhir_clr.errors import Issue


def json_rule_issues(value: Any, path: str) -> list[Issue]:
    """Every JSON-rule violation under ``value`` (whose element path is ``path``)."""
    issues: list[Issue] = []
    _walk(value, path, issues, allow_null=False)
    return issues


def _walk(value: Any, path: str, issues: list[Issue], *, allow_null: bool) -> None:
    if isinstance(value, dict):
        if not value:
            issues.append(Issue(code="structure", message=f"{path} is an empty object; omit it instead",
                                expression=path))
        for key, item in value.items():
            if key == "div" and isinstance(item, str):
                continue  # narrative XHTML, checked by the model
            _walk(item, f"{path}.{key.lstrip('_')}" if key.startswith("_") else f"{path}.{key}", issues,
                  allow_null=key.startswith("_") or f"_{key}" in value)
    elif isinstance(value, list):
        if not value:
            issues.append(Issue(code="structure", message=f"{path} is an empty array; omit it instead",
                                expression=path))
        for index, item in enumerate(value):
            _walk(item, f"{path}[{index}]", issues, allow_null=allow_null)
    elif isinstance(value, str):
        if not value.strip():
            issues.append(Issue(code="structure", message=f"{path} is an empty or whitespace-only string",
                                expression=path))
    elif value is None and not allow_null:
        issues.append(Issue(code="structure", message=f"{path} is null; omit it instead", expression=path))
