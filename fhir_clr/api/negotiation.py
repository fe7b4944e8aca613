"""Content negotiation: ``Accept``/``_format`` (406), request ``Content-Type`` (415), ``fhirVersion``, Prefer."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from fhir_clr.errors import FhirError

FHIR_JSON = "application/fhir+json"
JSON_TYPES = frozenset({"application/fhir+json", "application/json", "json", "text/json"})
ACCEPT_ANY = frozenset({"*/*", "application/*", "*"})
XML_TYPES = frozenset({"xml", "text/xml", "application/xml", "application/fhir+xml"})
JSON_PATCH = "application/json-patch+json"
FORM = "application/x-www-form-urlencoded"


def _media_types(header: str) -> list[tuple[str, dict[str, str]]]:
    types = []
    for part in header.split(","):
        pieces = [p.strip() for p in part.split(";")]
        if not pieces[0]:
            continue
        params = {}
        for piece in pieces[1:]:
            name, _, value = piece.partition("=")
            params[name.strip().lower()] = value.strip().strip('"')
        types.append((pieces[0].lower(), params))
    return types


def _check_version(params: dict[str, str], status: int) -> None:
    version = params.get("fhirversion")
    if version is not None and version not in ("4.0", "4.0.1"):
        raise FhirError(status, "not-supported", f"This server speaks FHIR 4.0 (R4), not fhirVersion={version}")


def check_accept(request: Request) -> None:
    """Refuse (406) a response format we cannot produce. ``_format`` wins over ``Accept``."""
    fmt = request.query_params.get("_format")
    if fmt is not None:
        kind, params = _media_types(fmt)[0] if _media_types(fmt) else ("", {})
        if kind not in JSON_TYPES:
            raise FhirError(406, "not-supported", "Only JSON is served (_format=json or application/fhir+json)")
        _check_version(params, 406)
        return
    header = request.headers.get("accept")
    if not header:
        return
    types = _media_types(header)
    acceptable = False
    for kind, params in types:
        if kind in JSON_TYPES or kind in ACCEPT_ANY or kind == "text/html" or kind == "text/plain":
            _check_version(params, 406)
            acceptable = True
    if not acceptable:
        raise FhirError(406, "not-supported", "Only application/fhir+json (or application/json) is served")


def check_content_type(request: Request, *, allow_patch: bool = False, allow_form: bool = False) -> str:
    """Refuse (415) a request body we cannot read; return the media type."""
    header = request.headers.get("content-type", "")
    types = _media_types(header)
    if not types:
        raise FhirError(415, "not-supported", "Content-Type is required (application/fhir+json)")
    kind, params = types[0]
    if kind in JSON_TYPES:
        _check_version(params, 415)
        return FHIR_JSON
    if allow_patch and kind == JSON_PATCH:
        return JSON_PATCH
    if allow_form and kind == FORM:
        return FORM
    if kind in XML_TYPES:
        raise FhirError(415, "not-supported", "XML is not supported; send application/fhir+json")
    raise FhirError(415, "not-supported", f"Content-Type {kind} is not supported; send application/fhir+json")


@dataclass(slots=True, frozen=True)
class Prefer:
    """The parts of the ``Prefer`` header the server honours."""

    return_: str = "representation"
    strict: bool = False


def parse_prefer(request: Request) -> Prefer:
    """Read ``Prefer: return=…`` and ``handling=strict|lenient``."""
    header = request.headers.get("prefer")
    if not header:
        return Prefer()
    return_ = "representation"
    strict = False
    for part in header.replace(";", ",").split(","):
        name, _, value = part.strip().partition("=")
        value = value.strip().strip('"')
        if name == "return" and value in ("minimal", "representation", "OperationOutcome"):
            return_ = value
        elif name == "handling":
            strict = value == "strict"
    return Prefer(return_=return_, strict=strict)
