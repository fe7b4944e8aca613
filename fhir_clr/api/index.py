"""``GET /``: where to go from the server's root (no PHI, answered without a token); ``/console`` → ``/console/``."""

from __future__ import annotations

from html import escape

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from fhir_clr.config import package_version
from fhir_clr.request_context import base_url

router = APIRouter(include_in_schema=False)
LINKS = (("metadata", "/metadata", "FHIR R4 CapabilityStatement"),
         ("console", "/console/", "staff console (worklist, imports, compliance)"),
         ("docs", "/docs", "HTTP API documentation"),
         ("readiness", "/readyz", "readiness probe"))


@router.get("/")
async def index(request: Request) -> Response:
    """Links to the capability statement, the console and the API documentation: HTML for a browser, else
    JSON."""
    base = base_url(request)
    if "text/html" in request.headers.get("accept", ""):
        items = "".join(f'<li><a href="{escape(base + path)}">{escape(path)}</a> {escape(text)}</li>'
                        for _, path, text in LINKS)
        return HTMLResponse(f"<!doctype html><html lang=en><title>fhir-clr</title><h1>fhir-clr "
                            f"{escape(package_version())}</h1><p>FHIR R4 base: {escape(base)}/</p><ul>{items}</ul>")
    document = {"name": "fhir-clr", "version": package_version(), "fhirVersion": "4.0.1", "base": base + "/",
                "links": {name: base + path for name, path, _ in LINKS}}
    return Response(orjson.dumps(document), media_type="application/json")


@router.get("/console")
async def console_root() -> Response:
    """The console lives at ``/console/``."""
    return RedirectResponse("/console/", status_code=308)
