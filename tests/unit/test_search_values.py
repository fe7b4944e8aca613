"""Shared value parsing: date precision ranges, string normalisation, number precision, references."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fhir_clr.search.values import (
    MAX_US,
    MIN_US,
    json_number_range,
    local_prefixes,
    normalize_reference,
    normalize_string,
    number_range,
    parse_date_range,
)


def us(text: str) -> int:
    """Epoch microseconds of an ISO timestamp (UTC when no offset)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@pytest.mark.parametrize(("text", "lo", "hi"), [
    ("2024", "2024-01-01T00:00:00", "2024-12-31T23:59:59.999999"),
    ("2024-02", "2024-02-01T00:00:00", "2024-02-29T23:59:59.999999"),
    ("2023-02", "2023-02-01T00:00:00", "2023-02-28T23:59:59.999999"),
    ("2024-12", "2024-12-01T00:00:00", "2024-12-31T23:59:59.999999"),
    ("2024-05-17", "2024-05-17T00:00:00", "2024-05-17T23:59:59.999999"),
    ("2024-05-17T10:20", "2024-05-17T10:20:00", "2024-05-17T10:20:59.999999"),
    ("2024-05-17T10:20:30Z", "2024-05-17T10:20:30", "2024-05-17T10:20:30.999999"),
    ("2024-05-17T10:20:30.5Z", "2024-05-17T10:20:30.5", "2024-05-17T10:20:30.599999"),
    ("2024-05-17T10:20:30.123456789Z", "2024-05-17T10:20:30.123456", "2024-05-17T10:20:30.123456"),
    ("2024-05-17T10:20:30-04:00", "2024-05-17T14:20:30", "2024-05-17T14:20:30.999999"),
    ("2024-05-17T10:20:30+05:30", "2024-05-17T04:50:30", "2024-05-17T04:50:30.999999"),
])
def test_date_ranges_follow_precision(text: str, lo: str, hi: str) -> None:
    assert parse_date_range(text) == (us(lo), us(hi))


def test_date_limits_match_open_period_ends() -> None:
    assert parse_date_range("0001")[0] == MIN_US
    assert parse_date_range("9999")[1] == MAX_US


@pytest.mark.parametrize("text", ["", "24", "2024-13", "2024-02-30", "2024-05-17T25:00:00Z",
                                  "2024-05-17T10:00:00+15:00", "2024-05-17 10:00", "0000", "yesterday",
                                  "2024-05-17T10:00:00X"])
def test_bad_dates_raise(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date_range(text)


def test_string_normalisation() -> None:
    assert normalize_string("  José\tGARCÍA  ") == "jose garcia"
    assert normalize_string("Straße") == "strasse"
    assert normalize_string("ﬁne") == "fine"
    assert normalize_string("plain") == "plain"


@pytest.mark.parametrize(("text", "expected"), [
    ("100", (99.5, 100.5)), ("1.50", (1.495, 1.505)), ("1e2", (50.0, 150.0)), ("-2", (-2.5, -1.5)),
    ("0.1", (0.05, 0.15)),
])
def test_number_precision_ranges(text: str, expected: tuple[float, float]) -> None:
    lo, hi = number_range(text)
    assert lo == pytest.approx(expected[0]) and hi == pytest.approx(expected[1])


def test_json_number_ranges_use_the_written_form() -> None:
    assert json_number_range(100) == (99.5, 100.5)
    assert json_number_range(1.5) == pytest.approx((1.45, 1.55))


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "NaN", "Infinity"])
def test_bad_numbers_raise(text: str) -> None:
    with pytest.raises(ValueError):
        number_range(text)


def test_reference_normalisation() -> None:
    prefixes = local_prefixes(["https://clr.example.org/fhir/", ""])
    assert prefixes == ("https://clr.example.org/fhir/",)
    assert normalize_reference("Patient/1", prefixes) == "Patient/1"
    assert normalize_reference("Patient/1/_history/3", prefixes) == "Patient/1"
    assert normalize_reference("https://clr.example.org/fhir/Patient/1", prefixes) == "Patient/1"
    assert normalize_reference("https://clr.example.org/fhir/Patient/1/_history/2", prefixes) == "Patient/1"
    assert normalize_reference("https://other.example.org/fhir/Patient/1", prefixes) == \
        "https://other.example.org/fhir/Patient/1"
    assert normalize_reference("urn:uuid:1234", prefixes) == "urn:uuid:1234"
    assert normalize_reference("#contained", prefixes) is None
    assert normalize_reference("", prefixes) is None
