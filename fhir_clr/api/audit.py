"""``AuditEvent`` read and search, served from the audit log (``fhir_clr.auth.audit_log``) for callers who may
see every AuditEvent (the plan). Any other caller gets exactly what the engine answers for a type it may not
see (an empty searchset, 404), and dev mode (no audit) what the engine answers, as before the log existed.
Writes stay with the engine, whose access policy refuses them."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.api import rest
from fhir_clr.api.negotiation import check_accept, parse_prefer
from fhir_clr.api.plain_routes import PlainRouter
from fhir_clr.api.responses import fhir_response, version_headers
from fhir_clr.auth.audit_log import AUDIT_EVENT, AuditLog
from fhir_clr.engine.render import resource_bytes, searchset_bundle
from fhir_clr.errors import not_found
from fhir_clr.request_context import access, base_url, services

router = PlainRouter()


def _log(request: Request) -> AuditLog | None:
    """The audit log, when there is one (not in dev mode) and the caller may see all of it."""
    auth = getattr(request.app.state, "auth", None)
    if auth is None or access(request).restriction(AUDIT_EVENT) is not None:
        return None
    settings = services(request).settings
    return AuditLog(auth.audit.store, default_count=settings.default_page_size, max_count=settings.max_page_size)


async def _search(request: Request, log: AuditLog, params: list[tuple[str, str]]) -> Response:
    access(request).require(AUDIT_EVENT, "s")
    result = await log.search(params, strict=parse_prefer(request).strict)
    return fhir_response(searchset_bundle(result, base_url(request), AUDIT_EVENT))


@router.get("/AuditEvent")
async def search_audit(request: Request) -> Response:
    """``GET [base]/AuditEvent?params``."""
    log = _log(request)
    if log is None:
        return await rest.search_get(request, AUDIT_EVENT)
    check_accept(request)
    return await _search(request, log, list(request.query_params.multi_items()))


@router.post("/AuditEvent/_search")
async def search_audit_post(request: Request) -> Response:
    """``POST [base]/AuditEvent/_search`` with form-encoded parameters (merged with the URL's)."""
    log = _log(request)
    if log is None:
        return await rest.search_post(request, AUDIT_EVENT)
    check_accept(request)
    return await _search(request, log, await rest.search_post_params(request))


@router.get("/AuditEvent/{resource_id}")
async def read_audit(request: Request, resource_id: str) -> Response:
    """``GET [base]/AuditEvent/[id]``."""
    log = _log(request)
    if log is None:
        return await rest.read(request, AUDIT_EVENT, resource_id)
    check_accept(request)
    access(request).require(AUDIT_EVENT, "r")
    stored = await log.read(resource_id)
    if stored is None:
        raise not_found(AUDIT_EVENT, resource_id)
    return fhir_response(resource_bytes(stored, None, []), 200, version_headers(stored))
