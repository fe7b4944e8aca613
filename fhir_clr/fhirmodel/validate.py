"""The R4 validation gate every write passes through.

Order of checks: a JSON object with a served ``resourceType`` (matching the URL's type), the JSON rules the
models skip (``ele-1``), the id format, the ``fhir.resources`` R4B model (structure, cardinality, primitive
formats — R4B is element-identical to R4 for the served types), then required code bindings. All problems
found are reported together, one OperationOutcome issue each, with a FHIRPath-style element path. Messages
name elements and rules, never echo non-code values (they may be PHI).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_clr.errors import FhirError, Issue
from fhir_clr.fhirmodel.allowlist import R4_NON_STORED_TYPES, R4_RESOURCE_TYPES
from fhir_clr.fhirmodel.bindings import binding_checker
from fhir_clr.fhirmodel.json_rules import json_rule_issues

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
ERROR_CODES = {"missing": "required", "extra_forbidden": "structure", "value_error": "value",
               "string_type": "value", "model_type": "structure", "list_type": "structure",
               "dict_type": "structure", "bool_type": "value", "int_type": "value", "float_type": "value",
               "decimal_type": "value", "string_pattern_mismatch": "value", "datetime_type": "value"}


def is_valid_id(value: object) -> bool:
    """True for a legal FHIR logical id (1-64 of ``A-Z a-z 0-9 - .``)."""
    return isinstance(value, str) and ID_PATTERN.match(value) is not None


def validate_id(value: str) -> None:
    """400 unless ``value`` is a legal FHIR id (used for ids taken from URLs)."""
    if not is_valid_id(value):
        raise FhirError(400, "value", "A resource id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'")


@cache
def _model(resource_type: str) -> Any:
    return get_fhir_model_class(resource_type)


def warm_models() -> None:
    """Import every served model class once (the first import of a model costs hundreds of ms)."""
    for resource_type in sorted(R4_RESOURCE_TYPES | R4_NON_STORED_TYPES):
        _model(resource_type)
    binding_checker()


def validate_resource(data: object, expected_type: str | None = None) -> dict[str, Any]:
    """Return ``data`` unchanged when it is a valid R4 resource of ``expected_type``; otherwise raise a 400
    FhirError listing every problem found."""
    if not isinstance(data, dict):
        raise FhirError(400, "structure", "A resource must be a JSON object")
    resource_type = data.get("resourceType")
    if not isinstance(resource_type, str):
        raise FhirError(400, "required", "resourceType is required", expression="resourceType")
    if resource_type not in R4_RESOURCE_TYPES and resource_type not in R4_NON_STORED_TYPES:
        raise FhirError(400, "not-supported", f"Resource type {resource_type} is not supported by this R4 server")
    if expected_type is not None and resource_type != expected_type:
        raise FhirError(400, "invalid", f"Expected a {expected_type} but the body is a {resource_type}",
                        expression="resourceType")
    issues = resource_issues(data, resource_type, resource_type)
    if issues:
        raise FhirError(400, issues[0].code, issues[0].message, issues=issues)
    return data


def resource_issues(data: dict[str, Any], resource_type: str, location: str) -> list[Issue]:
    """All problems of one resource (and its contained resources), located under ``location``."""
    issues = json_rule_issues(data, location)
    if "id" in data and not is_valid_id(data["id"]):
        issues.append(Issue(code="value", expression=f"{location}.id",
                            message="id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'"))
    try:
        _model(resource_type).model_validate(data)
    except ValidationError as error:
        issues.extend(_model_issues(error, location))
    except (TypeError, ValueError) as error:  # the models raise these for some malformed primitives
        issues.append(Issue(code="structure", message=f"{location}: {type(error).__name__}", expression=location))
    issues.extend(binding_checker().issues(data, resource_type, location))
    for index, contained in enumerate(data.get("contained") or []):
        if isinstance(contained, dict) and isinstance(contained.get("resourceType"), str):
            issues.extend(binding_checker().issues(contained, contained["resourceType"],
                                                   f"{location}.contained[{index}]"))
    return _unique(issues)


def _model_issues(error: ValidationError, location: str) -> list[Issue]:
    issues = []
    for detail in error.errors(include_url=False, include_input=False):
        path = _path(location, detail.get("loc", ()))
        kind = detail.get("type", "")
        code = ERROR_CODES.get(kind, "invalid")
        if kind == "missing":
            message = f"{path} is required"
        elif kind == "extra_forbidden":
            message = f"{path} is not an element of this resource type"
        else:
            message = f"{path}: {_safe_message(detail.get('msg', 'invalid value'))}"
        issues.append(Issue(code=code, message=message, expression=path))
    return issues


def _safe_message(message: str) -> str:
    """Pydantic messages describe the rule; keep the first sentence and drop anything quoting input."""
    first = message.split("\n")[0]
    return first if "input" not in first.lower() or "should" in first.lower() else "invalid value"


def _path(location: str, loc: tuple[Any, ...]) -> str:
    path = location
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part not in ("__root__",) and not part.startswith("function-"):
            path += f".{part}"
    return path


def _unique(issues: list[Issue]) -> list[Issue]:
    seen: set[tuple[str | None, str]] = set()
    out = []
    for issue in issues:
        key = (issue.expression, issue.message)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out
