"""ASF import: each row records the plan's authorization decision on the Member's referral for the service with
the provider, through the engine — decision notices owed, denial closing the loop; re-import is unchanged."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import orjson

from fhir_clr.app import Services
from fhir_clr.imports.job import FileImporter, ImportRequest
from fhir_clr.mapping.writers import write_table
from tests.api.clr_helpers import AUTH_URL, referral_body, referral_task_body
from tests.api.test_rtf_import import SYSTEMS, create, valid_npi
from tests.bundled import find_spec


async def cs_referral(services: Services, cin: str, npi: str) -> tuple[dict[str, Any], dict[str, Any]]:
    member = await create(services, {"resourceType": "Patient", "identifier": [{"system": SYSTEMS["cin"],
                                                                                "value": cin}]})
    found = await services.engine.planner.find("Organization", [("identifier", f"{SYSTEMS['npi']}|{npi}")])
    provider = found[0].resource_id if found else (await create(services, {
        "resourceType": "Organization", "name": "CS provider",
        "identifier": [{"system": SYSTEMS["npi"], "value": npi}]}))["id"]
    clinic = await create(services, {"resourceType": "Organization", "name": "clinic"})
    request = await create(services, referral_body(f"Patient/{member['id']}", f"Organization/{clinic['id']}",
                                                   service="Housing Deposits"))
    return request, await create(services, referral_task_body(request, f"Organization/{provider}"))


def asf(rows: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    write_table(find_spec("asf"), rows, "csv", out)
    return out.getvalue()


async def read(services: Services, resource_type: str, resource_id: str) -> dict[str, Any]:
    return orjson.loads((await services.engine.read(resource_type, resource_id)).body or b"{}")


async def test_asf_rows_record_authorization_decisions(services: Services) -> None:
    npi = valid_npi("533456789")
    approved, _ = await cs_referral(services, "83345678S", npi)
    denied, denied_task = await cs_referral(services, "93345678T", npi)
    base = {"mcp_name": "Plan", "cs_service": "housing-deposits", "cs_provider_name": "CS provider",
            "cs_provider_npi": npi}
    data = asf([{**base, "member_cin": "83345678S", "authorization_number": "A-1001", "authorization_status":
                 "approved", "authorization_start_date": date(2026, 11, 24),
                 "authorization_end_date": date(2027, 2, 23)},
                {**base, "member_cin": "93345678T", "authorization_status": "denied"},
                {**base, "member_cin": "99999999Z", "authorization_status": "approved"}])
    importer = FileImporter(services.bundles, services.engine.clock, services.specs)
    report = await importer.run(ImportRequest("asf", data, "asf.csv"))
    assert report.counts == {"applied": 2, "unchanged": 0, "rejected": 1}, report.rejected
    stored = await read(services, "ServiceRequest", approved["id"])
    parts = {p["url"]: p for p in next(e for e in stored["extension"] if e["url"] == AUTH_URL)["extension"]}
    assert parts["status"]["valueCoding"]["code"] == "approved"
    assert parts["period"]["valuePeriod"] == {"start": "2026-11-24", "end": "2027-02-23"}
    assert {"system": SYSTEMS["authorization_number"], "value": "A-1001"} in stored["identifier"]
    owed = await services.engine.search("Task", [("focus", f"ServiceRequest/{approved['id']}"),
                                                 ("code", "authorization-decision-member")])
    assert len(owed.matches) == 1
    assert (await read(services, "ServiceRequest", denied["id"]))["status"] == "revoked"
    assert (await read(services, "Task", denied_task["id"]))["statusReason"]["coding"][0]["code"] == (
        "authorization-denied")
    again = await importer.run(ImportRequest("asf", data, "asf.csv"))
    assert again.counts == {"applied": 0, "unchanged": 2, "rejected": 1}
