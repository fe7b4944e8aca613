"""The ``$validate`` operation: the checks a write would run, reported as an OperationOutcome.

The resource is planned exactly as the write of that ``mode`` would plan it (structure, bindings), then the
engine vets the plan as it vets every write (the references it adds, the CLR workflow rules, the profile check
of every CLR profile the resource claims, the caller's right to the content), and nothing is committed. A
``profile`` (Parameters part or ``?profile=``) is checked as if the resource claimed it in ``meta.profile``.
"""

from __future__ import annotations

import copy
from typing import Any

from fhir_clr.engine.engine import Engine
from fhir_clr.engine.writes import Plan, require_type
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


def claiming(resource: dict[str, Any], profile: str | None) -> dict[str, Any]:
    """``resource`` with ``profile`` added to its ``meta.profile`` (a copy; unchanged when already claimed)."""
    if profile is None:
        return resource
    given = resource.get("meta")
    meta: dict[str, Any] = given if isinstance(given, dict) else {}
    claimed = [p for p in meta.get("profile", []) if isinstance(p, str)]
    if profile in claimed:
        return resource
    changed = copy.deepcopy(resource)
    changed["meta"] = {**meta, "profile": [*claimed, profile]}
    return changed


async def validate_operation(engine: Engine, resource_type: str, resource_id: str | None,
                             body: dict[str, Any], known_profiles: set[str], query_profile: str | None = None
                             ) -> list[Issue]:
    """Validate ``body`` for ``resource_type`` as ``engine``'s caller would write it; the issues (an informational
    one when valid).

    Raises FhirError only when validation cannot run (unknown type, unknown profile, bad mode, a missing or
    invisible resource for ``mode=delete``)."""
    require_type(resource_type)
    resource, mode, profile = _unwrap(body)
    profile = profile or query_profile
    if mode is not None and mode not in MODES:
        raise FhirError(400, "code-invalid", f"$validate mode must be one of {', '.join(MODES)}")
    if profile is not None and profile.split("|")[0] not in known_profiles:
        raise FhirError(400, "not-supported", f"Profile {profile} is not known to this server")
    if mode == "delete":
        if resource_id is None:
            raise FhirError(400, "required", "$validate with mode=delete needs a resource id in the URL")
        await engine.planner.read_live(resource_type, resource_id)
        if not engine.access.permits(resource_type, "d"):
            return [Issue(code="forbidden", message=f"The access token's scopes do not allow deleting "
                          f"{resource_type}")]
        return [_ok()]
    if resource is None:
        raise FhirError(400, "required", "$validate needs a resource (or a Parameters with a 'resource')")
    if mode == "update" and resource_id is None:
        raise FhirError(400, "required", "$validate with mode=update needs a resource id in the URL")
    resource = claiming(resource, profile)
    try:
        plan = await _plan(engine, resource_type, resource_id, resource, mode)
        await engine.vet(plan)
    except FhirError as error:
        return error.issues
    return [_ok()]


async def _plan(engine: Engine, resource_type: str, resource_id: str | None, resource: dict[str, Any],
                mode: str | None) -> Plan:
    """The plan of the write ``mode`` names: an update of ``resource_id`` (``mode=update``, or an instance-level
    call without a mode), else a create."""
    if resource_id is not None and mode in ("update", None):
        return await engine.planner.plan_update(resource_type, resource_id, resource)
    return await engine.planner.plan_create(resource_type, resource)


def _ok() -> Issue:
    return Issue(code="informational", severity="information", message="Validation successful: no issues")
