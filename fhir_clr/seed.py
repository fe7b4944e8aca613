"""Sample referral data (synthetic, no real people): a plan, providers, a CBO, members, and ECM / Community
Supports referrals as ServiceRequest + Task pairs, loaded through the engine as one transaction."""

from __future__ import annotations

from typing import Any

import orjson

from fhir_clr.app import build_services
from fhir_clr.config import Settings

CIN_SYSTEM = "urn:oid:2.16.840.1.113883.4.5"  # placeholder system for Medi-Cal CIN in samples
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
SDOHCC_TASK = "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"
SERVICES = [("ECM", "Enhanced Care Management"), ("CS-MTM", "Medically Tailored Meals/Medically Supportive Food"),
            ("CS-HTNS", "Housing Transition Navigation Services")]
FAMILY = ["Garcia", "Nguyen", "Smith", "Hernandez", "Lee", "Lopez", "Kim", "Martinez"]
GIVEN = ["Ana", "Minh", "Jordan", "Luis", "Grace", "Sofia", "Daniel", "Maya"]
STATUSES = ["requested", "accepted", "in-progress", "requested"]


SAMPLE_SYSTEM = "urn:fhir-clr:sample"


def _entry(full_url: str, resource: dict[str, Any]) -> dict[str, Any]:
    """A conditional create keyed on the resource's first identifier, so loading the samples twice adds
    nothing."""
    identifier = resource["identifier"][0]
    return {"fullUrl": full_url, "resource": resource,
            "request": {"method": "POST", "url": resource["resourceType"],
                        "ifNoneExist": f"identifier={identifier['system']}|{identifier['value']}"}}


def sample_bundle(members: int = 8) -> dict[str, Any]:
    """A transaction Bundle with ``members`` members, each with one referral (ServiceRequest + Task)."""
    orgs = [("plan", "Sample Medi-Cal Health Plan", "1000000001"),
            ("ecm", "Sample ECM Provider", "1000000002"),
            ("cbo", "Sample Community Organization", "1000000003")]
    entries = [_entry(f"urn:uuid:org-{key}", {
        "resourceType": "Organization", "active": True, "name": name,
        "identifier": [{"system": NPI_SYSTEM, "value": npi}]}) for key, name, npi in orgs]
    for n in range(members):
        cin = f"9{n:07d}A"
        entries.append(_entry(f"urn:uuid:patient-{n}", {
            "resourceType": "Patient", "identifier": [{"system": CIN_SYSTEM, "value": cin}],
            "name": [{"family": FAMILY[n % len(FAMILY)], "given": [GIVEN[n % len(GIVEN)]]}],
            "birthDate": f"19{60 + n % 40}-0{1 + n % 9}-1{n % 9}"}))
        code, display = SERVICES[n % len(SERVICES)]
        entries.append(_entry(f"urn:uuid:sr-{n}", {
            "resourceType": "ServiceRequest", "status": "active", "intent": "order",
            "identifier": [{"system": SAMPLE_SYSTEM, "value": f"referral-{n}"}],
            "code": {"coding": [{"system": "urn:fhir-clr:sample-service", "code": code, "display": display}]},
            "subject": {"reference": f"urn:uuid:patient-{n}"}, "authoredOn": f"2026-10-0{1 + n % 9}",
            "requester": {"reference": "urn:uuid:org-cbo"}, "performer": [{"reference": "urn:uuid:org-ecm"}]}))
        entries.append(_entry(f"urn:uuid:task-{n}", {
            "resourceType": "Task", "meta": {"profile": [SDOHCC_TASK]},
            "identifier": [{"system": SAMPLE_SYSTEM, "value": f"referral-task-{n}"}],
            "status": STATUSES[n % len(STATUSES)], "intent": "order",
            "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
            "focus": {"reference": f"urn:uuid:sr-{n}"}, "for": {"reference": f"urn:uuid:patient-{n}"},
            "authoredOn": f"2026-10-0{1 + n % 9}T09:00:00Z",
            "requester": {"reference": "urn:uuid:org-cbo"}, "owner": {"reference": "urn:uuid:org-ecm"}}))
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


async def load_sample_data(settings: Settings, members: int = 8) -> int:
    """Load the sample Bundle into the configured store (idempotent); return the number of entries."""
    services = await build_services(settings)
    try:
        response = await services.bundles.process(sample_bundle(members), "http://localhost")
    finally:
        await services.store.close()
    return len(orjson.loads(response)["entry"])
