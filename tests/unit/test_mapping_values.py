"""Cell values: every type's accepted input, its errors (never quoting the cell), and written form."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from fhir_clr.mapping.spec import ColumnSpec
from fhir_clr.mapping.values import format_cell, npi_check_digit_ok, parse_cell
from tests.bundled import find_spec

RTF = find_spec("rtf", "ecm")
MIF = find_spec("mif")


def column(name: str, spec: Any = RTF, **changes: Any) -> ColumnSpec:
    return replace(spec.by_name[name], **changes) if changes else spec.by_name[name]


@pytest.mark.parametrize("raw", ["07/04/2025", "07-04-2025", "7/4/2025", "2025-07-04", "2025-07-04T23:30:00-07:00",
                                 " 7/4/2025 "])
def test_dates(raw: str) -> None:
    assert parse_cell(column("referral_status_date"), raw).value == date(2025, 7, 4)


@pytest.mark.parametrize("raw", ["13/01/2025", "02/30/2025", "2025/07/04", "7/4/25", "July 4", "20250704"])
def test_bad_dates(raw: str) -> None:
    error = parse_cell(column("referral_status_date"), raw).error
    assert error is not None and error.rule == "date" and error.value == raw and raw not in error.message


@pytest.mark.parametrize(("name", "raw", "code"), [
    ("referral_status", "2", "2"), ("referral_status", "2.", "2"), ("referral_status", "2. Declined", "2"),
    ("referral_status", "declined", "2"), ("referral_status", " 5)  REFERRAL loop closed", "5"),
    ("loop_closure_reason", "services received", "services-received"), ("member_pof", "1A", "1a"),
    ("service", "Enhanced Care Management", "ecm"),
])
def test_codes(name: str, raw: str, code: str) -> None:
    assert parse_cell(column(name), raw).value == code


def test_unknown_code_names_the_list_not_the_value() -> None:
    error = parse_cell(column("referral_status"), "7. Lost").error
    assert error is not None and error.rule == "code" and "CLR Referral Status" in error.message
    assert "Lost" not in error.message and error.value == "7. Lost" and error.column == "referral_status"


@pytest.mark.parametrize(("raw", "value"), [
    ("(916) 555-1234", "9165551234"), ("916.555.1234", "9165551234"), ("1-916-555-1234", "9165551234"),
    ("+1 916 555 1234", "9165551234"), ("+44 20 7946 0958", "+442079460958"), ("9165551234", "9165551234"),
])
def test_phones(raw: str, value: str) -> None:
    assert parse_cell(column("member_phone_number"), raw).value == value


@pytest.mark.parametrize("raw", ["555-1234", "916-555-1234 x12", "2-916-555-1234", "+12", "\uff19" * 10])
def test_bad_phones(raw: str) -> None:
    assert parse_cell(column("member_phone_number"), raw).error.rule == "phone"


def test_phone_layout_on_output() -> None:
    laid_out = column("member_phone_number", format="(###) ###-####")
    assert format_cell(laid_out, "9165551234") == "(916) 555-1234"
    assert format_cell(laid_out, "+442079460958") == "'+442079460958"
    assert parse_cell(laid_out, "(916) 555-1234").value == "9165551234"


@pytest.mark.parametrize(("raw", "ok"), [("12345678A", True), ("12345678a", True), ("1234567A", False),
                                         ("123456789", False), ("12345678AB", False)])
def test_cin(raw: str, ok: bool) -> None:
    parsed = parse_cell(column("member_cin"), raw)
    assert parsed.ok is ok
    if ok:
        assert parsed.value == raw.upper()
    else:
        assert parsed.error.rule == "pattern"


@pytest.mark.parametrize(("raw", "rule"), [("1234567893", None), ("1234567890", "npi"), ("123456789", "npi"),
                                           ("12345678930", "npi"), ("ABCDEFGHIJ", "npi")])
def test_npi(raw: str, rule: str | None) -> None:
    parsed = parse_cell(column("ecm_provider_npi"), raw)
    assert (parsed.error.rule if parsed.error else None) == rule


def test_npi_check_digit_known_values() -> None:
    assert npi_check_digit_ok("1234567893") and npi_check_digit_ok("1245319599")
    assert not npi_check_digit_ok("1245319598")


@pytest.mark.parametrize(("raw", "value"), [("Y", True), ("yes", True), ("TRUE", True), ("1", True),
                                            ("n", False), ("No", False), ("false", False), ("0", False)])
def test_booleans(raw: str, value: bool) -> None:
    assert parse_cell(column("member_homelessness_indicator"), raw).value is value


def test_boolean_output_labels() -> None:
    assert format_cell(column("member_homelessness_indicator"), True) == "Y"
    assert format_cell(column("member_homelessness_indicator", format="Yes/No"), False) == "No"
    assert parse_cell(column("member_homelessness_indicator"), "maybe").error.rule == "boolean"


def test_integer() -> None:
    counted = column("in_person", type="integer")
    assert parse_cell(counted, "42").value == 42 and parse_cell(counted, "-3").value == -3
    assert parse_cell(counted, "4.5").error.rule == "integer"
    assert parse_cell(counted, "99999999999").error.rule == "integer"
    assert format_cell(counted, -3) == "-3"


def test_email() -> None:
    email = column("referring_individual_email", MIF)
    assert parse_cell(email, "a.b@example.org").value == "a.b@example.org"
    for raw in ("a@b", "a b@example.org", "a@@example.org", "a@example."):
        assert parse_cell(email, raw).error.rule == "email"
    assert parse_cell(email, "@example.org").error.rule == "formula"


def test_string_rules() -> None:
    state = column("member_residential_state")
    assert parse_cell(state, "CAL").error.rule == "max-length"
    name = column("member_last_name")
    assert parse_cell(name, "O'Brien\r\nJr").value == "O'Brien\nJr"
    assert parse_cell(name, "bad\x07bell").error.rule == "control-character"


def test_empty_required_and_default() -> None:
    assert parse_cell(column("member_last_name"), "   ").value is None
    assert parse_cell(column("member_cin"), "").error.rule == "required"
    assert parse_cell(column("service"), "").value == "ecm"
    assert parse_cell(column("referral_status", MIF), None).value == "3"


@pytest.mark.parametrize("raw", ["=HYPERLINK(\"http://x\")", "@SUM(A1)", "+1+2", "-2+3", "=1"])
def test_formula_cells_are_refused(raw: str) -> None:
    error = parse_cell(column("member_last_name"), raw).error
    assert error is not None and error.rule == "formula" and raw not in error.message


def test_formula_prefix_allowed_where_numbers_are_signed() -> None:
    assert parse_cell(column("member_phone_number"), "+1 916 555 1234").value == "9165551234"
    assert parse_cell(column("member_phone_number"), "=9165551234").error.rule == "formula"


@pytest.mark.parametrize("value", ["=1+2", "+x", "-x", "@x", "'=x", "''@x", "'plain", "plain"])
def test_formula_text_is_neutralized_and_read_back(value: str) -> None:
    name = column("member_last_name")
    written = format_cell(name, value)
    if value[0] in "=+-@" or value.lstrip("'")[:1] in ("=", "@"):
        assert written == "'" + value
    else:
        assert written == value
    assert parse_cell(name, written).value == value


def test_written_forms() -> None:
    assert format_cell(column("referral_status_date"), date(2025, 7, 4)) == "07/04/2025"
    assert format_cell(column("referral_status_date", format="YYYY-MM-DD"), date(2025, 7, 4)) == "2025-07-04"
    assert format_cell(column("referral_status"), "3") == "3. Pending"
    assert format_cell(column("loop_closure_reason"), "unable-to-reach") == "Unable to Reach Member"
    assert format_cell(column("member_pof"), "1b") == "1b"
    assert format_cell(column("member_last_name"), None) == ""
