"""``/openapi.json`` generated from the CapabilityStatement, so generic HTTP clients and fuzzers see the real FHIR
API (every type's interactions, PATCH with its JSON Patch and FHIRPath Patch bodies, its search parameters, the
system interactions, ``metadata`` and every operation advertised, at each level it is invoked) instead of only
the handful of FastAPI routes. Bodies are described as FHIR JSON objects of the path's type; every response is
FHIR JSON (a resource, a Bundle or an OperationOutcome), or a file for ``$clr-export`` and ``$clr-print-batch``;
the status and file URLs of the asynchronous ``$export`` and ``$import`` are described too.

A CapabilityStatement names an operation but not where it is invoked, so ``INVOCATIONS`` says that for each
operation definition; advertising an operation it does not know fails the generation (a test builds it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FHIR_JSON = "application/fhir+json"
ID_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"}
JSON_PATCH = "application/json-patch+json"
_ANY_FHIR = {"description": "A FHIR resource, Bundle or OperationOutcome",
             "content": {FHIR_JSON: {"schema": {"type": "object"}}}}
_JSON_PATCH_SCHEMA = {"type": "array", "items": {
    "type": "object", "required": ["op", "path"],
    "properties": {"op": {"type": "string", "enum": ["add", "remove", "replace", "move", "copy", "test"]},
                   "path": {"type": "string"}, "from": {"type": "string"}, "value": {}}}}
_FHIRPATH_PATCH_SCHEMA = {"type": "object", "required": ["resourceType"], "properties": {
    "resourceType": {"type": "string", "enum": ["Parameters"]},
    "parameter": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string", "enum": ["operation"]},
        "part": {"type": "array", "items": {"type": "object"}}}}}}}
_PATCH_BODY = {"required": True, "content": {JSON_PATCH: {"schema": _JSON_PATCH_SCHEMA},
                                             FHIR_JSON: {"schema": _FHIRPATH_PATCH_SCHEMA}}}


@dataclass(frozen=True)
class Invocation:
    """Where and how one operation is invoked: its levels (``system``, ``type``, ``instance``), the HTTP method,
    its query parameters (name to OpenAPI type) and the body it takes (``resource``, ``file`` or none)."""

    levels: tuple[str, ...]
    method: str = "get"
    query: tuple[tuple[str, str], ...] = ()
    body: str | None = None
    also: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = ()
    """Further HTTP methods the operation answers, each with its own query parameters (no body)."""


_BULK = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/"
_BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/OperationDefinition/"
_OWN = "http://fhir-clr.org/fhir/OperationDefinition/"
_EXPORT_QUERY = (("_type", "string"), ("_since", "string"), ("_outputFormat", "string"), ("_typeFilter", "string"))
INVOCATIONS: dict[str, Invocation] = {
    "http://hl7.org/fhir/OperationDefinition/Resource-validate": Invocation(
        ("type", "instance"), "post", (("profile", "string"), ("mode", "string")), "resource"),
    _BULK + "export": Invocation(("system",), query=_EXPORT_QUERY),
    _BULK + "patient-export": Invocation(("type",), query=(*_EXPORT_QUERY, ("patient", "string"))),
    _BULK + "group-export": Invocation(("instance",), query=_EXPORT_QUERY),
    _OWN + "clr-worklist": Invocation(("system",), query=(("days", "integer"),)),
    _OWN + "clr-print-batch": Invocation(("system",), "post", (("date", "string"),), "resource",
                                         also=(("get", (("batch", "string"),)),)),
    _OWN + "clr-print-batch-mailed": Invocation(("system",), "post", (("batch", "string"), ("date", "string")),
                                                "resource"),
    _OWN + "clr-export": Invocation(("system",), query=(
        ("kind", "string"), ("provider", "string"), ("period", "string"), ("program", "string"),
        ("format", "string"))),
    _OWN + "import": Invocation(("system",), "post", (
        ("kind", "string"), ("program", "string"), ("provider", "string"), ("dryRun", "boolean"),
        ("filename", "string"), ("sheet", "string")), "file"),
    _BACKPORT + "backport-subscriptiontopic-list": Invocation(("type",)),
    _BACKPORT + "backport-subscription-status": Invocation(("type", "instance"), query=(
        ("id", "string"), ("status", "string"))),
    _BACKPORT + "backport-subscription-events": Invocation(("instance",), query=(
        ("eventsSinceNumber", "integer"), ("eventsUntilNumber", "integer"), ("content", "string"))),
    _OWN + "subscription-resend": Invocation(("instance",), "post", (("eventsSinceNumber", "integer"),)),
    _OWN + "subscription-delivery-attempts": Invocation(("instance",), query=(("_count", "integer"),)),
}
"""Every operation the CapabilityStatement may advertise, by definition URL."""


def _resource_body(resource_type: str, *, any_type: bool = False) -> dict[str, Any]:
    """A FHIR JSON body of ``resource_type`` (``any_type``: of that type or a ``Parameters``)."""
    types = [resource_type, "Parameters"] if any_type and resource_type != "Parameters" else [resource_type]
    schema = {"type": "object", "required": ["resourceType"],
              "properties": {"resourceType": {"type": "string", "enum": types}, "id": ID_SCHEMA}}
    return {"required": True, "content": {FHIR_JSON: {"schema": schema}}}


_FILE_BODY = {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                    "format": "binary"}}}}


def _operation(summary: str, operation_id: str, *, parameters: list[dict[str, Any]] | None = None,
               body: dict[str, Any] | None = None) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "operationId": operation_id,
                                 "responses": {"default": _ANY_FHIR}}
    if parameters:
        operation["parameters"] = parameters
    if body is not None:
        operation["requestBody"] = body
    return operation


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID_SCHEMA}


def _search_parameters(entry: dict[str, Any]) -> list[dict[str, Any]]:
    params = [{"name": p["name"], "in": "query", "required": False, "schema": {"type": "string"},
               "description": f"FHIR {p['type']} search parameter"} for p in entry.get("searchParam", [])]
    params += [{"name": "_count", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0}},
               {"name": "_sort", "in": "query", "required": False, "schema": {"type": "string"}}]
    return params


def _type_paths(entry: dict[str, Any]) -> dict[str, dict[str, Any]]:
    kind = entry["type"]
    interactions = {i["code"] for i in entry.get("interaction", [])}
    paths: dict[str, dict[str, Any]] = {}
    collection: dict[str, Any] = {}
    if "search-type" in interactions:
        collection["get"] = _operation(f"Search {kind}", f"search{kind}", parameters=_search_parameters(entry))
    if "create" in interactions:
        collection["post"] = _operation(f"Create a {kind}", f"create{kind}", body=_resource_body(kind))
    if collection:
        paths[f"/{kind}"] = collection
    instance: dict[str, Any] = {}
    if "read" in interactions:
        instance["get"] = _operation(f"Read a {kind}", f"read{kind}", parameters=[_path_parameter("id")])
    if "update" in interactions:
        instance["put"] = _operation(f"Update (or create) a {kind}", f"update{kind}",
                                     parameters=[_path_parameter("id")], body=_resource_body(kind))
    if "patch" in interactions:
        instance["patch"] = _operation(f"Patch a {kind} (JSON Patch or FHIRPath Patch)", f"patch{kind}",
                                       parameters=[_path_parameter("id")], body=_PATCH_BODY)
    if "delete" in interactions:
        instance["delete"] = _operation(f"Delete a {kind}", f"delete{kind}", parameters=[_path_parameter("id")])
    if instance:
        paths[f"/{kind}/{{id}}"] = instance
    if "history-instance" in interactions:
        paths[f"/{kind}/{{id}}/_history"] = {"get": _operation(
            f"History of a {kind}", f"history{kind}", parameters=[_path_parameter("id")])}
    if "vread" in interactions:
        paths[f"/{kind}/{{id}}/_history/{{vid}}"] = {"get": _operation(
            f"Read a version of a {kind}", f"vread{kind}", parameters=[_path_parameter("id"), _path_parameter("vid")])}
    if "history-type" in interactions:
        paths[f"/{kind}/_history"] = {"get": _operation(f"History of all {kind}", f"typeHistory{kind}")}
    for operation in entry.get("operation", []):
        _add_operation(paths, operation, kind)
    return paths


def _add_operation(paths: dict[str, dict[str, Any]], operation: dict[str, Any], kind: str | None) -> None:
    """The paths of one advertised operation, at the system (``kind`` None) or at ``kind``'s levels."""
    invocation = INVOCATIONS.get(operation["definition"])
    if invocation is None:
        raise LookupError(f"No invocation known for operation {operation['definition']}")
    levels = [level for level in invocation.levels if (level == "system") == (kind is None)]
    query = [{"name": name, "in": "query", "required": False, "schema": {"type": type_}}
             for name, type_ in invocation.query]
    body = {"resource": _resource_body(kind or "Parameters", any_type=True), "file": _FILE_BODY}.get(
        invocation.body or "")
    for level in levels:
        path, ids = {"system": ("", []), "type": (f"/{kind}", []),
                     "instance": (f"/{kind}/{{id}}", [_path_parameter("id")])}[level]
        name = operation["name"]
        operation_id = f"{name.replace('-', '_')}_{level}_{kind or 'system'}"
        summary = f"${name} ({level} level{'' if kind is None else ' on ' + kind})"
        paths.setdefault(f"{path}/${name}", {})[invocation.method] = _operation(
            summary, operation_id, parameters=[*ids, *query], body=body)
        for method, more in invocation.also:
            paths[f"{path}/${name}"][method] = _operation(summary, f"{operation_id}_{method}", parameters=[
                *ids, *({"name": n, "in": "query", "required": False, "schema": {"type": t}} for n, t in more)])


def _job_paths(paths: dict[str, dict[str, Any]]) -> None:
    """The status and file URLs of the asynchronous requests (bulk ``$export`` and file ``$import``) that
    ``paths`` offers: a kick-off answers 202 with one of them in ``Content-Location``."""
    job = [_path_parameter("job_id")]
    if any(path.endswith("/$export") for path in paths):
        paths["/$export-status/{job_id}"] = {
            "get": _operation("Status of a bulk export: 202 while it runs, then its manifest", "exportStatus",
                              parameters=job),
            "delete": _operation("Cancel a bulk export, or release a finished one", "exportCancel",
                                 parameters=job)}
        paths["/$export-file/{job_id}/{name}"] = {"get": {
            **_operation("One NDJSON file of a finished bulk export", "exportFile",
                         parameters=[*job, _path_parameter("name")]),
            "responses": {"200": {"description": "NDJSON", "content": {"application/fhir+ndjson": {
                "schema": {"type": "string"}}}}, "default": _ANY_FHIR}}}
    if "/$import" in paths:
        paths["/$import-status/{job_id}"] = {
            "get": _operation("Status of a file import: 202 while it runs, then its report", "importStatus",
                              parameters=job),
            "delete": _operation("Stop a file import (committed rows stay) and forget it", "importCancel",
                                 parameters=job)}
        paths["/$import-status/{job_id}/outcome"] = {"get": _operation(
            "The rejected rows of a file import as an OperationOutcome", "importOutcome", parameters=job)}
        paths["/$import-status/{job_id}/rejects.csv"] = {"get": {
            **_operation("The rejected rows of a file import as CSV", "importRejects", parameters=job),
            "responses": {"200": {"description": "CSV", "content": {"text/csv": {"schema": {"type": "string"}}}},
                          "default": _ANY_FHIR}}}


def openapi_document(statement: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.0 description of the REST API a CapabilityStatement declares."""
    rest = statement["rest"][0]
    paths: dict[str, dict[str, Any]] = {
        "/metadata": {"get": _operation("The CapabilityStatement", "capabilities")}}
    system = {i["code"] for i in rest.get("interaction", [])}
    if "transaction" in system or "batch" in system:
        bundle = {"required": True, "content": {FHIR_JSON: {"schema": {
            "type": "object", "required": ["resourceType", "type"],
            "properties": {"resourceType": {"type": "string", "enum": ["Bundle"]},
                           "type": {"type": "string", "enum": ["batch", "transaction"]},
                           "entry": {"type": "array", "items": {"type": "object"}}}}}}}
        paths["/"] = {"post": _operation("A batch or transaction Bundle", "batchOrTransaction", body=bundle)}
    if "history-system" in system:
        paths["/_history"] = {"get": _operation("History of every resource", "systemHistory")}
    for operation in rest.get("operation", []):
        _add_operation(paths, operation, None)
    for entry in rest["resource"]:
        paths.update(_type_paths(entry))
    _job_paths(paths)
    document: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": statement.get("software", {}).get("name", "FHIR server"),
                 "version": statement.get("software", {}).get("version", ""),
                 "description": f"FHIR {statement.get('fhirVersion', '')} REST API, generated from the "
                                "CapabilityStatement at /metadata"},
        "paths": paths,
    }
    if "security" in rest:
        document["components"] = {"securitySchemes": {"smart": {"type": "http", "scheme": "bearer"}}}
        document["security"] = [{"smart": []}]
    return document
