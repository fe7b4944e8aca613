"""Subscription filter criteria matched in memory: parsing (every error path), each parameter type and
modifier, and a cross-check against the SQLite store's search on a varied set of resources."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import Change, ChangeOp
from fhir_clr.store.query import Prefix, Query, RangeValue
from fhir_clr.store.sqlite import SqliteStore
from fhir_clr.subscriptions.matching import FilterError, ResourceFilter, parse_filter
from fhir_clr.subscriptions.matching_values import range_matches

BASE = "https://our.base/fhir"
PROFILES = Path(__file__).resolve().parents[2] / "profiles"
PROFILE = "http://example.org/StructureDefinition/clr-task"


@pytest.fixture(scope="module")
def registry() -> SearchParamRegistry:
    return SearchParamRegistry.from_directory(PROFILES, base_urls=[BASE])


def flt(registry: SearchParamRegistry, resource_type: str, *criteria: str) -> ResourceFilter:
    return parse_filter(resource_type, criteria, registry, base_urls=[BASE])


def task(**fields: Any) -> dict[str, Any]:
    return {"resourceType": "Task", "id": "t", "status": "requested", "intent": "order", **fields}


def ref(reference: str) -> dict[str, str]:
    return {"reference": reference}


# ---- parsing ------------------------------------------------------------------------------------------

def test_forms_and_params(registry: SearchParamRegistry) -> None:
    plain = flt(registry, "Task", "owner=Organization/1")
    query = flt(registry, "Task", "Task?owner=Organization/1&status:not=draft")
    dotted = flt(registry, "Task", "Task.owner=Organization/1")
    assert plain.resource_type == "Task"
    assert plain.params == dotted.params == frozenset({"owner"})
    assert query.params == frozenset({"owner", "status"})
    assert flt(registry, "Task", "_lastupdated=gt2020").params == frozenset({"_lastUpdated"})
    assert flt(registry, "Task", "Task?").params == frozenset()


def test_question_mark_inside_a_value(registry: SearchParamRegistry) -> None:
    resource = task(meta={"source": "http://src.example/app?x=1"})
    assert flt(registry, "Task", "_source=http://src.example/app?x=1").matches(resource)
    assert flt(registry, "Task", "Task?_source=http://src.example/app?x=1").matches(resource)
    assert not flt(registry, "Task", "_source=http://src.example/app?x=2").matches(resource)


def test_percent_encoded_values(registry: SearchParamRegistry) -> None:
    encoded = flt(registry, "Task", "code=http%3A%2F%2Fx%7Cabc")
    assert encoded.matches(task(code={"coding": [{"system": "http://x", "code": "abc"}]}))
    assert not encoded.matches(task(code={"coding": [{"system": "http://y", "code": "abc"}]}))


@pytest.mark.parametrize(("criteria", "param", "fragment"), [
    ("nonsense=1", "nonsense", "unknown search parameter"),
    ("Patient?name=x", None, "'Patient'"),
    ("Patient.name=x", "name", "'Patient'"),
    ("?status=draft", None, "resource type ''"),
    ("owner.name=x", "owner.name", "chained"),
    ("owner:Organization.name=x", "owner:Organization.name", "chained"),
    ("_has:Task:focus:status=draft", "_has:Task:focus:status", "not supported"),
    ("_text=x", "_text", "not supported"),
    ("_content=x", "_content", "not supported"),
    ("_sort=status", "_sort", "not supported"),
    ("_count=1", "_count", "not supported"),
    ("_include=Task:owner", "_include", "not supported"),
    ("_revinclude=Provenance:target", "_revinclude", "not supported"),
    ("_summary=true", "_summary", "not supported"),
    ("authored-on=notadate", "authored-on", "not a FHIR date"),
    ("status=", "status", "empty search value"),
    ("status=a,,b", "status", "empty search value"),
    ("code=a|b|c", "code", "a token is"),
    ("status:in=http://vs", "status:in", "not supported"),
    ("status:exact=x", "status:exact", "does not apply"),
    ("owner:missing=maybe", "owner:missing", "true or false"),
    ("owner:Observation=1", "owner:Observation", "cannot refer to"),
    ("owner=#contained", "owner", "contained"),
    ("status", "status", "expected param=value"),
    ("=x", None, "expected param=value"),
    ("", None, "empty filter criteria"),
])
def test_filter_errors(registry: SearchParamRegistry, criteria: str, param: str | None, fragment: str) -> None:
    with pytest.raises(FilterError) as caught:
        flt(registry, "Task", criteria)
    assert caught.value.param == param
    assert fragment in str(caught.value)
    assert isinstance(caught.value, ValueError)


# ---- matching by parameter type -----------------------------------------------------------------------

def test_other_resource_type_never_matches(registry: SearchParamRegistry) -> None:
    assert not flt(registry, "Task", "Task?").matches({"resourceType": "ServiceRequest", "id": "t"})
    assert flt(registry, "Task", "Task?").matches(task())


def test_tokens(registry: SearchParamRegistry) -> None:
    coded = task(code={"coding": [{"system": "http://x", "code": "abc"}, {"code": "plain"}]})
    cases = {
        "code=abc": True, "code=http://x|abc": True, "code=http://y|abc": False, "code=|abc": False,
        "code=|plain": True, "code=http://x|": True, "code=http://y|": False, "code=zzz,abc": True,
        "code:not=abc": False, "code:not=http://y|abc": True, "code:missing=false": True,
        "code:missing=true": False, "priority:missing=true": True,
        "status=requested,accepted": True, "status=accepted": False, "status:not=draft": True,
    }
    for criteria, expected in cases.items():
        assert flt(registry, "Task", criteria).matches(coded) is expected, criteria


def test_ored_values_and_anded_criteria(registry: SearchParamRegistry) -> None:
    resource = task(owner=ref("Organization/1"))
    assert flt(registry, "Task", "status=requested", "owner=Organization/1").matches(resource)
    assert not flt(registry, "Task", "status=requested", "owner=Organization/2").matches(resource)
    assert flt(registry, "Task", "status=draft,requested&owner=Organization/2,Organization/1").matches(resource)
    assert not flt(registry, "Task", "Task?status=requested&status=draft").matches(resource)


def test_references(registry: SearchParamRegistry) -> None:
    local = task(owner=ref(f"{BASE}/Organization/9"), requester=ref("http://other.org/fhir/Practitioner/1"))
    cases = {
        "owner=Organization/9": True, f"owner={BASE}/Organization/9": True, "owner=9": True,
        "owner:Organization=9": True, "owner:Practitioner=9": False, "owner=Organization/99": False,
        "owner=99": False, "requester=http://other.org/fhir/Practitioner/1": True,
        "requester=1": False, "requester=Practitioner/1": False, "owner:missing=false": True,
        "focus:missing=true": True,
    }
    for criteria, expected in cases.items():
        assert flt(registry, "Task", criteria).matches(local) is expected, criteria


def test_reference_identifier(registry: SearchParamRegistry) -> None:
    resource = task(requester={"identifier": {"system": "urn:npi", "value": "N1"}})
    assert flt(registry, "Task", "requester:identifier=urn:npi|N1").matches(resource)
    assert flt(registry, "Task", "requester:identifier=N1").matches(resource)
    assert not flt(registry, "Task", "requester:identifier=urn:other|N1").matches(resource)
    assert flt(registry, "Task", "requester:missing=true").matches(resource)


def test_id(registry: SearchParamRegistry) -> None:
    resource = task(id="abc")
    cases = {"_id=abc": True, "_id=abc,def": True, "_id=def": False, "_id:not=abc": False,
             "_id:not=def": True, "_id=any|": True, "_id:missing=false": True, "_id:missing=true": False}
    for criteria, expected in cases.items():
        assert flt(registry, "Task", criteria).matches(resource) is expected, criteria


def test_last_updated(registry: SearchParamRegistry) -> None:
    resource = task(meta={"lastUpdated": "2026-01-15T10:00:00.123456Z"})
    cases = {
        "_lastUpdated=2026-01-15": True, "_lastUpdated=2026-01-16": False, "_lastUpdated=gt2026-01-01": True,
        "_lastUpdated=gt2026-01-15T10:00:00.123456Z": False, "_lastUpdated=ge2026-01-15T10:00:00.123456Z": True,
        "_lastUpdated=lt2026-01-15T10:00:01Z": True, "_lastUpdated=le2026-01-14": False,
        "_lastUpdated=ne2026-01": False, "_lastUpdated=sa2025": True, "_lastUpdated=eb2026-01-15": False,
        "_lastUpdated=lt2020,gt2026-01-10": True,
    }
    for criteria, expected in cases.items():
        assert flt(registry, "Task", criteria).matches(resource) is expected, criteria
    assert not flt(registry, "Task", "_lastUpdated=gt2000").matches(task())


def test_dates(registry: SearchParamRegistry) -> None:
    resource = task(authoredOn="2026-01-05", executionPeriod={"start": "2026-02-01T08:00:00Z"})
    cases = {
        "authored-on=2026-01-05": True, "authored-on=2026-01": True, "authored-on=2026-01-05T10:00:00Z": False,
        "authored-on=gt2026-01-04": True, "authored-on=gt2026-01-05": False, "authored-on=ge2026-01-05": True,
        "authored-on=lt2026-01-05T12:00:00Z": True, "authored-on=le2026-01-04": False,
        "authored-on=sa2026-01-04": True, "authored-on=eb2026-01-06": True, "authored-on=eb2026-01-05": False,
        "authored-on=ne2026-01-05": False, "authored-on=ap2026-01-06": True, "authored-on=ap1990": False,
        "period=gt2030": True, "period=lt2026-02-01T07:00:00Z": False, "period=2026-02-01": False,
        "due-date:missing=true": True,
    }
    for criteria, expected in cases.items():
        assert flt(registry, "Task", criteria).matches(resource) is expected, criteria


def test_strings(registry: SearchParamRegistry) -> None:
    patient = {"resourceType": "Patient", "id": "p", "name": [{"family": "Müller", "given": ["Anna Lena"]}]}
    cases = {
        "name=mull": True, "name=MÜL": True, "name=ller": False, "name:contains=ll": True,
        "name:exact=Müller": True, "name:exact=muller": False, "family=mü,xyz": True, "given=anna l": True,
        "given=lena": False, "given:contains=lena": True, "address:missing=true": True,
    }
    for criteria, expected in cases.items():
        assert flt(registry, "Patient", criteria).matches(patient) is expected, criteria


def test_uris(registry: SearchParamRegistry) -> None:
    resource = task(meta={"profile": [PROFILE]})
    cases = {
        f"_profile={PROFILE}": True, "_profile=http://example.org": False,
        "_profile:below=http://example.org/StructureDefinition/": True,
        "_profile:below=http://example.org/other/": False,
        f"_profile:above={PROFILE}/more": True, "_profile:above=http://example.org/": False,
        "_source:missing=true": True,
    }
    for criteria, expected in cases.items():
        assert flt(registry, "Task", criteria).matches(resource) is expected, criteria


def test_quantities(registry: SearchParamRegistry) -> None:
    obs = {"resourceType": "Observation", "id": "o", "status": "final", "code": {"text": "x"},
           "valueQuantity": {"value": 5.4, "system": "http://unitsofmeasure.org", "code": "mg"}}
    cases = {
        "value-quantity=5.4": True, "value-quantity=5": True, "value-quantity=6": False,
        "value-quantity=gt4|http://unitsofmeasure.org|mg": True, "value-quantity=gt5": False,
        "value-quantity=gt4||g": False, "value-quantity=le10||mg": True, "value-quantity=ap5": True,
        "value-quantity=lt5.4": False,
    }
    for criteria, expected in cases.items():
        assert flt(registry, "Observation", criteria).matches(obs) is expected, criteria


def test_number_ranges() -> None:
    def num(prefix: Prefix, lo: float, hi: float) -> RangeValue:
        return RangeValue(prefix, lo, hi)

    stored = (99.5, 100.5)  # "100"
    assert range_matches(*stored, num(Prefix.EQ, 99.5, 100.5), is_date=False, now_us=0)
    assert not range_matches(*stored, num(Prefix.EQ, 99.95, 100.05), is_date=False, now_us=0)
    assert range_matches(*stored, num(Prefix.AP, 95, 95), is_date=False, now_us=0)
    assert not range_matches(*stored, num(Prefix.AP, 80, 80), is_date=False, now_us=0)
    assert range_matches(*stored, num(Prefix.SA, 50, 60), is_date=False, now_us=0)


def test_precomputed_index_is_used(registry: SearchParamRegistry) -> None:
    resource = task(owner=ref("Organization/1"))
    other = registry.extract(task(owner=ref("Organization/2")))
    assert flt(registry, "Task", "owner=Organization/1").matches(resource)
    assert not flt(registry, "Task", "owner=Organization/1").matches(resource, other)


# ---- cross-check against the store's search -----------------------------------------------------------

OWNERS = ["Organization/1", "Organization/2", f"{BASE}/Organization/3", "http://other.org/fhir/Organization/1",
          "Practitioner/1", None]
STATUSES = ["draft", "requested", "accepted", "in-progress", "completed", "cancelled"]
CODINGS = [{"system": "http://x", "code": "abc"}, {"system": "http://y", "code": "abc"},
           {"system": "http://x", "code": "def"}, {"code": "abc"}, {"system": "http://y", "code": "ghi"}]
AUTHORED = ["2026-01-03", "2026-01-04T10:00:00Z", "2026-01-05T23:30:00+02:00", "2026-01", "2025-12-31",
            "2026-01-07T00:00:00.5Z", None]
NAMES = [("Müller", ["Anna"]), ("Muller", ["Bob", "Anna"]), ("Smith", ["Ann-Marie"]), ("Smíth", ["Zoë"]),
         ("García López", ["José"]), ("Ng", ["Annabel"])]


def _task(i: int) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "Task", "id": f"t{i}", "status": STATUSES[i % 6],
                            "intent": ["order", "plan", "proposal"][i % 3],
                            "identifier": [{"system": "urn:ids", "value": f"T-{i % 7}"}],
                            "code": {"coding": [CODINGS[i % 5]]}}
    if (owner := OWNERS[i % 6]) is not None:
        body["owner"] = ref(owner)
    body["requester"] = ({"identifier": {"system": "urn:npi", "value": f"N{i % 2}"}} if i % 4 == 3
                         else ref(f"Practitioner/p{i % 3}") if i % 2 else ref(f"{BASE}/Organization/9"))
    if (authored := AUTHORED[i % 7]) is not None:
        body["authoredOn"] = authored
    if i % 3 == 0:
        body["meta"] = {"profile": [PROFILE if i % 2 else f"{PROFILE}-v2"],
                        "tag": [{"system": "http://tags", "code": "urgent"}]}
    if i % 5 == 1:
        body["executionPeriod"] = {"start": f"2026-02-0{i % 9 + 1}", **({"end": "2026-03"} if i % 2 else {})}
    return body


def _service_request(i: int) -> dict[str, Any]:
    body: dict[str, Any] = {"resourceType": "ServiceRequest", "id": f"s{i}", "status": ["active", "draft"][i % 2],
                            "intent": "order", "subject": ref(f"Patient/pa{i % 3}"),
                            "code": {"coding": [CODINGS[(i + 1) % 5]]}, "authoredOn": f"2026-0{i % 3 + 1}-1{i}"}
    if i % 3:
        body["requester"] = ref("Organization/9" if i % 2 else f"{BASE}/Practitioner/p1")
    if i % 4 == 0:
        body["occurrencePeriod"] = {"start": f"2026-0{i % 5 + 1}-01", "end": f"2026-0{i % 5 + 2}-15"}
    elif i % 4 == 1:
        body["occurrenceDateTime"] = f"2026-03-0{i % 9 + 1}T12:00:00Z"
    return body


def _patient(i: int) -> dict[str, Any]:
    family, given = NAMES[i % 6]
    body: dict[str, Any] = {"resourceType": "Patient", "id": f"pa{i}", "name": [{"family": family, "given": given}],
                            "gender": ["female", "male", "other"][i % 3], "active": i % 2 == 0,
                            "identifier": [{"system": "urn:mrn", "value": f"M{i}"}]}
    if i % 4:
        body["birthDate"] = f"19{70 + i * 3}-0{i % 9 + 1}-1{i % 10}"
    if i % 3 == 0:
        body["generalPractitioner"] = [ref(f"Practitioner/p{i % 2}")]
        body["address"] = [{"city": ["Berlin", "Bern"][i % 2]}]
    return body


def _observation(i: int) -> dict[str, Any]:
    return {"resourceType": "Observation", "id": f"o{i}", "status": "final", "code": {"text": "weight"},
            "valueQuantity": {"value": [5.4, 5, 10, 120.25, 0.5][i % 5], "system": "http://unitsofmeasure.org",
                              "code": ["mg", "g"][i % 2]}}


RESOURCES = ([_task(i) for i in range(20)] + [_service_request(i) for i in range(8)]
             + [_patient(i) for i in range(8)] + [_observation(i) for i in range(5)])

FILTERS: list[tuple[str, tuple[str, ...]]] = [
    ("Task", ("owner=Organization/1",)),
    ("Task", ("owner=Organization/3",)),
    ("Task", (f"owner={BASE}/Organization/3",)),
    ("Task", ("owner=http://other.org/fhir/Organization/1",)),
    ("Task", ("owner=1",)),
    ("Task", ("owner:Organization=1,2",)),
    ("Task", ("owner:missing=true",)),
    ("Task", ("owner:missing=false", "status=completed")),
    ("Task", ("status=requested,accepted",)),
    ("Task", ("status:not=draft&intent=order",)),
    ("Task", ("Task?status:not=completed&status:not=cancelled&owner:missing=false",)),
    ("Task", ("code=http://x|abc",)),
    ("Task", ("code=|abc",)),
    ("Task", ("code=http://y|",)),
    ("Task", ("code=abc,def",)),
    ("Task", ("code:not=http://x|abc",)),
    ("Task", ("identifier=urn:ids|T-3",)),
    ("Task", ("requester=Organization/9",)),
    ("Task", ("requester=p1",)),
    ("Task", ("requester:identifier=urn:npi|N1",)),
    ("Task", ("_id=t1,t2,t5,s1",)),
    ("Task", ("_id:not=t1&status=draft",)),
    ("Task", ("authored-on=2026-01-03",)),
    ("Task", ("authored-on=2026-01",)),
    ("Task", ("authored-on=gt2026-01-04",)),
    ("Task", ("authored-on=le2026-01-04T12:00:00Z",)),
    ("Task", ("authored-on=sa2026-01-03",)),
    ("Task", ("authored-on=eb2026-01-05",)),
    ("Task", ("authored-on=ne2026-01-03",)),
    ("Task", ("authored-on=ge2026-01-07",)),
    ("Task", ("authored-on=lt2026-01-05T21:30:00Z,gt2026-01-06",)),
    ("Task", ("authored-on:missing=true",)),
    ("Task", ("period=ge2026-02-05",)),
    ("Task", ("_lastUpdated=gt2020-01-01",)),
    ("Task", ("_lastUpdated=lt2020-01-01",)),
    ("Task", (f"_profile={PROFILE}",)),
    ("Task", ("_profile:below=http://example.org/",)),
    ("Task", (f"_profile:above={PROFILE}-v2/x",)),
    ("Task", ("_tag=http://tags|urgent", "intent=order")),
    ("Task", ("_lastUpdated=gt{lu}",)),
    ("Task", ("_lastUpdated=le{lu}&status=draft,accepted",)),
    ("ServiceRequest", ("subject=Patient/pa1",)),
    ("ServiceRequest", ("patient=pa2",)),
    ("ServiceRequest", ("occurrence=ge2026-03-01",)),
    ("ServiceRequest", ("occurrence=2026-03",)),
    ("ServiceRequest", ("code:not=http://x|abc&status=active",)),
    ("ServiceRequest", (f"requester={BASE}/Organization/9",)),
    ("ServiceRequest", ("requester=Practitioner/p1",)),
    ("ServiceRequest", ("authored=2026-02",)),
    ("Patient", ("name=mull",)),
    ("Patient", ("name:exact=Müller",)),
    ("Patient", ("name:contains=an",)),
    ("Patient", ("family=smi,gar",)),
    ("Patient", ("given=ann",)),
    ("Patient", ("birthdate=lt1980",)),
    ("Patient", ("birthdate:missing=true", "gender=female")),
    ("Patient", ("active=true&gender:not=male",)),
    ("Patient", ("general-practitioner=Practitioner/p1",)),
    ("Patient", ("address-city=ber",)),
    ("Patient", ("identifier=urn:mrn|M3,M5",)),
    ("Observation", ("value-quantity=5",)),
    ("Observation", ("value-quantity=gt4|http://unitsofmeasure.org|mg",)),
    ("Observation", ("value-quantity=le10||g",)),
    ("Observation", ("value-quantity=ap120",)),
]
"""Filters on types Task, ServiceRequest, Patient, Observation; ``{lu}`` stands for the stored
``meta.lastUpdated`` of ``t9`` (the store assigns it)."""


def _criteria(criteria: tuple[str, ...], stored: list[dict[str, Any]]) -> tuple[str, ...]:
    last_updated = next(r["meta"]["lastUpdated"] for r in stored if r["id"] == "t9")
    return tuple(c.replace("{lu}", last_updated) for c in criteria)


async def _stored_and_found(directory: Path, registry: SearchParamRegistry
                            ) -> tuple[list[dict[str, Any]], list[set[str]]]:
    """Commit RESOURCES to a SQLite store; return the stored bodies and the ids each filter's search finds."""
    store = SqliteStore(directory / "matching.sqlite3", read_threads=2)
    await store.open()
    try:
        changes = [Change(ChangeOp.CREATE, r["resourceType"], r["id"], 0, r, registry.extract(r))
                   for r in RESOURCES]
        stored = [orjson.loads(s.body or b"") for s in await store.commit(changes)]
        found = []
        for resource_type, criteria in FILTERS:
            conditions = flt(registry, resource_type, *_criteria(criteria, stored)).conditions
            page = await store.search(Query(resource_type, list(conditions), count=1000))
            found.append({r.resource_id for r in page.resources})
        return stored, found
    finally:
        await store.close()


@pytest.fixture(scope="module")
def store_results(registry: SearchParamRegistry, tmp_path_factory: pytest.TempPathFactory
                  ) -> tuple[list[dict[str, Any]], list[set[str]]]:
    return asyncio.run(_stored_and_found(tmp_path_factory.mktemp("matching"), registry))


@pytest.mark.parametrize("case", range(len(FILTERS)), ids=[" & ".join(c) for _, c in FILTERS])
def test_matches_like_the_store(registry: SearchParamRegistry,
                                store_results: tuple[list[dict[str, Any]], list[set[str]]], case: int) -> None:
    stored, found = store_results
    resource_type, criteria = FILTERS[case]
    resource_filter = flt(registry, resource_type, *_criteria(criteria, stored))
    assert {r["id"] for r in stored if resource_filter.matches(r)} == found[case]


def test_cross_check_is_discriminating(store_results: tuple[list[dict[str, Any]], list[set[str]]]) -> None:
    """Most filters select some but not all resources of their type, so agreement means something."""
    stored, found = store_results
    sizes = {t: sum(r["resourceType"] == t for r in stored) for t, _ in FILTERS}
    partial = [0 < len(ids) < sizes[t] for (t, _), ids in zip(FILTERS, found, strict=True)]
    assert sum(partial) >= len(FILTERS) - 3
