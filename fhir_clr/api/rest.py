"""FHIR REST routes: instance, type and system interactions. HTTP concerns only; FHIR semantics live in
the engine."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.api.body_budget import body_budget
from fhir_clr.api.negotiation import JSON_PATCH, check_accept, check_content_type, parse_prefer
from fhir_clr.api.plain_routes import PlainRouter
from fhir_clr.api.responses import (
    fhir_response,
    not_modified,
    version_headers,
    write_response,
)
from fhir_clr.api.search_limits import check_limits
from fhir_clr.engine.bundle_requests import is_create_only, parse_etag
from fhir_clr.engine.content import MAX_JSON_DEPTH, json_depth_exceeds
from fhir_clr.engine.fhirpath_patch import is_fhirpath_patch
from fhir_clr.engine.render import history_bundle, outcome_bytes, resource_bytes, searchset_bundle
from fhir_clr.engine.results import WriteResult
from fhir_clr.engine.writes import require_type
from fhir_clr.errors import FhirError, Issue
from fhir_clr.request_context import base_url, bundles, engine

router = PlainRouter()


def _if_match(request: Request) -> int | None:
    value = request.headers.get("if-match")
    return parse_etag(value) if value else None


def _query(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def _criteria(request: Request) -> str:
    return "&".join(f"{k}={v}" for k, v in parse_qsl(request.url.query, keep_blank_values=True)
                    if k not in ("_format", "_pretty"))


async def _body(request: Request) -> dict[str, Any]:
    check_content_type(request)
    return body_budget(request).parse(await request.body())


def _summary_params(request: Request) -> tuple[str | None, list[str]]:
    summary = request.query_params.get("_summary")
    elements = [e for e in request.query_params.get("_elements", "").split(",") if e]
    return summary, elements


def _written(request: Request, result: WriteResult, *, location: bool) -> Response:
    prefer = parse_prefer(request)
    stored = result.stored
    if stored is None:
        return fhir_response(outcome_bytes([Issue(code="informational", severity="information",
                                                  message="Nothing to change")]), result.status)
    return write_response(stored, result.status, base_url(request), prefer,
                          location=location and result.status == 201)


def _deleted(result: WriteResult) -> Response:
    message = "Resource deleted" if result.changed else "Nothing to delete"
    headers = {"ETag": f'W/"{result.stored.version}"'} if result.stored is not None else None
    return fhir_response(outcome_bytes([Issue(code="informational", severity="information", message=message)]),
                         200, headers)


# ---- system level -----------------------------------------------------------------------------------


@router.post("/")
async def batch_or_transaction(request: Request) -> Response:
    """``POST [base]`` with a batch or transaction Bundle."""
    check_accept(request)
    bundle = await _body(request)
    prefer = parse_prefer(request)
    content = await bundles(request).process(bundle, base_url(request), return_body=prefer.return_ != "minimal")
    return fhir_response(content)


@router.get("/_history")
async def system_history(request: Request) -> Response:
    """``GET [base]/_history``."""
    check_accept(request)
    result = await engine(request).history(None, None, _query(request))
    return fhir_response(history_bundle(result, base_url(request), "_history"))


# ---- type level -------------------------------------------------------------------------------------


@router.get("/{resource_type}/_history")
async def type_history(request: Request, resource_type: str) -> Response:
    """``GET [base]/[type]/_history``."""
    check_accept(request)
    result = await engine(request).history(resource_type, None, _query(request))
    return fhir_response(history_bundle(result, base_url(request), f"{resource_type}/_history"))


@router.post("/{resource_type}/_search")
async def search_post(request: Request, resource_type: str) -> Response:
    """``POST [base]/[type]/_search`` with form-encoded parameters (merged with the URL's)."""
    check_accept(request)
    return await _search(request, resource_type, await search_post_params(request))


async def search_post_params(request: Request) -> list[tuple[str, str]]:
    """The parameters of a ``POST …/_search``: the URL's, then the form-encoded body's (its type checked)."""
    params = _query(request)
    raw = await request.body()
    if raw:
        check_content_type(request, allow_form=True)
        params += parse_qsl(raw.decode("utf-8", errors="replace"), keep_blank_values=True)
    return params


@router.get("/{resource_type}")
async def search_get(request: Request, resource_type: str) -> Response:
    """``GET [base]/[type]?params``."""
    check_accept(request)
    return await _search(request, resource_type, _query(request))


async def _search(request: Request, resource_type: str, params: list[tuple[str, str]]) -> Response:
    check_limits(params)
    prefer = parse_prefer(request)
    base = base_url(request)
    result = await engine(request).search(resource_type, params, strict=prefer.strict,
                                          request_base=base)
    return fhir_response(searchset_bundle(result, base, resource_type))


@router.post("/{resource_type}")
async def create(request: Request, resource_type: str) -> Response:
    """``POST [base]/[type]`` (conditional with ``If-None-Exist``)."""
    check_accept(request)
    require_type(resource_type)
    body = await _body(request)
    result = await engine(request).create(resource_type, body, request.headers.get("if-none-exist"))
    return _written(request, result, location=True)


@router.put("/{resource_type}")
async def conditional_update(request: Request, resource_type: str) -> Response:
    """``PUT [base]/[type]?criteria``."""
    check_accept(request)
    body = await _body(request)
    result = await engine(request).conditional_update(resource_type, _criteria(request), body,
                                                      _if_match(request))
    return _written(request, result, location=True)


@router.patch("/{resource_type}")
async def conditional_patch(request: Request, resource_type: str) -> Response:
    """``PATCH [base]/[type]?criteria`` with a JSON Patch or a FHIRPath Patch."""
    check_accept(request)
    operations = await _patch_body(request)
    result = await engine(request).conditional_patch(resource_type, _criteria(request), operations,
                                                     _if_match(request))
    return _written(request, result, location=False)


@router.delete("/{resource_type}")
async def conditional_delete(request: Request, resource_type: str) -> Response:
    """``DELETE [base]/[type]?criteria``."""
    check_accept(request)
    return _deleted(await engine(request).conditional_delete(resource_type, _criteria(request)))


# ---- instance level ---------------------------------------------------------------------------------


@router.get("/{resource_type}/{resource_id}/_history")
async def instance_history(request: Request, resource_type: str, resource_id: str) -> Response:
    """``GET [base]/[type]/[id]/_history``."""
    check_accept(request)
    result = await engine(request).history(resource_type, resource_id, _query(request))
    return fhir_response(history_bundle(result, base_url(request), f"{resource_type}/{resource_id}/_history"))


@router.get("/{resource_type}/{resource_id}/_history/{version}")
async def vread(request: Request, resource_type: str, resource_id: str, version: str) -> Response:
    """``GET [base]/[type]/[id]/_history/[vid]``."""
    check_accept(request)
    stored = await engine(request).vread(resource_type, resource_id, version)
    summary, elements = _summary_params(request)
    return fhir_response(resource_bytes(stored, summary, elements), 200, version_headers(stored))


@router.get("/{resource_type}/{resource_id}")
async def read(request: Request, resource_type: str, resource_id: str) -> Response:
    """``GET [base]/[type]/[id]`` with conditional read (If-None-Match / If-Modified-Since → 304)."""
    check_accept(request)
    stored = await engine(request).read(resource_type, resource_id)
    headers = version_headers(stored)
    if not_modified(stored, request.headers.get("if-none-match"), request.headers.get("if-modified-since")):
        return Response(status_code=304, headers=headers)
    summary, elements = _summary_params(request)
    return fhir_response(resource_bytes(stored, summary, elements), 200, headers)


@router.put("/{resource_type}/{resource_id}")
async def update(request: Request, resource_type: str, resource_id: str) -> Response:
    """``PUT [base]/[type]/[id]`` (update-as-create allowed; ``If-None-Match: *`` makes it create-only)."""
    check_accept(request)
    create_only = is_create_only(request.headers.get("if-none-match"))
    body = await _body(request)
    result = await engine(request).update(resource_type, resource_id, body, _if_match(request),
                                          create_only=create_only)
    return _written(request, result, location=True)


async def _patch_body(request: Request) -> list[Any] | dict[str, Any]:
    """A JSON Patch array (``application/json-patch+json``) or a FHIRPath Patch ``Parameters`` resource
    (``application/fhir+json``)."""
    kind = check_content_type(request, allow_patch=True)
    raw = await request.body()
    budget = body_budget(request)
    if kind != JSON_PATCH:
        parameters = budget.parse(raw)
        if not is_fhirpath_patch(parameters):
            raise FhirError(415, "not-supported", "A FHIR JSON PATCH body must be a Parameters resource (FHIRPath "
                            "Patch); a JSON Patch takes application/json-patch+json")
        return parameters
    within = budget.check_bytes(raw, "JSON Patch body")
    try:
        operations = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FhirError(400, "structure", "The JSON Patch body is not valid JSON") from None
    if not isinstance(operations, list):
        raise FhirError(400, "structure", "A JSON Patch document must be a JSON array of operations")
    if not within:
        budget.check_tree(operations, "JSON Patch body")
    if json_depth_exceeds(operations, MAX_JSON_DEPTH):
        raise FhirError(400, "structure", f"The JSON Patch body nests deeper than {MAX_JSON_DEPTH} levels")
    return operations


@router.patch("/{resource_type}/{resource_id}")
async def patch(request: Request, resource_type: str, resource_id: str) -> Response:
    """``PATCH [base]/[type]/[id]`` with a JSON Patch document or a FHIRPath Patch."""
    check_accept(request)
    operations = await _patch_body(request)
    result = await engine(request).patch(resource_type, resource_id, operations, _if_match(request))
    return _written(request, result, location=False)


@router.delete("/{resource_type}/{resource_id}")
async def delete(request: Request, resource_type: str, resource_id: str) -> Response:
    """``DELETE [base]/[type]/[id]``."""
    check_accept(request)
    return _deleted(await engine(request).delete(resource_type, resource_id, _if_match(request)))

