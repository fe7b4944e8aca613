"""``/openapi.json`` generated from the CapabilityStatement, so generic HTTP clients and fuzzers see the real FHIR
API (every type's interactions, its search parameters, the system interactions and ``metadata``) instead of only
the handful of FastAPI routes. Bodies are described as FHIR JSON objects of the path's type; every response is
FHIR JSON (a resource, a Bundle or an OperationOutcome)."""

from __future__ import annotations

from typing import Any

FHIR_JSON = "application/fhir+json"
ID_SCHEMA = {"type": "string", "pattern": "^[A-Za-z0-9\\-.]{1,64}$"}
_ANY_FHIR = {"description": "A FHIR resource, Bundle or OperationOutcome",
             "content": {FHIR_JSON: {"schema": {"type": "object"}}}}


def _resource_body(resource_type: str) -> dict[str, Any]:
    schema = {"type": "object", "required": ["resourceType"],
              "properties": {"resourceType": {"type": "string", "enum": [resource_type]}, "id": ID_SCHEMA}}
    return {"required": True, "content": {FHIR_JSON: {"schema": schema}}}


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
    return paths


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
    for entry in rest["resource"]:
        paths.update(_type_paths(entry))
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
