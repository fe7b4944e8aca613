"""FHIR projection: fragments built from targets only, canonical codings, and reading back from real resources."""

from __future__ import annotations

from datetime import date

from fhir.resources.R4B import get_fhir_model_class

from fhir_clr.mapping.fhir_map import fhir_to_record, record_to_fhir
from tests.bundled import find_spec

RTF = find_spec("rtf", "ecm")
MIF = find_spec("mif")
BASE = "http://fhir-clr.org/fhir"


def rtf_record(**values: object) -> dict[str, object]:
    record = dict.fromkeys(RTF.by_name)
    record.update({"member_cin": "12345678A", "member_last_name": "Doe", "member_first_name": "Jane",
                   "ecm_provider_npi": "1234567893", "ecm_provider_tin": "123456789", "referral_status": "5",
                   "referral_status_date": date(2025, 7, 31), "loop_closure_reason": "services-received",
                   "service": "ecm", "member_acuity_level": "High"}, **values)
    return record


def test_projection_of_an_rtf_row() -> None:
    fragments = record_to_fhir(RTF, rtf_record())
    assert set(fragments) == {"Patient", "Organization[servicing]", "Task", "ServiceRequest"}
    assert fragments["Patient"] == {
        "resourceType": "Patient",
        "identifier": [{"system": f"{BASE}/sid/medi-cal-cin", "value": "12345678A"}],
        "name": [{"family": "Doe", "given": ["Jane"]}]}
    assert fragments["Organization[servicing]"]["identifier"] == [
        {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
        {"system": "urn:oid:2.16.840.1.113883.4.4", "value": "123456789"}]
    task = fragments["Task"]
    assert task["businessStatus"] == {"coding": [{"system": f"{BASE}/CodeSystem/referral-status", "version": "0.1.0",
                                                  "code": "5", "display": "Referral Loop Closed"}],
                                      "text": "Referral Loop Closed"}
    assert task["statusReason"]["coding"][0]["code"] == "services-received"
    assert task["extension"] == [{"url": f"{BASE}/StructureDefinition/date-of-referral-status-update",
                                  "valueDateTime": "2025-07-31"}]
    assert fragments["ServiceRequest"]["code"]["coding"][0]["code"] == "ecm"
    assert "High" not in str(fragments)  # target: none


def test_fragments_are_valid_r4_once_the_import_adds_the_required_elements() -> None:
    record = {**dict.fromkeys(MIF.by_name), "member_cin": "12345678A", "member_date_of_birth": date(1980, 2, 29),
              "member_email": "jane@example.org", "member_phone_number": "9165551234", "member_pof": "4",
              "service": "ecm", "authorization_status": "approved", "authorization_start_date": date(2025, 7, 1),
              "authorization_end_date": date(2026, 6, 30), "authorization_number": "A-1", "referral_type": "1",
              "referral_date": date(2025, 6, 20), "referring_organization": "Clinic",
              "referring_individual_name": "Dr Who", "referring_individual_email": "who@clinic.org",
              "referral_status": "3", "ecm_provider_npi": "1234567893"}
    fragments = record_to_fhir(MIF, record)
    fragments["ServiceRequest"].update(status="active", intent="order", subject={"reference": "Patient/p"})
    fragments["Task"].update(status="requested", intent="order")
    for fragment in fragments.values():
        get_fhir_model_class(fragment["resourceType"]).model_validate(fragment)
    decision = fragments["ServiceRequest"]["extension"][0]
    assert decision["url"] == f"{BASE}/StructureDefinition/authorization-decision"
    assert decision["extension"][0] == {"url": "status", "valueCoding": {
        "system": f"{BASE}/CodeSystem/authorization-status", "version": "0.1.0", "code": "approved",
        "display": "Approved"}}
    assert decision["extension"][1] == {"url": "period", "valuePeriod": {"start": "2025-07-01", "end": "2026-06-30"}}
    contact = fragments["Organization[referring]"]["contact"]
    assert contact == [{"name": {"text": "Dr Who"}, "telecom": [{"system": "email", "value": "who@clinic.org"}]}]


def test_empty_resources_are_left_out() -> None:
    assert record_to_fhir(RTF, {"member_cin": "12345678A"}) == {
        "Patient": {"resourceType": "Patient",
                    "identifier": [{"system": f"{BASE}/sid/medi-cal-cin", "value": "12345678A"}]}}


def test_reading_back_from_stored_resources_with_other_content() -> None:
    resources = {
        "Patient": {"resourceType": "Patient", "id": "p1",
                    "identifier": [{"system": "urn:other", "value": "X"},
                                   {"system": f"{BASE}/sid/medi-cal-cin", "value": "12345678A"}],
                    "telecom": [{"system": "email", "value": "a@b.org"}, {"system": "phone", "value": "9165551234"}],
                    "name": [{"family": "Doe", "given": ["Jane", "Q"]}]},
        "Task": {"resourceType": "Task", "status": "completed",
                 "businessStatus": {"coding": [{"system": f"{BASE}/CodeSystem/referral-status", "code": "5"}]},
                 "statusReason": {"text": "services received"},
                 "extension": [{"url": f"{BASE}/StructureDefinition/referral-loop-closure-date",
                                "valueDate": "2025-08-01"},
                               {"url": f"{BASE}/StructureDefinition/date-of-referral-status-update",
                                "valueDateTime": "2025-08-01T05:30:00Z"}],
                 "executionPeriod": {"start": "2025-07"}},
        "ServiceRequest": {"resourceType": "ServiceRequest",
                           "code": {"coding": [{"system": "urn:other", "code": "ecm"}]}},
    }
    record = fhir_to_record(RTF, resources)
    assert record["member_cin"] == "12345678A" and record["member_phone_number"] == "9165551234"
    assert record["member_first_name"] == "Jane" and record["referral_status"] == "5"
    assert record["loop_closure_reason"] == "services-received"
    assert record["referral_status_date"] == date(2025, 7, 31)  # 05:30 UTC is the evening before in California
    assert record["ecm_enrollment_start_date"] is None  # partial date
    assert record["service"] is None  # a code from another system
    assert record["ecm_provider_npi"] is None and set(record) == set(RTF.by_name)


def test_wrong_json_types_read_as_none() -> None:
    record = fhir_to_record(RTF, {"Patient": {"name": [{"family": 7}], "identifier": "oops"},
                                  "Task": {"extension": [{"url": f"{BASE}/StructureDefinition/"
                                                                 "date-of-referral-status-update",
                                                          "valueDateTime": 20250701}]}})
    assert record["member_last_name"] is None and record["member_cin"] is None
    assert record["referral_status_date"] is None
