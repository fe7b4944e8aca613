"""MIF import: each row creates the Member, provider, Referring Entity, CLR Referral and Pending referral Task
through the engine (obligations included); importing again changes nothing; bad rows say why."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import orjson

from fhir_clr.app import Services
from fhir_clr.imports.job import FileImporter, ImportRequest
from fhir_clr.mapping.writers import write_table
from tests.api.test_rtf_import import valid_npi
from tests.bundled import find_spec


def mif(rows: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    write_table(find_spec("mif"), rows, "csv", out)
    return out.getvalue()


def mif_row(cin: str, npi: str, **extra: Any) -> dict[str, Any]:
    return {"mcp_name": "Sample Plan", "member_cin": cin, "member_last_name": "Rivera", "member_first_name": "Ana",
            "member_date_of_birth": date(1980, 5, 17), "service": "ecm", "referral_date": date(2026, 11, 16),
            "referral_type": "1", "referring_organization": "Eastside Clinic", "referral_status": "3",
            "ecm_provider_name": "ECM provider", "ecm_provider_npi": npi, **extra}


async def found(services: Services, resource_type: str, params: list[tuple[str, str]]) -> list[dict[str, Any]]:
    result = await services.engine.search(resource_type, params)
    return [orjson.loads(s.body) for s in result.matches if s.body is not None]


async def test_mif_rows_create_referrals_once(services: Services) -> None:
    npi = valid_npi("433456789")
    data = mif([mif_row("43345678N", npi), mif_row("53345678P", npi, referral_type="2. Identified by the MCP"),
                mif_row("63345678Q", npi, referral_date=None),
                mif_row("73345678R", npi, referral_status="1")])  # a new referral cannot start Accepted
    importer = FileImporter(services.bundles, services.engine.clock, services.specs)
    report = await importer.run(ImportRequest("mif", data, "mif.csv"))
    assert report.counts == {"applied": 2, "unchanged": 0, "rejected": 2}, report.rejected
    reasons = {r.number: r.problems[0] for r in report.rejected}
    assert reasons[4].rule == "required" and "referral date" in reasons[4].message
    assert reasons[5].column == "Referral Status" and reasons[5].rule == "rule"
    referrals = await found(services, "ServiceRequest", [("_profile", "http://fhir-clr.org/fhir/"
                                                                      "StructureDefinition/clr-referral")])
    assert len(referrals) == 2 and {r["code"]["coding"][0]["code"] for r in referrals} == {"ecm"}
    tasks = await found(services, "Task", [("_profile", "http://fhir-clr.org/fhir/StructureDefinition/"
                                                        "clr-referral-task")])
    assert [t["businessStatus"]["coding"][0]["code"] for t in tasks] == ["3", "3"]
    decisions = await found(services, "Task", [("code", "authorization-decision")])
    assert len(decisions) == 2  # each new referral owes its authorization decision
    providers = await found(services, "Organization", [("identifier", f"http://hl7.org/fhir/sid/us-npi|{npi}")])
    assert len(providers) == 1
    again = await importer.run(ImportRequest("mif", data, "mif.csv"))
    assert again.counts == {"applied": 0, "unchanged": 2, "rejected": 2}


async def test_a_formula_looking_name_is_kept_as_text_warned_and_exported_escaped(services: Services) -> None:
    from tests.api.test_exports import export

    npi = valid_npi("443456789")
    data = mif([mif_row("44345678N", npi, member_last_name="=1+2")]).replace(b",'=1+2,", b",=1+2,")
    report = await FileImporter(services.bundles, services.engine.clock, services.specs).run(
        ImportRequest("mif", data, "mif.csv"))
    assert report.counts["applied"] == 1 and report.counts["rejected"] == 0, report.rejected
    assert [(w.number, w.problems[0].column, w.problems[0].rule) for w in report.warnings] == [
        (2, "Member Last Name", "formula")]
    members = await found(services, "Patient", [("identifier", "http://fhir-clr.org/fhir/sid/medi-cal-cin|44345678N")])
    assert members[0]["name"][0]["family"] == "=1+2"  # stored as the text it was, never evaluated
    exported = await export(services, "mif", npi)
    assert b",'=1+2," in exported and b",=1+2," not in exported  # written back behind a quote
