"""``POST [base]/$import`` and its status URL (import an RTF file over HTTP as a background job), and
``GET [base]/$clr-export`` (a provider's referrals as a MIF, ASF or RTF file).

* ``POST /$import?kind=rtf[&program=ecm|cs][&provider=NPI][&dryRun=true]`` with the file as the body (CSV, pipe,
  tab or XLSX; any content type) → ``202 Accepted`` and ``Content-Location`` = the status URL.
* ``GET /$import-status/{id}`` → ``202`` with ``X-Progress`` while running; ``200`` with the report (counts, the
  DocumentReference of the kept file, links to the rejects) when done.
* ``GET /$import-status/{id}/rejects.csv`` and ``/$import-status/{id}/outcome`` → the rejected rows.
* ``DELETE /$import-status/{id}`` → stop the job (committed rows stay) and forget it.
"""

from __future__ import annotations

import io

import orjson
from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fhir_clr.api.responses import fhir_response
from fhir_clr.errors import FhirError
from fhir_clr.imports.exports import ExportPeriod, ReferralExporter
from fhir_clr.imports.http_jobs import ImportJob, ImportJobs
from fhir_clr.imports.job import FileImporter, ImportRequest
from fhir_clr.imports.results import rejects_csv, rejects_outcome
from fhir_clr.mapping.spec import find_spec
from fhir_clr.request_context import base_url, engine, services

router = APIRouter()


def _jobs(request: Request) -> ImportJobs:
    return request.app.state.import_jobs  # created and stopped by the app's lifespan


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


@router.post("/$import")
async def start_import(request: Request) -> Response:
    """Start importing the file in the body; 202 with the status URL."""
    params = request.query_params
    kind = params.get("kind")
    if not kind:
        raise FhirError(400, "required", "Name the file kind: $import?kind=rtf", expression="kind")
    data = await request.body()
    if not data:
        raise FhirError(400, "required", "The request body must be the file to import")
    caller = engine(request)
    caller.access.require("Task", "u")
    importer = FileImporter(services(request).bundles.with_engine(caller), caller.clock, services(request).specs)
    import_request = ImportRequest(kind, data, params.get("filename"), params.get("program"),
                                   params.get("provider"), _flag(params.get("dryRun")), sheet=params.get("sheet"))
    importer.check(import_request)  # a request that cannot start is refused now, not as a failed job later

    async def work(job: ImportJob) -> object:
        return await importer.run(import_request, progress=lambda rows: setattr(job, "rows_done", rows))

    job = _jobs(request).start(caller.access.organization, work)
    location = f"{base_url(request)}/$import-status/{job.id}"
    return Response(status_code=202, headers={"Content-Location": location})


def _job(request: Request, job_id: str) -> ImportJob:
    job = _jobs(request).get(job_id, engine(request).access.organization)
    if job is None:
        raise FhirError(404, "not-found", "No import job with this id in this server process (jobs are not kept "
                        "across restarts): the file's DocumentReference says whether it finished, and "
                        "importing the same file again completes it")
    return job


def _finished(request: Request, job_id: str) -> ImportJob:
    job = _job(request, job_id)
    if job.failed is not None:
        raise FhirError(500, "exception", job.failed)
    if job.report is None:
        raise FhirError(409, "conflict", "The import is still running; poll its status URL")
    return job


@router.get("/$import-status/{job_id}")
async def import_status(request: Request, job_id: str) -> Response:
    """Progress (202) or the finished report (200)."""
    job = _job(request, job_id)
    if job.failed is not None:
        raise FhirError(500, "exception", job.failed)
    if job.report is None:
        return Response(status_code=202, headers={"X-Progress": f"{job.rows_done} rows", "Retry-After": "2"})
    status_url = f"{base_url(request)}/$import-status/{job.id}"
    body = {**job.report.as_json(), "rejects": {"csv": f"{status_url}/rejects.csv", "outcome": f"{status_url}/outcome"}}
    return Response(content=orjson.dumps(body), media_type="application/json")


@router.get("/$import-status/{job_id}/rejects.csv")
async def import_rejects_csv(request: Request, job_id: str) -> Response:
    """The rejected rows as CSV (row, column, value, rule, message)."""
    report = _finished(request, job_id).report
    assert report is not None
    return Response(content=rejects_csv(report), media_type="text/csv; charset=utf-8")


@router.get("/$import-status/{job_id}/outcome")
async def import_rejects_outcome(request: Request, job_id: str) -> Response:
    """The rejected rows as an OperationOutcome."""
    report = _finished(request, job_id).report
    assert report is not None
    return fhir_response(orjson.dumps(rejects_outcome(report)))


@router.delete("/$import-status/{job_id}")
async def cancel_import(request: Request, job_id: str) -> Response:
    """Stop the job and forget it."""
    _jobs(request).cancel(_job(request, job_id))
    return Response(status_code=202)


EXPORT_MEDIA = {"csv": "text/csv; charset=utf-8", "pipe": "text/plain; charset=utf-8",
                "tab": "text/tab-separated-values; charset=utf-8",
                "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}


@router.get("/$clr-export")
async def clr_export(request: Request) -> Response:
    """``GET /$clr-export?kind=mif|asf|rtf&provider=NPI&period=YYYY-MM[&program=ecm|cs][&format=csv]``: the
    provider's referrals open in the month, rendered through the mapping spec, as a file download."""
    params = request.query_params
    fmt = params.get("format", "csv")
    if fmt not in EXPORT_MEDIA:
        raise FhirError(400, "value", f"format must be one of {', '.join(EXPORT_MEDIA)}", expression="format")
    for name in ("kind", "provider", "period"):
        if not params.get(name):
            raise FhirError(400, "required", f"The {name} parameter is required", expression=name)
    try:
        spec = find_spec(params["kind"], params.get("program"), specs=services(request).specs)
        period = ExportPeriod.parse(params["period"])
    except (LookupError, ValueError) as error:
        raise FhirError(400, "value", f"Cannot export: {error}") from None
    out = io.BytesIO()
    await ReferralExporter(engine(request), spec).write(params["provider"], period, fmt, out)
    filename = f"{spec.id}-{params['period']}.{'xlsx' if fmt == 'xlsx' else 'csv' if fmt == 'csv' else 'txt'}"
    return Response(content=out.getvalue(), media_type=EXPORT_MEDIA[fmt],
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
