"""Subscription operations of the R4 Backport IG — ``$status`` (instance and type level) and ``$events`` —
plus ``$resend`` (deliver again from an event number, e.g. dead-lettered events after an error) and
``$delivery-attempts`` (recent attempts with status code, latency and error, queue depth). Each checks first
that the caller may read the Subscription(s)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.api.negotiation import check_accept
from fhir_clr.api.responses import fhir_response
from fhir_clr.errors import FhirError
from fhir_clr.request_context import base_url, engine, services, subscription_operations
from fhir_clr.subscriptions.notifications import status_searchset
from fhir_clr.subscriptions.operations import resend_events

router = APIRouter()
MAX_ATTEMPTS_SHOWN = 100


async def _subscription(request: Request, subscription_id: str) -> dict[str, Any]:
    stored = await engine(request).read("Subscription", subscription_id)
    return orjson.loads(stored.body or b"{}")  # type: ignore[no-any-return]


def _number(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return None
    if not text.isdigit():
        raise FhirError(400, "value", f"{name} must be a whole number", expression=name)
    return int(text)


@router.get("/Subscription/$topic-list")
async def topic_list(request: Request) -> Response:
    """``GET [base]/Subscription/$topic-list`` (Backport IG, R4): the canonical URL of every topic offered."""
    check_accept(request)
    topics = services(request).topics.all()
    return fhir_response(orjson.dumps({"resourceType": "Parameters", "parameter": [
        {"name": "subscription-topic-canonical", "valueCanonical": t.url} for t in topics]}))


@router.get("/Subscription/$status")
async def status_of_many(request: Request) -> Response:
    """Status of the caller's Subscriptions, optionally only the given ``id``s and/or ``status``es."""
    check_accept(request)
    params = [("_count", "1000")]
    ids = request.query_params.getlist("id")
    statuses = request.query_params.getlist("status")
    if ids:
        params.append(("_id", ",".join(ids)))
    if statuses:
        params.append(("status", ",".join(statuses)))
    found = await engine(request).search("Subscription", params, strict=True)
    operations, base = subscription_operations(request), base_url(request)
    parameters = [await operations.status(base, orjson.loads(s.body)) for s in found.matches if s.body]
    return fhir_response(orjson.dumps(status_searchset(base, parameters)))


@router.get("/Subscription/{subscription_id}/$status")
async def status_of_one(request: Request, subscription_id: str) -> Response:
    """Status of one Subscription (a searchset holding one status Parameters)."""
    check_accept(request)
    subscription = await _subscription(request, subscription_id)
    base = base_url(request)
    status = await subscription_operations(request).status(base, subscription)
    return fhir_response(orjson.dumps(status_searchset(base, [status])))


@router.get("/Subscription/{subscription_id}/$events")
async def events(request: Request, subscription_id: str) -> Response:
    """Stored events ``eventsSinceNumber``..``eventsUntilNumber`` as a ``history`` Bundle."""
    check_accept(request)
    subscription = await _subscription(request, subscription_id)
    bundle = await subscription_operations(request).events(
        base_url(request), subscription, _number(request, "eventsSinceNumber"),
        _number(request, "eventsUntilNumber"), request.query_params.get("content"))
    return fhir_response(orjson.dumps(bundle))


@router.post("/Subscription/{subscription_id}/$resend")
async def resend(request: Request, subscription_id: str) -> Response:
    """Deliver again from ``eventsSinceNumber`` (default: the first undelivered event); a Subscription in
    ``error`` or ``off`` goes back to ``requested`` (new handshake, then the events in order)."""
    await resend_events(engine(request), subscription_operations(request), subscription_id,
                        _number(request, "eventsSinceNumber"))
    return await status_of_one(request, subscription_id)


@router.get("/Subscription/{subscription_id}/$delivery-attempts")
async def delivery_attempts(request: Request, subscription_id: str) -> Response:
    """The latest delivery attempts (``_count``, default and at most 100), newest first."""
    check_accept(request)
    await _subscription(request, subscription_id)
    limit = min(_number(request, "_count") or MAX_ATTEMPTS_SHOWN, MAX_ATTEMPTS_SHOWN)
    return fhir_response(orjson.dumps(await subscription_operations(request).attempts(subscription_id, limit)))
