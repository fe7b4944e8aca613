"""Rows: typed values by column name, cell errors, unreadable rows and shifted rows."""

from __future__ import annotations

from datetime import date

from fhir_clr.mapping.headers import match_headers
from fhir_clr.mapping.readers import RawRow
from fhir_clr.mapping.rows import parse_row
from tests.bundled import find_spec

SPEC = find_spec("rtf", "ecm")
HEADERS = ["CIN", "ECM Provider NPI", "Referral Status", "Date of Referral Status Update",
           "Referral Loop Closure Reason", "Unexpected"]


def test_good_row() -> None:
    matched = match_headers(SPEC, HEADERS)
    record = parse_row(SPEC, matched, RawRow(7, ["12345678a", "1234567893", "5.", "7/31/2025", "services received",
                                                 "ignored"]))
    assert record.ok and record.number == 7
    assert record.values["member_cin"] == "12345678A" and record.values["referral_status"] == "5"
    assert record.values["referral_status_date"] == date(2025, 7, 31)
    assert record.values["loop_closure_reason"] == "services-received"
    assert record.values["service"] == "ecm" and record.values["member_acuity_level"] is None
    assert set(record.values) == {c.name for c in SPEC.columns}


def test_errors_per_cell_and_short_rows() -> None:
    matched = match_headers(SPEC, HEADERS)
    record = parse_row(SPEC, matched, RawRow(3, ["1234", "1234567890", "=cmd"]))
    assert [(e.column, e.rule) for e in record.errors] == [
        ("member_cin", "pattern"), ("ecm_provider_npi", "npi"), ("referral_status", "formula"),
        ("referral_status_date", "required")]
    assert record.values["member_cin"] is None and record.errors[0].value == "1234"


def test_missing_required_header_fails_each_row() -> None:
    matched = match_headers(SPEC, ["CIN"])
    record = parse_row(SPEC, matched, RawRow(2, ["12345678A"]))
    assert {e.column for e in record.errors if e.rule == "required"} == {
        "ecm_provider_npi", "referral_status", "referral_status_date"}


def test_cells_beyond_the_header_row() -> None:
    matched = match_headers(SPEC, HEADERS[:4])
    shifted = parse_row(SPEC, matched, RawRow(2, ["12345678A", "1234567893", "1", "07/01/2025", "surplus"]))
    assert [e.rule for e in shifted.errors] == ["extra-cells"] and shifted.errors[0].column is None
    trailing_empty = parse_row(SPEC, matched, RawRow(2, ["12345678A", "1234567893", "1", "07/01/2025", " ", ""]))
    assert trailing_empty.ok


def test_unreadable_row() -> None:
    matched = match_headers(SPEC, HEADERS)
    record = parse_row(SPEC, matched, RawRow(9, [], "a line is longer than 1048576 characters"))
    assert not record.ok and record.errors[0].rule == "unreadable-row"
    assert all(v is None for v in record.values.values())


def test_plan_is_cached_per_spec() -> None:
    matched = match_headers(SPEC, HEADERS)
    parse_row(SPEC, matched, RawRow(2, ["12345678A"]))
    first = matched.plan
    parse_row(SPEC, matched, RawRow(3, ["12345678A"]))
    assert matched.plan is first
