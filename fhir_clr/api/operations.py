"""Server-level endpoints: CapabilityStatement, ``$validate``, health and readiness probes."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.api.body_budget import body_budget
from fhir_clr.api.negotiation import check_accept, check_content_type
from fhir_clr.api.responses import fhir_response
from fhir_clr.engine.capability import capability_statement
from fhir_clr.engine.render import outcome_bytes
from fhir_clr.engine.validation_op import validate_operation
from fhir_clr.errors import FhirError
from fhir_clr.request_context import base_url, engine, services
from fhir_clr.store.port import RecordWrite, StoreUnavailable

router = APIRouter()
READINESS_KIND = "readiness"
"""The record kind of the readiness probe's write (one record, overwritten)."""


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    """``GET [base]/metadata``: the CapabilityStatement (``mode=full``, the default, or ``normative``);
    ``mode=terminology`` is a 400: this server has no terminology service to describe."""
    check_accept(request)
    mode = request.query_params.get("mode", "full")
    if mode not in ("full", "normative"):
        raise FhirError(400, "not-supported", "metadata mode must be full or normative; this server offers no "
                        "terminology service, so it has no TerminologyCapabilities", expression="mode")
    base = base_url(request)
    token_url = f"{base}/auth/token" if getattr(request.app.state, "auth", None) is not None else None
    built = services(request)
    statement = capability_statement(built.registry, base, token_url, [t.url for t in built.topics.all()])
    return fhir_response(orjson.dumps(statement))


@router.get("/healthz")
async def healthz() -> Response:
    """Liveness: the process answers."""
    return Response(content=b'{"status":"ok"}', media_type="application/json")


@router.get("/readyz")
async def readyz(request: Request) -> Response:
    """Readiness: the store answers, and takes writes again when the last one failed (a probe record)."""
    store = services(request).store
    ready = await store.ping()
    if ready and store.inner.writes_failing:
        try:
            await store.write_records([RecordWrite(READINESS_KIND, "probe", {"at": time.time()})])
        except StoreUnavailable:
            ready = False
    if ready:
        return Response(content=b'{"status":"ready"}', media_type="application/json")
    return Response(content=b'{"status":"store unavailable"}', status_code=503, media_type="application/json",
                    headers={"Retry-After": "30"})


async def _validate(request: Request, resource_type: str, resource_id: str | None) -> Response:
    check_accept(request)
    check_content_type(request)
    body = body_budget(request).parse(await request.body())
    svc = services(request)
    caller_engine = engine(request)
    if resource_id is not None:
        await caller_engine.read(resource_type, resource_id)  # scope "r" and 404 outside the caller's reach
    elif not (caller_engine.access.permits(resource_type, "c") or caller_engine.access.permits(resource_type, "u")):
        raise FhirError(403, "forbidden", f"The access token's scopes do not allow writing {resource_type}")
    issues = await validate_operation(caller_engine, resource_type, resource_id, body, svc.known_profiles,
                                      request.query_params.get("profile"))
    return fhir_response(outcome_bytes(issues))


@router.post("/{resource_type}/$validate")
async def validate_type(request: Request, resource_type: str) -> Response:
    """``POST [base]/[type]/$validate``."""
    return await _validate(request, resource_type, None)


@router.post("/{resource_type}/{resource_id}/$validate")
async def validate_instance(request: Request, resource_type: str, resource_id: str) -> Response:
    """``POST [base]/[type]/[id]/$validate``."""
    return await _validate(request, resource_type, resource_id)
