"""The ``$validate`` operation: the same checks a write would run, reported as an OperationOutcome."""

from __future__ import annotations

from typing import Any

from fhir_clr.engine.writes import WritePlanner, require_type
from fhir_clr.errors import FhirError, Issue

MODES = ("create", "update", "delete", "profile")


def _unwrap(body: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None, str | None]:
    """(resource, mode, profile) from a resource body or a Parameters body."""
    if body.get("resourceType") != "Parameters":
        return body, None, None
    resource = mode = profile = None
    for parameter in body.get("parameter", []):
        name = parameter.get("name")
        if name == "resource":
            resource = parameter.get("resource")
        elif name == "mode":
            mode = parameter.get("valueCode") or parameter.get("valueString")
        elif name == "profile":
            profile = parameter.get("valueUri") or parameter.get("valueCanonical")
    return resource, mode, profile


async def validate_operation(planner: WritePlanner, resource_type: str, resource_id: str | None,
                             body: dict[str, Any], known_profiles: set[str]) -> list[Issue]:
    """Validate ``body`` for ``resource_type`` and return the issues (an informational one when valid).

    Raises FhirError only when validation cannot run (unknown type, unknown profile, bad mode)."""
    require_type(resource_type)
    resource, mode, profile = _unwrap(body)
    if mode is not None and mode not in MODES:
        raise FhirError(400, "code-invalid", f"$validate mode must be one of {', '.join(MODES)}")
    if profile is not None and profile.split("|")[0] not in known_profiles:
        raise FhirError(400, "not-supported", f"Profile {profile} is not known to this server")
    if mode == "delete":
        if resource_id is None:
            raise FhirError(400, "required", "$validate with mode=delete needs a resource id in the URL")
        await planner.read_live(resource_type, resource_id)
        return [_ok()]
    if resource is None:
        raise FhirError(400, "required", "$validate needs a resource (or a Parameters with a 'resource')")
    try:
        if (mode == "update" or (resource_id is not None and mode is None)) and resource.get("id") != resource_id:
            return [Issue(code="invalid", message="The resource id does not match the id in the URL",
                          expression=f"{resource_type}.id")]
        planner.prepare(resource_type, resource.get("id") or "validate", resource)
    except FhirError as error:
        return error.issues
    return [_ok()]


def _ok() -> Issue:
    return Issue(code="informational", severity="information", message="Validation successful: no issues")
