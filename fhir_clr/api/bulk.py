"""Bulk Data ``$export`` over HTTP: kick-off at system, Patient and Group level (GET or POST), status polling,
the completion manifest, NDJSON file downloads and cancellation. Jobs, their status and their files are
visible only to the client that started them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from fhir_clr.api.body_budget import body_budget
from fhir_clr.bulk.groups import export_group
from fhir_clr.bulk.jobs import COMPLETE, FAILED, ExportJob
from fhir_clr.bulk.params import ExportRequest, parameters_body, parse_export
from fhir_clr.bulk.service import ExportService, same_requester
from fhir_clr.engine.engine import Engine
from fhir_clr.engine.render import outcome_bytes
from fhir_clr.errors import FhirError, Issue
from fhir_clr.request_context import access, base_url, engine

router = APIRouter()
NDJSON = "application/fhir+ndjson"
KEEP_FILES = timedelta(days=1)
SKIPPED_FILE = "skipped-types.ndjson"
"""The manifest's error file noting the requested types a lenient export left out (made from the job's request)."""


def _service(request: Request) -> ExportService:
    return request.app.state.exports  # type: ignore[no-any-return]


async def _kick_off(request: Request, level: str, group_id: str | None = None) -> Response:
    if "respond-async" not in request.headers.get("prefer", ""):
        raise FhirError(400, "required", "$export runs asynchronously: send 'Prefer: respond-async'")
    caller = engine(request)
    if request.method == "POST":
        try:
            raw = await request.body() or b"{}"
            budget = body_budget(request)
            within = budget.check_bytes(raw, "kick-off body")
            body = orjson.loads(raw)
            if not within:
                budget.check_tree(body, "kick-off body")
            pairs = parameters_body(body)
        except orjson.JSONDecodeError:
            raise FhirError(400, "invalid", "The kick-off body is not JSON") from None
    else:
        pairs = list(request.query_params.multi_items())
    lenient = "handling=lenient" in request.headers.get("prefer", "")
    export = _within_scopes(caller, parse_export(level, pairs, str(request.url), group_id=group_id, lenient=lenient),
                            lenient)
    if group_id is not None:
        await export_group(caller, group_id)  # 404 when unknown or not visible
    service = _service(request)
    if service.busy(access(request)):
        raise FhirError(429, "throttled", "An export of this client is still running; wait for it or cancel it",
                        headers={"Retry-After": "30"})
    job = service.start(export.as_doc(), access(request))
    headers = {"Content-Location": f"{base_url(request)}/$export-status/{job.id}"}
    if not export.skipped:
        return Response(status_code=202, headers=headers)
    return Response(outcome_bytes([_skipped_issue(export.skipped)]), status_code=202, headers=headers,
                    media_type="application/fhir+json")


def _within_scopes(caller: Engine, export: ExportRequest, lenient: bool) -> ExportRequest:
    """Each type a client names must be within its scopes: 403 otherwise, or left out (and noted) under
    ``handling=lenient``. Without ``_type``, the export holds every type of the level the scopes allow
    searching. 403 when no type is left."""
    if export.explicit_types and not lenient:
        for resource_type in export.types:
            caller.access.require(resource_type, "s")
        return export
    permitted = [t for t in export.types if caller.access.permits(t, "s")]
    if not permitted:
        raise FhirError(403, "forbidden", "The access token's scopes allow exporting none of the requested types")
    unscoped = tuple(t for t in export.types if t not in permitted) if export.explicit_types else ()
    return replace(export.limited_to(permitted), skipped=(*export.skipped, *unscoped))


def _skipped_issue(skipped: tuple[str, ...]) -> Issue:
    return Issue(code="not-supported", severity="warning",
                 message="Skipped (Prefer: handling=lenient), not exportable at this level or outside the access "
                 "token's scopes: " + ", ".join(t[:64] for t in skipped), expression="_type")


@router.api_route("/$export", methods=["GET", "POST"])
async def system_export(request: Request) -> Response:
    """Export every resource of the requested types the caller may see."""
    return await _kick_off(request, "system")


@router.api_route("/Patient/$export", methods=["GET", "POST"])
async def patient_export(request: Request) -> Response:
    """Export the Members and everything tied to them, referral Tasks and ServiceRequests included."""
    return await _kick_off(request, "patient")


@router.api_route("/Group/{group_id}/$export", methods=["GET", "POST"])
async def group_export(request: Request, group_id: str) -> Response:
    """Export the Group's Members and everything tied to them."""
    return await _kick_off(request, "group", group_id)


def _job(request: Request, job_id: str) -> ExportJob:
    job = _service(request).find(job_id)
    if job is None or not same_requester(job, access(request)):
        raise FhirError(404, "not-found", "No export job with this id (finished jobs are kept for a day)")
    return job


@router.get("/$export-status/{job_id}")
async def export_status(request: Request, job_id: str) -> Response:
    """202 with progress while the job runs, the manifest once complete, an OperationOutcome if it failed."""
    job = _job(request, job_id)
    if job.status == FAILED:
        raise FhirError(500, "exception", f"The export failed: {job.failure}")
    if job.status != COMPLETE:
        return Response(status_code=202, headers={"X-Progress": job.progress[:99], "Retry-After": "2"})
    files = f"{base_url(request)}/$export-file/{job.id}"
    manifest = {
        "transactionTime": job.transaction_time, "request": job.request["request_url"],
        "requiresAccessToken": bool(job.requester) or request.app.state.auth is not None,
        "output": [{"type": f.type, "url": f"{files}/{f.name}", "count": f.count} for f in job.output],
        "error": [{"type": "OperationOutcome", "url": f"{files}/{f.name}"} for f in job.errors]
        + ([{"type": "OperationOutcome", "url": f"{files}/{SKIPPED_FILE}"}] if job.request.get("skipped") else [])}
    if job.request.get("since"):
        manifest["deleted"] = [{"type": "Bundle", "url": f"{files}/{f.name}", "count": f.count} for f in job.deleted]
    expires = format_datetime(datetime.now(UTC) + KEEP_FILES, usegmt=True)
    return Response(orjson.dumps(manifest), media_type="application/json", headers={"Expires": expires})


@router.delete("/$export-status/{job_id}")
async def cancel_export(request: Request, job_id: str) -> Response:
    """Cancel a running job, or release a finished one; its files are removed."""
    _job(request, job_id)
    await _service(request).cancel(job_id)
    return Response(status_code=202)


@router.get("/$export-file/{job_id}/{name}")
async def export_file(request: Request, job_id: str, name: str) -> Response:
    """One NDJSON file of a finished job (streamed from disk)."""
    job = _job(request, job_id)
    if name == SKIPPED_FILE and job.status == COMPLETE and job.request.get("skipped"):
        return Response(outcome_bytes([_skipped_issue(tuple(job.request["skipped"]))]) + b"\n", media_type=NDJSON)
    known = {f.name for f in (*job.output, *job.deleted, *job.errors)}
    if job.status != COMPLETE or name not in known:
        raise FhirError(404, "not-found", "No such file in this export")
    return FileResponse(_service(request).jobs.folder(job.id) / name, media_type=NDJSON)
