"""Query-string parsing into the search AST: happy paths, escapes, chains, _has, sort, includes and every
error path."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhir_clr.errors import FhirError
from fhir_clr.search.parse import IncludeSpec, ParsedSearch, parse_search, split_escaped, unescape
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.search.values import normalize_string, number_range, parse_date_range
from fhir_clr.store.query import (
    ChainCondition,
    Condition,
    HasCondition,
    ParamType,
    Prefix,
    RangeValue,
    ReferenceValue,
    SortKey,
    StringValue,
    TokenValue,
    UriValue,
)

BASE = "https://clr.example.org/fhir"
PROFILES = Path(__file__).resolve().parents[2] / "profiles"


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.from_directory(PROFILES, base_urls=[BASE])


def parse(registry: SearchParamRegistry, resource_type: str, *params: tuple[str, str]) -> ParsedSearch:
    return parse_search(resource_type, list(params), registry, default_count=20, max_count=100, base_urls=[BASE])


def only(parsed: ParsedSearch) -> Condition:
    [criterion] = parsed.query.criteria
    assert isinstance(criterion, Condition)
    return criterion


def error(registry: SearchParamRegistry, resource_type: str, *params: tuple[str, str]) -> FhirError:
    with pytest.raises(FhirError) as info:
        parse(registry, resource_type, *params)
    assert info.value.status == 400
    return info.value


# ---- tokens, references, ids ------------------------------------------------------------------------------

def test_tokens(registry: SearchParamRegistry) -> None:
    assert only(parse(registry, "Task", ("status", "requested,accepted"))) == Condition(
        "status", ParamType.TOKEN, (TokenValue(None, "requested"), TokenValue(None, "accepted")))
    values = only(parse(registry, "Task", ("identifier", "urn:a|1,|2,urn:b|"))).values
    assert values == (TokenValue("urn:a", "1"), TokenValue("", "2"), TokenValue("urn:b", None))
    assert only(parse(registry, "Task", ("status:not", "draft"))).modifier == "not"
    assert only(parse(registry, "Task", ("_id", "a,b"))) == Condition(
        "_id", ParamType.TOKEN, (TokenValue(None, "a"), TokenValue(None, "b")))


def test_repeated_params_are_and(registry: SearchParamRegistry) -> None:
    parsed = parse(registry, "Task", ("status", "requested"), ("status", "accepted"))
    assert len(parsed.query.criteria) == 2


def test_escapes(registry: SearchParamRegistry) -> None:
    assert split_escaped(r"a\,b,c", ",") == [r"a\,b", "c"]
    assert unescape(r"a\,b\|c\$d\\e\x") == "a,b|c$d\\e\\x"
    values = only(parse(registry, "Task", ("identifier", r"urn:x|a\|b\,c,d"))).values
    assert values == (TokenValue("urn:x", "a|b,c"), TokenValue(None, "d"))
    assert only(parse(registry, "Patient", ("family", r"O\,Brien"))).values == (StringValue("o,brien", "O,Brien"),)


def test_references(registry: SearchParamRegistry) -> None:
    assert only(parse(registry, "Task", ("owner", "Organization/1"))).values == (ReferenceValue("Organization/1"),)
    assert only(parse(registry, "Task", ("owner", f"{BASE}/Organization/1"))).values == \
        (ReferenceValue("Organization/1"),)
    assert only(parse(registry, "Task", ("owner", "https://other.org/fhir/Organization/1"))).values == \
        (ReferenceValue("https://other.org/fhir/Organization/1"),)
    assert only(parse(registry, "Task", ("owner", "1"))).values == (ReferenceValue("1", bare_id=True),)
    assert only(parse(registry, "Task", ("subject:Patient", "1"))).values == \
        (ReferenceValue("1", bare_id=True, types=("Patient",)),)
    assert only(parse(registry, "Task", ("subject:Patient", "Patient/1"))).values == (ReferenceValue("Patient/1"),)
    assert only(parse(registry, "ServiceRequest", ("instantiates-canonical", "http://x.org/PlanDefinition/p|1"))
                ).values == (ReferenceValue("http://x.org/PlanDefinition/p"),)


def test_reference_identifier(registry: SearchParamRegistry) -> None:
    assert only(parse(registry, "Task", ("owner:identifier", "urn:npi|123"))) == Condition(
        "owner", ParamType.TOKEN, (TokenValue("urn:npi", "123"),), "identifier")


def test_missing(registry: SearchParamRegistry) -> None:
    assert only(parse(registry, "Task", ("owner:missing", "true"))) == Condition(
        "owner", ParamType.REFERENCE, (TokenValue(None, "true"),), "missing")
    assert only(parse(registry, "Patient", ("birthdate:missing", "false"))).modifier == "missing"


# ---- ordered types, strings, uris -------------------------------------------------------------------------

def test_dates_with_prefixes(registry: SearchParamRegistry) -> None:
    lo, hi = parse_date_range("2024-05")
    assert only(parse(registry, "Task", ("authored-on", "2024-05"))).values == (RangeValue(Prefix.EQ, lo, hi),)
    for prefix in Prefix:
        value = only(parse(registry, "Task", ("authored-on", f"{prefix.value}2024-05"))).values[0]
        assert value == RangeValue(prefix, lo, hi)


def test_last_updated_and_alias(registry: SearchParamRegistry) -> None:
    stamp = "2021-05-03T17:23:18.1732-04:00"
    for name in ("_lastUpdated", "_lastupdated"):
        parsed = parse(registry, "Task", (name, f"gt{stamp}"))
        assert only(parsed) == Condition("_lastUpdated", ParamType.DATE,
                                         (RangeValue(Prefix.GT, *parse_date_range(stamp)),))
        assert parsed.self_params == [("_lastUpdated", f"gt{stamp}")]
        assert parsed.unknown == []


def test_numbers_and_quantities(registry: SearchParamRegistry) -> None:
    registry_q = only(parse(registry, "Observation", ("value-quantity", "le5.4|http://unitsofmeasure.org|mg")))
    assert registry_q.values == (RangeValue(Prefix.LE, *number_range("5.4"), "http://unitsofmeasure.org", "mg"),)
    assert only(parse(registry, "Observation", ("value-quantity", "5.4||mg"))).values == \
        (RangeValue(Prefix.EQ, *number_range("5.4"), None, "mg"),)
    assert only(parse(registry, "Observation", ("value-quantity", "100"))).values == \
        (RangeValue(Prefix.EQ, 99.5, 100.5),)


def test_strings_and_uris(registry: SearchParamRegistry) -> None:
    assert only(parse(registry, "Patient", ("family", "García"))).values == (StringValue("garcia", "García"),)
    assert only(parse(registry, "Patient", ("name:exact", "Ana"))).modifier == "exact"
    assert only(parse(registry, "Patient", ("name:contains", "an"))).modifier == "contains"
    assert normalize_string("García") == "garcia"
    profile = "http://example.org/StructureDefinition/x"
    assert only(parse(registry, "Task", ("_profile", profile))).values == (UriValue(profile),)
    assert only(parse(registry, "Task", ("_profile:below", "http://example.org/"))).modifier == "below"


# ---- chains and _has --------------------------------------------------------------------------------------

def test_chains(registry: SearchParamRegistry) -> None:
    parsed = parse(registry, "Task", ("focus:ServiceRequest.status", "active"))
    assert parsed.query.criteria == [ChainCondition("focus", "ServiceRequest", Condition(
        "status", ParamType.TOKEN, (TokenValue(None, "active"),)))]
    inferred = parse(registry, "Task", ("patient.family:exact", "Smith")).query.criteria[0]
    assert isinstance(inferred, ChainCondition) and inferred.target_type == "Patient"
    assert inferred.inner.modifier == "exact"
    narrowed = parse(registry, "Task", ("subject.business-status", "x")).query.criteria[0]
    assert isinstance(narrowed, ChainCondition) and narrowed.target_type == "Task"
    ambiguous = error(registry, "Task", ("subject.birthdate", "1980"))
    assert "ambiguous" in ambiguous.issues[0].message and "subject:Patient.birthdate" in ambiguous.issues[0].message


def test_has(registry: SearchParamRegistry) -> None:
    parsed = parse(registry, "Patient", ("_has:Task:patient:status", "requested"))
    assert parsed.query.criteria == [HasCondition("Task", "patient", Condition(
        "status", ParamType.TOKEN, (TokenValue(None, "requested"),)))]
    assert parse(registry, "Patient", ("_has:Task:patient:nonsense", "x")).unknown == ["_has:Task:patient:nonsense"]


# ---- result controls --------------------------------------------------------------------------------------

def test_sort_count_paging_and_controls(registry: SearchParamRegistry) -> None:
    parsed = parse(registry, "Task", ("_sort", "-_lastUpdated,status"), ("_count", "500"), ("_page_token", "tok"),
                   ("_summary", "count"), ("_elements", "status, owner"), ("_total", "none"), ("_format", "json"),
                   ("_pretty", "true"))
    assert parsed.query.sort == [SortKey("_lastUpdated", ParamType.DATE, True), SortKey("status", ParamType.TOKEN)]
    assert parsed.query.count == 100 and parsed.query.page_token == "tok"
    assert (parsed.summary, parsed.elements, parsed.total) == ("count", ["status", "owner"], "none")
    assert parsed.unknown == []
    assert ("_page_token", "tok") not in parsed.self_params and ("_count", "100") in parsed.self_params
    assert not any(name in ("_format", "_pretty") for name, _ in parsed.self_params)
    assert parse(registry, "Task", ("_count", "0")).query.count == 0
    assert parse(registry, "Task").query.count == 20 and parse(registry, "Task").total is None


def test_includes(registry: SearchParamRegistry) -> None:
    parsed = parse(registry, "Task", ("_include", "Task:focus"), ("_include", "Task:focus:ServiceRequest"),
                   ("_include:iterate", "ServiceRequest:subject"), ("_include", "*"),
                   ("_revinclude", "Provenance:target"), ("_revinclude:iterate", "Task:part-of"))
    assert parsed.includes == [IncludeSpec("Task", "focus"), IncludeSpec("Task", "focus", "ServiceRequest"),
                               IncludeSpec("ServiceRequest", "subject", None, True), IncludeSpec("Task", "*")]
    assert parsed.revincludes == [IncludeSpec("Provenance", "target"), IncludeSpec("Task", "part-of", None, True)]
    unknown = parse(registry, "Task", ("_include", "Task:nonsense"))
    assert unknown.includes == [] and unknown.unknown == ["_include=Task:nonsense"]


def test_unknown_params_are_collected(registry: SearchParamRegistry) -> None:
    parsed = parse(registry, "Task", ("nonsense", "1"), ("status", "draft"), ("_text", "x"))
    assert parsed.unknown == ["nonsense", "_text"] and parsed.self_params == [("status", "draft")]
    assert parse(registry, "Task", ("focus:ServiceRequest.nonsense", "1")).unknown == ["focus:ServiceRequest.nonsense"]
    sorted_by = parse(registry, "Task", ("_sort", "nonsense,-status"))
    assert sorted_by.unknown == ["_sort=nonsense"]
    assert sorted_by.query.sort == [SortKey("status", ParamType.TOKEN, True)]


# ---- errors -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("resource_type", "name", "value", "code"), [
    ("Task", "authored-on", "yesterday", "value"),
    ("Task", "authored-on", "gt", "value"),
    ("Task", "_lastUpdated", "2024-13-01", "value"),
    ("Observation", "value-quantity", "abc", "value"),
    ("Observation", "value-quantity", "1|x", "value"),
    ("Task", "status", "", "value"),
    ("Task", "status", "a,,b", "value"),
    ("Task", "identifier", "a|b|c", "value"),
    ("Task", "identifier", "|", "value"),
    ("Task", "owner:missing", "maybe", "value"),
    ("Task", "_count", "-1", "value"),
    ("Task", "_count", "ten", "value"),
    ("Task", "_summary", "maybe", "value"),
    ("Task", "_total", "all", "value"),
    ("Task", "code:text", "x", "not-supported"),
    ("Task", "code:in", "http://vs", "not-supported"),
    ("Task", "code:not-in", "http://vs", "not-supported"),
    ("Task", "identifier:of-type", "x|y|z", "not-supported"),
    ("Task", "status:exact", "x", "not-supported"),
    ("Patient", "family:not", "x", "not-supported"),
    ("Task", "owner:Group", "1", "invalid"),
    ("Task", "owner:Organization", "Patient/1", "invalid"),
    ("Task", "owner:Unserved", "1", "invalid"),
    ("Task", "owner", "#contained", "value"),
    ("Task", "status.code", "x", "invalid"),
    ("Task", "subject.name", "smith", "invalid"),
    ("Task", "patient.organization.name", "x", "not-supported"),
    ("Task", "focus.nonexistentparam", "x", "invalid"),
    ("Patient", "_has:Task:patient", "x", "invalid"),
    ("Patient", "_has:Unserved:patient:status", "x", "invalid"),
    ("Patient", "_has:Task:status:status", "x", "invalid"),
    ("Encounter", "_has:Task:owner:status", "x", "invalid"),
    ("Patient", "_has:Task:patient:_has:Task:patient:status", "x", "not-supported"),
    ("Task", "_include", "Task", "invalid"),
    ("Task", "_include", "Unserved:x", "invalid"),
    ("Task", "_include", "Task:status", "invalid"),
    ("Task", "_include", "Task:owner:Group", "invalid"),
    ("Task", "_include:iterate", "Task:focus:Unserved", "invalid"),
    ("Patient", "_has:Task:patient:status.x", "x", "not-supported"),
    ("Task", "_revinclude", "*", "invalid"),
])
def test_errors(registry: SearchParamRegistry, resource_type: str, name: str, value: str, code: str) -> None:
    err = error(registry, resource_type, (name, value))
    assert err.issues[0].code == code
    head = name.split(".")[0].split(":")[0]
    assert head in err.issues[0].message


def test_number_params() -> None:
    definition = {"resourceType": "SearchParameter", "url": "urn:test:score", "name": "score", "status": "active",
                  "description": "d", "code": "score", "base": ["Basic"], "type": "number",
                  "expression": "Basic.extension('urn:score').value"}
    registry = SearchParamRegistry([definition])
    condition = only(parse(registry, "Basic", ("score", "gt100,ap1.50")))
    assert condition.values == (RangeValue(Prefix.GT, 99.5, 100.5), RangeValue(Prefix.AP, *number_range("1.50")))
    assert error(registry, "Basic", ("score", "lots")).issues[0].code == "value"
