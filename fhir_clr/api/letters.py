"""Member letters print batches over HTTP (plan role only; any other caller gets exactly the answer of an
operation this server does not have):

* ``POST [base]/$clr-print-batch[?date=YYYY-MM-DD]`` → the batch of that day (default today, plan-local) as a
  ``List``: ``201`` when this call cut it, ``200`` when it existed (or, as an empty List with ``emptyReason``,
  when nothing waited); ``Content-Location`` = its download URL.
* ``GET [base]/$clr-print-batch?batch=YYYY-MM-DD`` → the batch as one PDF (``application/pdf``).
* ``POST [base]/$clr-print-batch-mailed?batch=YYYY-MM-DD[&date=YYYY-MM-DD]`` → records the batch's letters as
  sent on ``date`` (default today); a ``Parameters`` with ``marked``, ``alreadySent``, ``notInPreparation``
  and ``notPrinted``.

A POST may carry its parameters as a ``Parameters`` body (``valueDate`` / ``valueString``) instead.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.api import rest
from fhir_clr.api.body_budget import body_budget
from fhir_clr.api.negotiation import ACCEPT_ANY, check_accept, check_content_type
from fhir_clr.api.responses import fhir_response
from fhir_clr.errors import FhirError
from fhir_clr.letters.batch import PrintBatches
from fhir_clr.request_context import access, base_url, engine

router = APIRouter()
PLAN_ROLE = "plan"
PDF = "application/pdf"
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
BATCH_OPERATION = "$clr-print-batch"
MAILED_OPERATION = "$clr-print-batch-mailed"


def _batches(request: Request) -> PrintBatches | None:
    """The print batches acting for the caller; None for anyone but the plan."""
    if str(access(request).role) != PLAN_ROLE:
        return None
    return request.app.state.print_batches.for_engine(engine(request))  # type: ignore[no-any-return]


async def _as_absent(request: Request, operation: str) -> Response:
    """What the same request gets where no such operation exists: the REST route the path falls to."""
    if request.method == "POST":
        return await rest.create(request, operation)
    return await rest.search_get(request, operation)


async def _parameters(request: Request) -> dict[str, Any]:
    """The operation's parameters: the query, or a ``Parameters`` body when one is sent."""
    values: dict[str, Any] = dict(request.query_params)
    if not await request.body():
        return values
    check_content_type(request)
    body = body_budget(request).parse(await request.body())
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "The body of this operation must be a Parameters resource")
    for parameter in body.get("parameter") or ():
        if isinstance(parameter, dict) and isinstance(parameter.get("name"), str):
            value = next((v for k, v in parameter.items() if k.startswith("value")), None)
            values[parameter["name"]] = value
    return values


def _day(values: dict[str, Any], name: str, default: date | None) -> date:
    value = values.get(name)
    if value is None and default is not None:
        return default
    if not isinstance(value, str) or not DAY.match(value):
        raise FhirError(400, "value" if value is not None else "required",
                        f"{name} must be a date (YYYY-MM-DD)", expression=name)
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FhirError(400, "value", f"{name} must be a date (YYYY-MM-DD)", expression=name) from None


def _download_url(request: Request, day: date) -> str:
    return f"{base_url(request)}/{BATCH_OPERATION}?batch={day.isoformat()}"


@router.post(f"/{BATCH_OPERATION}")
async def cut_batch(request: Request) -> Response:
    """Cut (or return) the print batch of a day."""
    batches = _batches(request)
    if batches is None:
        return await _as_absent(request, BATCH_OPERATION)
    check_accept(request)
    day = _day(await _parameters(request), "date", batches.today())
    result = await batches.cut(day)
    return fhir_response(orjson.dumps(result.batch), 201 if result.created else 200,
                         {"Content-Location": _download_url(request, day)})


@router.api_route(f"/{BATCH_OPERATION}", methods=["GET", "HEAD"])
async def download_batch(request: Request) -> Response:
    """The print batch as one PDF."""
    batches = _batches(request)
    if batches is None:
        return await _as_absent(request, BATCH_OPERATION)
    day = _day(dict(request.query_params), "batch", None)
    batch = await batches.require(day)
    accept = request.headers.get("accept")
    if accept and not any(kind.split(";")[0].strip().lower() in (PDF, *ACCEPT_ANY) for kind in accept.split(",")):
        raise FhirError(406, "not-supported", "A print batch is served as application/pdf")
    pdf, _ = await batches.print_file(batch, day)
    return Response(content=pdf, media_type=PDF, headers={
        "Content-Disposition": f'attachment; filename="print-batch-{day.isoformat()}.pdf"',
        "Cache-Control": "no-store"})


@router.post(f"/{MAILED_OPERATION}")
async def batch_mailed(request: Request) -> Response:
    """Record a print batch as mailed on a date."""
    batches = _batches(request)
    if batches is None:
        return await _as_absent(request, MAILED_OPERATION)
    check_accept(request)
    values = await _parameters(request)
    day = _day(values, "batch", None)
    done = await batches.mark_mailed(day, _day(values, "date", batches.today()))
    return fhir_response(orjson.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "marked", "valueInteger": done.marked}, {"name": "alreadySent", "valueInteger": done.already_sent},
        {"name": "notInPreparation", "valueInteger": done.not_in_preparation},
        {"name": "notPrinted", "valueInteger": done.not_printed}]}))
