"""HTTP responses carrying FHIR JSON, with versioning headers."""

from __future__ import annotations

from email.utils import formatdate, parsedate_to_datetime

from starlette.responses import Response

from fhir_clr.api.negotiation import Prefer
from fhir_clr.engine.render import etag, outcome_bytes, resource_bytes
from fhir_clr.errors import FhirError, Issue
from fhir_clr.store.port import StoredResource

MEDIA_TYPE = "application/fhir+json; charset=utf-8"


def fhir_response(content: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A response with the FHIR JSON media type."""
    return Response(content=content, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def error_response(error: FhirError) -> Response:
    """The OperationOutcome response for an error."""
    return fhir_response(outcome_bytes(error.issues), error.status, error.headers)


def http_date(stored: StoredResource) -> str:
    """``Last-Modified`` value of a stored version (HTTP-date, second precision)."""
    return formatdate(stored.last_updated_us / 1_000_000, usegmt=True)


def version_headers(stored: StoredResource) -> dict[str, str]:
    """ETag and Last-Modified headers of a stored version."""
    return {"ETag": etag(stored), "Last-Modified": http_date(stored)}


def write_response(stored: StoredResource, status: int, base_url: str, prefer: Prefer,
                   *, location: bool) -> Response:
    """Response to a create/update/patch, honouring ``Prefer: return=``."""
    headers = version_headers(stored)
    if location:
        headers["Location"] = (f"{base_url}/{stored.resource_type}/{stored.resource_id}"
                               f"/_history/{stored.version}")
    if prefer.return_ == "minimal":
        return Response(status_code=status, headers=headers)
    if prefer.return_ == "OperationOutcome":
        verb = "created" if status == 201 else "stored"
        issue = Issue(code="informational", severity="information",
                      message=f"{stored.resource_type}/{stored.resource_id} {verb} as version {stored.version}")
        return fhir_response(outcome_bytes([issue]), status, headers)
    return fhir_response(resource_bytes(stored), status, headers)


def not_modified(stored: StoredResource, if_none_match: str | None, if_modified_since: str | None) -> bool:
    """True when a conditional read may answer 304."""
    if if_none_match is not None:
        wanted = {tag.strip() for tag in if_none_match.split(",")}
        return etag(stored) in wanted or f'"{stored.version}"' in wanted or "*" in wanted
    if if_modified_since is not None:
        try:
            since = parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
        return int(stored.last_updated_us // 1_000_000) <= int(since)
    return False
