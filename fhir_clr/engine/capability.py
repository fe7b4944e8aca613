"""The CapabilityStatement, generated from what is registered (types, search parameters, operations), so
it cannot drift from what the server does."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fhir_clr import __version__
from fhir_clr.fhirmodel.allowlist import R4_RESOURCE_TYPES
from fhir_clr.search.registry import SearchParamRegistry

TYPE_INTERACTIONS = ("read", "vread", "update", "patch", "delete", "history-instance", "history-type",
                     "create", "search-type")
SYSTEM_INTERACTIONS = ("transaction", "batch", "history-system")
SYSTEM_OPERATIONS = [
    {"name": "clr-worklist", "definition": "http://fhir-clr.org/fhir/OperationDefinition/clr-worklist"},
    {"name": "import", "definition": "http://fhir-clr.org/fhir/OperationDefinition/import"},
    {"name": "clr-export", "definition": "http://fhir-clr.org/fhir/OperationDefinition/clr-export"},
    {"name": "clr-print-batch", "definition": "http://fhir-clr.org/fhir/OperationDefinition/clr-print-batch"},
    {"name": "clr-print-batch-mailed",
     "definition": "http://fhir-clr.org/fhir/OperationDefinition/clr-print-batch-mailed"},
    {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"},
]
TYPE_OPERATIONS = {
    "Patient": [{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}],
    "Group": [{"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"}],
}
VALIDATE_OPERATION = {"name": "validate", "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"}
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/"
SUBSCRIPTION_OPERATIONS = [
    {"name": "topic-list", "definition": BACKPORT + "OperationDefinition/backport-subscriptiontopic-list"},
    {"name": "status", "definition": BACKPORT + "OperationDefinition/backport-subscription-status"},
    {"name": "events", "definition": BACKPORT + "OperationDefinition/backport-subscription-events"},
    {"name": "resend", "definition": "http://fhir-clr.org/fhir/OperationDefinition/subscription-resend"},
    {"name": "delivery-attempts",
     "definition": "http://fhir-clr.org/fhir/OperationDefinition/subscription-delivery-attempts"},
]


def capability_statement(registry: SearchParamRegistry, base_url: str, token_url: str | None = None,
                         topics: Sequence[str] = ()) -> dict[str, Any]:
    """A CapabilityStatement describing exactly the interactions and parameters this server serves;
    ``token_url`` (None when authentication is off) adds the SMART-on-FHIR ``security`` element; ``topics``
    are the canonical URLs of the subscription topics offered (Subscriptions Backport IG)."""
    resources = [_resource_entry(resource_type, registry) for resource_type in sorted(R4_RESOURCE_TYPES)]
    for entry in resources:
        if entry["type"] == "Subscription":
            _subscriptions(entry, topics)
    statement: dict[str, Any] = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "publisher": "fhir-clr",
        "kind": "instance",
        "software": {"name": "fhir-clr", "version": __version__},
        "implementation": {"description": "fhir-clr: FHIR R4 server for Medi-Cal Closed-Loop Referrals",
                           "url": base_url},
        "instantiates": [BACKPORT + "CapabilityStatement/backport-subscription-server-r4",
                         "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"],
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "resource": resources,
            "interaction": [{"code": code} for code in SYSTEM_INTERACTIONS],
            "operation": SYSTEM_OPERATIONS,
        }],
    }
    if token_url is not None:
        statement["rest"][0]["security"] = _security(token_url)
    return statement


def _subscriptions(entry: dict[str, Any], topics: Sequence[str]) -> None:
    entry["supportedProfile"] = [BACKPORT + "StructureDefinition/backport-subscription"]
    entry["operation"] = [*entry["operation"], *SUBSCRIPTION_OPERATIONS]
    entry["extension"] = [{"url": BACKPORT + "StructureDefinition/capabilitystatement-subscriptiontopic-canonical",
                           "valueCanonical": url} for url in topics]


def _security(token_url: str) -> dict[str, Any]:
    return {
        "cors": False,
        "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                 "code": "SMART-on-FHIR"}],
                     "text": "OAuth2 using SMART Backend Services (client_credentials, private_key_jwt)"}],
        "extension": [{"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
                       "extension": [{"url": "token", "valueUri": token_url}]}],
        "description": "SMART Backend Services; see /.well-known/smart-configuration",
    }


def _resource_entry(resource_type: str, registry: SearchParamRegistry) -> dict[str, Any]:
    params = registry.for_type(resource_type)
    search_params = [
        {"name": code, "definition": definition.url, "type": str(definition.type)}
        for code, definition in sorted(params.items())
    ]
    reference_codes = sorted(code for code, d in params.items() if str(d.type) == "reference")
    entry: dict[str, Any] = {
        "type": resource_type,
        "interaction": [{"code": code} for code in TYPE_INTERACTIONS],
        "versioning": "versioned-update",
        "readHistory": True,
        "updateCreate": True,
        "conditionalCreate": True,
        "conditionalRead": "full-support",
        "conditionalUpdate": True,
        "conditionalDelete": "single",
        "searchInclude": [f"{resource_type}:{code}" for code in reference_codes] + ["*"],
        "searchRevInclude": _revincludes(resource_type, registry),
        "searchParam": search_params,
        "operation": [VALIDATE_OPERATION, *TYPE_OPERATIONS.get(resource_type, [])],
    }
    return entry


def _revincludes(resource_type: str, registry: SearchParamRegistry) -> list[str]:
    found = []
    for source_type in sorted(registry.types()):
        for code, definition in sorted(registry.for_type(source_type).items()):
            if str(definition.type) == "reference" and (not definition.targets
                                                        or resource_type in definition.targets):
                found.append(f"{source_type}:{code}")
    return found
