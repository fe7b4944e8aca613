"""Kick-off parameters of ``$export`` (query string of a GET, or a ``Parameters`` body of a POST), checked
with a specific OperationOutcome for anything the server does not support."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qsl, unquote

from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.allowlist import R4_RESOURCE_TYPES
from fhir_clr.search.values import parse_date_range

OUTPUT_FORMATS = ("application/fhir+ndjson", "application/ndjson", "ndjson")
SUPPORTED = frozenset({"_outputFormat", "_type", "_since", "_typeFilter", "includeAssociatedData", "patient"})
EXPORTABLE_TYPES = frozenset(R4_RESOURCE_TYPES) - {"Binary", "Subscription", "AuditEvent"}
"""Types an export may contain: Binary content is exported as DocumentReference; subscriptions and the audit
trail are server bookkeeping, not reporting data."""

PATIENT_LINKS: dict[str, tuple[str, ...]] = {
    "Patient": ("_id",), "Task": ("patient",), "ServiceRequest": ("subject",), "Communication": ("subject",),
    "CommunicationRequest": ("subject",), "Consent": ("patient",), "Coverage": ("beneficiary",),
    "Condition": ("subject",), "Goal": ("subject",), "Observation": ("subject",), "Procedure": ("subject",),
    "QuestionnaireResponse": ("subject",), "DocumentReference": ("subject",), "CareTeam": ("subject",),
    "CarePlan": ("subject",), "Encounter": ("subject",), "EpisodeOfCare": ("patient",),
    "RelatedPerson": ("patient",), "Provenance": ("patient",), "Basic": ("subject",), "List": ("subject",),
    "Device": ("patient",),
}
"""For Patient and Group exports: the search parameter tying each type to its Member. Task and ServiceRequest
are not in the R4 Patient compartment; they are included on purpose (the referrals are what reporting needs)."""


@dataclass(frozen=True, slots=True)
class ExportRequest:
    """What to export."""

    level: str
    """``system``, ``patient`` or ``group``."""
    types: tuple[str, ...]
    since: str | None = None
    since_us: int | None = None
    type_filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Per type, the search query strings of ``_typeFilter`` (ORed)."""
    group_id: str | None = None
    patients: tuple[str, ...] = ()
    """POST ``patient`` references limiting a Patient or Group export."""
    request_url: str = ""
    skipped: tuple[str, ...] = ()
    """Requested types this level cannot export, left out under ``Prefer: handling=lenient``."""
    explicit_types: bool = True
    """False when the client gave no ``_type`` (every type it may read is exported)."""

    def as_doc(self) -> dict[str, Any]:
        """The request as stored with its job."""
        return {"level": self.level, "types": list(self.types), "since": self.since, "since_us": self.since_us,
                "type_filters": {k: list(v) for k, v in self.type_filters.items()}, "group_id": self.group_id,
                "patients": list(self.patients), "request_url": self.request_url, "skipped": list(self.skipped)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ExportRequest:
        """The request of a stored job."""
        return cls(doc["level"], tuple(doc["types"]), doc.get("since"), doc.get("since_us"),
                   {k: tuple(v) for k, v in (doc.get("type_filters") or {}).items()}, doc.get("group_id"),
                   tuple(doc.get("patients") or ()), doc.get("request_url", ""), tuple(doc.get("skipped") or ()))

    def limited_to(self, types: Sequence[str]) -> ExportRequest:
        """This request exporting only ``types`` (their ``_typeFilter`` kept)."""
        return replace(self, types=tuple(types),
                       type_filters={k: v for k, v in self.type_filters.items() if k in types})


def _values(pairs: Iterable[tuple[str, str]], name: str) -> list[str]:
    """All values of ``name``; repeated parameters count as one comma-separated list."""
    return [v.strip() for key, value in pairs if key == name for v in value.split(",") if v.strip()]


def parameters_body(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The (name, value) pairs of a POST kick-off ``Parameters`` resource."""
    if body.get("resourceType") != "Parameters":
        raise FhirError(400, "invalid", "A POST kick-off body must be a Parameters resource")
    pairs = []
    for index, parameter in enumerate(body.get("parameter") or []):
        value = next((v for k, v in parameter.items() if k.startswith("value")), None)
        if isinstance(value, dict) and "reference" in value:
            value = value["reference"]
        if not isinstance(value, str):
            raise FhirError(400, "invalid", "Each kick-off parameter needs a string, code, instant or reference value",
                            expression=f"Parameters.parameter[{index}]")
        pairs.append((str(parameter.get("name")), value))
    return pairs


def parse_export(level: str, pairs: Sequence[tuple[str, str]], request_url: str, *, group_id: str | None = None,
                 lenient: bool = False) -> ExportRequest:
    """The export request of kick-off parameters; FhirError (400) naming the parameter otherwise."""
    unknown = sorted({k for k, _ in pairs} - SUPPORTED)
    if unknown and not lenient:
        raise FhirError(400, "not-supported", f"Unsupported $export parameter(s): {', '.join(unknown)}",
                        expression=unknown[0])
    for fmt in _values(pairs, "_outputFormat"):
        if fmt not in OUTPUT_FORMATS:
            raise FhirError(400, "not-supported", f"_outputFormat {fmt!r} is not supported; use "
                            + ", ".join(OUTPUT_FORMATS), expression="_outputFormat")
    if _values(pairs, "includeAssociatedData"):
        raise FhirError(400, "not-supported", "includeAssociatedData is not supported (no Provenance is exported "
                        "alongside)", expression="includeAssociatedData")
    allowed = exportable_at(level)
    requested = tuple(dict.fromkeys(_values(pairs, "_type")))
    types = requested or tuple(sorted(allowed))
    refused = tuple(t for t in types if t not in allowed)
    if refused and not lenient:
        raise FhirError(400, "not-supported", f"_type {refused[0][:64]} cannot be exported at this level; "
                        "exportable: " + ", ".join(sorted(allowed)) + " (Prefer: handling=lenient skips the others)",
                        expression="_type")
    types = tuple(t for t in types if t in allowed)
    if not types:
        raise FhirError(400, "not-supported", "None of the requested _type values can be exported at this level",
                        expression="_type")
    since, since_us = _since(pairs)
    patients = tuple(_values(pairs, "patient"))
    if patients and level == "system":
        raise FhirError(400, "not-supported", "patient applies to Patient and Group exports only", expression="patient")
    return ExportRequest(level, types, since, since_us, _type_filters(pairs, types, lenient), group_id, patients,
                         request_url, refused, explicit_types=bool(requested))


def exportable_at(level: str) -> frozenset[str]:
    """The types an export at ``level`` (system, patient, group) can contain."""
    return EXPORTABLE_TYPES if level == "system" else frozenset(PATIENT_LINKS)


def _since(pairs: Sequence[tuple[str, str]]) -> tuple[str | None, int | None]:
    values = _values(pairs, "_since")
    if not values:
        return None, None
    if len(values) > 1:
        raise FhirError(400, "invalid", "Give _since once", expression="_since")
    since = values[0].replace(" ", "+")  # an unencoded '+' in a query string arrives as a space
    try:
        return since, parse_date_range(since)[1]
    except ValueError:
        raise FhirError(400, "invalid", "_since must be a FHIR instant (e.g. 2026-11-01T00:00:00Z)",
                        expression="_since") from None


def _type_filters(pairs: Sequence[tuple[str, str]], types: Sequence[str], lenient: bool = False
                  ) -> dict[str, tuple[str, ...]]:
    filters: dict[str, list[str]] = {}
    for raw in (v for key, value in pairs if key == "_typeFilter" for v in value.split(",") if v.strip()):
        text = unquote(raw.strip())
        resource_type, _, query = text.partition("?")
        if lenient and query and resource_type not in types:
            continue  # a filter of a skipped type
        if resource_type not in types or not query:
            raise FhirError(400, "invalid", f"_typeFilter {text!r} must be Type?query for an exported type",
                            expression="_typeFilter")
        if any(name.split(":")[0] in ("_include", "_revinclude", "_sort", "_count", "_elements", "_summary")
               for name, _ in parse_qsl(query, keep_blank_values=True)):
            raise FhirError(400, "invalid", "_typeFilter queries may not use _include, _sort, _count, _elements or "
                            "_summary", expression="_typeFilter")
        filters.setdefault(resource_type, []).append(query)
    return {k: tuple(v) for k, v in filters.items()}
