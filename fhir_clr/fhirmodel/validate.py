"""The R4 validation gate every write passes through.

Checks, in order: a JSON object; a ``resourceType`` that this R4 server serves (and that matches the
expected type); the JSON rules the models skip (``ele-1``, nulls, whitespace-only strings), nested resource
types and every resource id (1-64 characters); the ``fhir.resources`` R4B model (structure, cardinality,
primitive formats; R4B is element-identical to R4 for the served types); required code bindings. All problems
found are reported together, one OperationOutcome issue each, with a FHIRPath-style element path. Messages
name elements and rules and never echo values other than codes.
"""

from __future__ import annotations

from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from fhir_clr.errors import FhirError, Issue
from fhir_clr.fhirmodel.allowlist import R4_NON_STORED_TYPES, R4_RESOURCE_TYPES
from fhir_clr.fhirmodel.bindings import binding_table
from fhir_clr.fhirmodel.ids import is_valid_id, validate_id
from fhir_clr.fhirmodel.json_rules import JsonRules
from fhir_clr.fhirmodel.model_errors import model_issues

__all__ = ["is_valid_id", "validate_id", "validate_resource", "warm_models"]

ALL_R4_TYPES: frozenset[str] = R4_RESOURCE_TYPES | R4_NON_STORED_TYPES
_models: dict[str, Any] = {}


def _model(resource_type: str) -> Any:
    model = _models.get(resource_type)
    if model is None:
        model = _models[resource_type] = get_fhir_model_class(resource_type)
    return model


def warm_models() -> None:
    """Import the model class of every R4 type this server handles, and load the binding table.

    The first import of a model costs hundreds of milliseconds; call this at start-up."""
    for resource_type in sorted(ALL_R4_TYPES):
        _model(resource_type)
    binding_table()


def validate_resource(data: object, expected_type: str | None = None, *, for_storage: bool = True
                      ) -> dict[str, Any]:
    """Return ``data`` unchanged when it is a valid R4 resource, else raise a 400 :class:`FhirError` with
    one issue per problem found.

    ``expected_type``: the type the URL names (a different ``resourceType`` is an error). ``for_storage``:
    the resource is to be stored, so its type must have a REST endpoint; pass False to validate a Bundle,
    Parameters or OperationOutcome body as well. Nested resources may be of any R4 type handled here.
    """
    if not isinstance(data, dict):
        raise FhirError(400, "structure", "The body must be a JSON object holding a FHIR resource")
    resource_type = data.get("resourceType")
    if resource_type is None:
        raise FhirError(400, "required", "resourceType is required", expression="resourceType")
    if not isinstance(resource_type, str):
        raise FhirError(400, "structure", "resourceType must be a string", expression="resourceType")
    served = R4_RESOURCE_TYPES if for_storage else ALL_R4_TYPES
    if resource_type not in served:
        raise FhirError(400, "not-supported", f"Resource type {resource_type[:64]} is not supported here",
                        expression="resourceType")
    if expected_type is not None and resource_type != expected_type:
        raise FhirError(400, "invalid", f"Expected a {expected_type} resource, got a {resource_type}",
                        expression="resourceType")
    table = binding_table()
    rules = JsonRules(table, ALL_R4_TYPES)
    rules.resource(data, resource_type)
    issues = rules.rule_issues
    if not rules.unknown_nested_type:  # the model would fail on it without a usable error
        try:
            _model(resource_type).model_validate(data)
        except ValidationError as error:
            issues = _merge(issues, model_issues(error, data, resource_type, table))
        except KeyError:  # a nested resource type unknown to R4B, already reported as not supported
            if not issues:
                raise
    issues = _merge(issues, rules.binding_issues)
    if issues:
        first = issues[0]
        raise FhirError(400, first.code, first.message, expression=first.expression, issues=issues)
    return data


def _merge(issues: list[Issue], later: list[Issue]) -> list[Issue]:
    """``issues`` plus the ``later`` ones about elements not already reported (the model and the binding
    check often see the same bad element our JSON rules caught first)."""
    reported = {issue.expression for issue in issues}
    return issues + [issue for issue in later if issue.expression not in reported]
