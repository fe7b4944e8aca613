"""``GET [base]/$clr-worklist``: how many items each compliance worklist group holds, with the plain FHIR search
that lists them. Counts run through the caller's engine, so a provider sees only its own referrals."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.api.negotiation import check_accept
from fhir_clr.api.responses import fhir_response
from fhir_clr.clr.deadlines import Deadlines
from fhir_clr.clr.worklist import WorklistGroup, worklist_groups
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.request_context import engine, services

router = APIRouter()


async def _count(caller: Engine, group: WorklistGroup, params: list[tuple[str, str]]) -> int:
    result = await caller.search(group.resource_type, [*params, ("_summary", "count")], strict=True)
    return int(result.total or 0)


async def _group_parameter(caller: Engine, group: WorklistGroup) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [{"name": "count", "valueInteger": await _count(caller, group, group.params)},
                                   {"name": "search", "valueString": group.url()}]
    for label, params in group.parts:
        count = await _count(caller, group, params)
        if count:
            parts.append({"name": "detail", "part": [{"name": "code", "valueCode": label},
                                                  {"name": "count", "valueInteger": count},
                                                  {"name": "search", "valueString": group.url(params)}]})
    return {"name": group.name, "part": parts}


@router.get("/$clr-worklist")
async def clr_worklist(request: Request) -> Response:
    """The worklist groups with their counts, as a Parameters resource."""
    check_accept(request)
    days_text = request.query_params.get("days")
    if days_text is not None and not (days_text.isdigit() and int(days_text) <= 60):
        raise FhirError(400, "value", "days must be a whole number of business days from 0 to 60",
                        expression="days")
    rules = services(request).rules
    caller = engine(request)
    today = Deadlines(rules).local_date(caller.clock())
    groups = worklist_groups(today, rules, services(request).codes,
                             due_soon_days=int(days_text) if days_text is not None else None)
    parameters = [{"name": "today", "valueDate": today.isoformat()},
                  {"name": "rulesVersion", "valueString": rules["version"]}]
    parameters += [await _group_parameter(caller, group) for group in groups]
    return fhir_response(orjson.dumps({"resourceType": "Parameters", "parameter": parameters}))
