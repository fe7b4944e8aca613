"""``GET /metrics``: the Prometheus text exposition of the process's metrics (no PHI; see
``fhir_clr.observability.metrics``)."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.observability.metrics import REGISTRY
from fhir_clr.request_context import scrape_gauges

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """The current metrics."""
    await scrape_gauges(request).refresh()
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
