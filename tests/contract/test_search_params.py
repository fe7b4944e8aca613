"""Contract: every parameter type, modifier and prefix, plus _id, _lastUpdated, chains, _has and count."""

from __future__ import annotations

import pytest

from fhir_clr.store.port import Store, StoredResource
from fhir_clr.store.query import (
    ChainCondition,
    Condition,
    HasCondition,
    IndexEntries,
    ParamType,
    Prefix,
    Query,
    RangeValue,
    ReferenceValue,
    StringValue,
    TokenValue,
    UriValue,
)

from .helpers import day, id_set, put, remove, us

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
VS = "http://example.org/fhir/ValueSet"


def tok(param: str, *values: TokenValue, modifier: str | None = None) -> Condition:
    return Condition(param, ParamType.TOKEN, values, modifier)


def missing(param: str, ptype: ParamType, value: bool) -> Condition:
    return Condition(param, ptype, (TokenValue(None, "true" if value else "false"),), "missing")


@pytest.fixture
async def observations(store: Store) -> dict[str, StoredResource]:
    """o0..o3 with known values of every type; x1 is a deleted resource that matched everything."""
    d1, d2, d3, d0 = day("2024-01-01"), (us("2024-06-15T12:00:00"),) * 2, \
        (us("2023-12-31T00:00:00"), us("2024-01-02T23:00:00")), (us("2020-05-05T00:00:00"),) * 2
    everything = IndexEntries(tokens=[("code", LOINC, "1234-5"), ("status", None, "final")],
                              references=[("subject", "Patient/p1")], dates=[("date", *d1)],
                              strings=[("name", "alpha beta", "Alpha Beta")], numbers=[("value", 99.5, 100.5)],
                              uris=[("url", f"{VS}/a")])
    await put(store, "Observation", "x1", everything)
    stored = {
        "o1": await put(store, "Observation", "o1", IndexEntries(
            tokens=[("code", LOINC, "1234-5"), ("status", None, "final"), ("subject:identifier", "http://cin", "A1")],
            references=[("subject", "Patient/p1")], dates=[("date", *d1)],
            strings=[("name", "alpha beta", "Alpha Beta")], numbers=[("value", 99.5, 100.5)],
            quantities=[("value-quantity", 5.35, 5.45, UCUM, "mg")], uris=[("url", f"{VS}/a")])),
        "o2": await put(store, "Observation", "o2", IndexEntries(
            tokens=[("code", LOINC, "9999-9"), ("code", None, "x"), ("status", None, "preliminary")],
            references=[("subject", "Patient/p2"), ("performer", "http://other.org/fhir/Practitioner/1")],
            dates=[("date", *d2)], strings=[("name", "beta gamma", "Beta Gamma")],
            numbers=[("value", 199.5, 200.5)], quantities=[("value-quantity", 9.5, 10.5, UCUM, "g")],
            uris=[("url", f"{VS}/a/b")])),
        "o3": await put(store, "Observation", "o3", IndexEntries(
            tokens=[("status", None, "final")], references=[("subject", "Group/p1")], dates=[("date", *d3)],
            strings=[("name", "alphabet", "Alphabet")], numbers=[("value", 4.5, 5.5)],
            uris=[("url", "http://other.org/x")])),
        "o0": await put(store, "Observation", "o0", IndexEntries(dates=[("date", *d0)])),
    }
    await remove(store, "Observation", "x1")
    await put(store, "Patient", "p1", IndexEntries(tokens=[("status", None, "final")]))
    return stored


@pytest.mark.parametrize(("values", "expected"), [
    ((TokenValue(None, "1234-5"),), {"o1"}),
    ((TokenValue(LOINC, "1234-5"),), {"o1"}),
    ((TokenValue(LOINC, None),), {"o1", "o2"}),
    ((TokenValue("", "x"),), {"o2"}),
    ((TokenValue("", "1234-5"),), set()),
    ((TokenValue("http://snomed.info/sct", "1234-5"),), set()),
    ((TokenValue(None, "1234-5"), TokenValue(None, "x")), {"o1", "o2"}),
])
async def test_token_values(store: Store, observations: object, values: tuple[TokenValue, ...],
                            expected: set[str]) -> None:
    assert await id_set(store, "Observation", tok("code", *values)) == expected


async def test_token_modifiers(store: Store, observations: object) -> None:
    assert await id_set(store, "Observation", tok("code", TokenValue(None, "1234-5"), modifier="not")) \
        == {"o0", "o2", "o3"}
    assert await id_set(store, "Observation", missing("code", ParamType.TOKEN, True)) == {"o0", "o3"}
    assert await id_set(store, "Observation", missing("code", ParamType.TOKEN, False)) == {"o1", "o2"}
    assert await id_set(store, "Observation", tok("subject", TokenValue("http://cin", "A1"), modifier="identifier")) \
        == {"o1"}
    # criteria are AND-ed, and parameters belong to the searched type only
    assert await id_set(store, "Observation", tok("status", TokenValue(None, "final")),
                        tok("code", TokenValue(None, "1234-5"))) == {"o1"}
    assert await id_set(store, "Patient", tok("status", TokenValue(None, "final"))) == {"p1"}


async def test_reference(store: Store, observations: object) -> None:
    def ref(*values: ReferenceValue, param: str = "subject") -> Condition:
        return Condition(param, ParamType.REFERENCE, values)

    assert await id_set(store, "Observation", ref(ReferenceValue("Patient/p1"))) == {"o1"}
    assert await id_set(store, "Observation", ref(ReferenceValue("Patient/p1"), ReferenceValue("Patient/p2"))) \
        == {"o1", "o2"}
    assert await id_set(store, "Observation", ref(ReferenceValue("p1", bare_id=True))) == {"o1", "o3"}
    assert await id_set(store, "Observation", ref(ReferenceValue("p1", bare_id=True, types=("Group",)))) == {"o3"}
    assert await id_set(store, "Observation", ref(ReferenceValue("1", bare_id=True), param="performer")) == set()
    url = "http://other.org/fhir/Practitioner/1"
    assert await id_set(store, "Observation", ref(ReferenceValue(url), param="performer")) == {"o2"}
    assert await id_set(store, "Observation", missing("performer", ParamType.REFERENCE, True)) == {"o0", "o1", "o3"}
    assert await id_set(store, "Observation", missing("subject", ParamType.REFERENCE, False)) == {"o1", "o2", "o3"}


@pytest.mark.parametrize(("prefix", "expected"), [
    (Prefix.EQ, {"o1"}), (Prefix.NE, {"o0", "o2", "o3"}), (Prefix.GT, {"o2", "o3"}), (Prefix.LT, {"o0", "o3"}),
    (Prefix.GE, {"o1", "o2", "o3"}), (Prefix.LE, {"o0", "o1", "o3"}), (Prefix.SA, {"o2"}), (Prefix.EB, {"o0"}),
])
async def test_date_prefixes(store: Store, observations: object, prefix: Prefix, expected: set[str]) -> None:
    condition = Condition("date", ParamType.DATE, (RangeValue(prefix, *day("2024-01-01")),))
    assert await id_set(store, "Observation", condition) == expected


async def test_date_approximately_and_or(store: Store, observations: object) -> None:
    near = Condition("date", ParamType.DATE, (RangeValue(Prefix.AP, *day("2024-06-20")),))
    assert await id_set(store, "Observation", near) == {"o2"}
    either = Condition("date", ParamType.DATE, (RangeValue(Prefix.EQ, *day("2024-01-01")),
                                                RangeValue(Prefix.EB, *day("2021-01-01"))))
    assert await id_set(store, "Observation", either) == {"o0", "o1"}
    assert await id_set(store, "Observation", missing("date", ParamType.DATE, True)) == set()


@pytest.mark.parametrize(("prefix", "expected"), [
    (Prefix.EQ, {"o1"}), (Prefix.NE, {"o2", "o3"}), (Prefix.GT, {"o2"}), (Prefix.LT, {"o3"}),
    (Prefix.GE, {"o1", "o2"}), (Prefix.LE, {"o1", "o3"}), (Prefix.SA, {"o2"}), (Prefix.EB, {"o3"}),
    (Prefix.AP, {"o1"}),
])
async def test_number_prefixes(store: Store, observations: object, prefix: Prefix, expected: set[str]) -> None:
    condition = Condition("value", ParamType.NUMBER, (RangeValue(prefix, 99.5, 100.5),))
    assert await id_set(store, "Observation", condition) == expected


async def test_number_approximately_is_ten_percent(store: Store, observations: object) -> None:
    assert await id_set(store, "Observation", Condition("value", ParamType.NUMBER,
                                                        (RangeValue(Prefix.AP, 189.5, 190.5),))) == {"o2"}
    assert await id_set(store, "Observation", Condition("value", ParamType.NUMBER,
                                                        (RangeValue(Prefix.AP, 169.5, 170.5),))) == set()


async def test_quantity(store: Store, observations: object) -> None:
    def qty(prefix: Prefix, lo: float, hi: float, system: str | None = None, code: str | None = None) -> Condition:
        return Condition("value-quantity", ParamType.QUANTITY, (RangeValue(prefix, lo, hi, system, code),))

    assert await id_set(store, "Observation", qty(Prefix.EQ, 5.35, 5.45, UCUM, "mg")) == {"o1"}
    assert await id_set(store, "Observation", qty(Prefix.EQ, 5.35, 5.45)) == {"o1"}
    assert await id_set(store, "Observation", qty(Prefix.EQ, 5.35, 5.45, None, "g")) == set()
    assert await id_set(store, "Observation", qty(Prefix.GT, 4.5, 5.5)) == {"o2"}
    assert await id_set(store, "Observation", qty(Prefix.GT, 4.5, 5.5, UCUM, "mg")) == set()
    assert await id_set(store, "Observation", qty(Prefix.LE, 9.5, 10.5, "http://other", None)) == set()


async def test_string(store: Store, observations: object) -> None:
    def name(norm: str, raw: str | None = None, modifier: str | None = None) -> Condition:
        return Condition("name", ParamType.STRING, (StringValue(norm, raw or norm),), modifier)

    assert await id_set(store, "Observation", name("alpha")) == {"o1", "o3"}
    assert await id_set(store, "Observation", name("alpha b")) == {"o1"}
    assert await id_set(store, "Observation", name("beta")) == {"o2"}
    assert await id_set(store, "Observation", name("bet", modifier="contains")) == {"o1", "o2", "o3"}
    assert await id_set(store, "Observation", name("gam", modifier="contains")) == {"o2"}
    assert await id_set(store, "Observation", name("alpha beta", "Alpha Beta", "exact")) == {"o1"}
    assert await id_set(store, "Observation", name("alpha beta", "alpha beta", "exact")) == set()
    assert await id_set(store, "Observation", name("100%_", modifier="contains")) == set()
    assert await id_set(store, "Observation", missing("name", ParamType.STRING, True)) == {"o0"}


async def test_uri(store: Store, observations: object) -> None:
    def url(value: str, modifier: str | None = None) -> Condition:
        return Condition("url", ParamType.URI, (UriValue(value),), modifier)

    assert await id_set(store, "Observation", url(f"{VS}/a")) == {"o1"}
    assert await id_set(store, "Observation", url(f"{VS}/a", "below")) == {"o1", "o2"}
    assert await id_set(store, "Observation", url(f"{VS}/a/b/c", "above")) == {"o1", "o2"}
    assert await id_set(store, "Observation", url(f"{VS}/a/b", "above")) == {"o1", "o2"}
    assert await id_set(store, "Observation", url(f"{VS}", "above")) == set()
    assert await id_set(store, "Observation", missing("url", ParamType.URI, True)) == {"o0"}


async def test_id_and_last_updated(store: Store, observations: dict[str, StoredResource]) -> None:
    ident = Condition("_id", ParamType.TOKEN, (TokenValue(None, "o1"), TokenValue(None, "o3"), TokenValue(None, "x1")))
    assert await id_set(store, "Observation", ident) == {"o1", "o3"}
    assert await id_set(store, "Observation", Condition("_id", ParamType.TOKEN, ident.values, "not")) == {"o0", "o2"}
    lu = observations["o2"].last_updated_us
    expected = {Prefix.EQ: {"o2"}, Prefix.NE: {"o1", "o3", "o0"}, Prefix.GT: {"o3", "o0"}, Prefix.LT: {"o1"},
                Prefix.GE: {"o2", "o3", "o0"}, Prefix.LE: {"o1", "o2"}, Prefix.SA: {"o3", "o0"}, Prefix.EB: {"o1"}}
    for prefix, ids in expected.items():
        condition = Condition("_lastUpdated", ParamType.DATE, (RangeValue(prefix, lu, lu),))
        assert await id_set(store, "Observation", condition) == ids, prefix


async def test_chain_and_has(store: Store) -> None:
    await put(store, "ServiceRequest", "sr1", IndexEntries(tokens=[("status", None, "active")]))
    await put(store, "ServiceRequest", "sr2", IndexEntries(tokens=[("status", None, "draft")]))
    await put(store, "Task", "t1", IndexEntries(tokens=[("status", None, "requested")],
                                                references=[("focus", "ServiceRequest/sr1")]))
    await put(store, "Task", "t2", IndexEntries(tokens=[("status", None, "accepted")],
                                                references=[("focus", "ServiceRequest/sr2")]))
    await put(store, "Task", "t3", IndexEntries(tokens=[("status", None, "accepted")]))
    active = tok("status", TokenValue(None, "active"))
    assert await id_set(store, "Task", ChainCondition("focus", "ServiceRequest", active)) == {"t1"}
    not_active = tok("status", TokenValue(None, "active"), modifier="not")
    assert await id_set(store, "Task", ChainCondition("focus", "ServiceRequest", not_active)) == {"t2"}
    by_id = Condition("_id", ParamType.TOKEN, (TokenValue(None, "sr2"),))
    assert await id_set(store, "Task", ChainCondition("focus", "ServiceRequest", by_id)) == {"t2"}

    accepted = tok("status", TokenValue(None, "accepted"))
    assert await id_set(store, "ServiceRequest", HasCondition("Task", "focus", accepted)) == {"sr2"}
    not_accepted = tok("status", TokenValue(None, "accepted"), modifier="not")
    assert await id_set(store, "ServiceRequest", HasCondition("Task", "focus", not_accepted)) == {"sr1"}
    assert await id_set(store, "ServiceRequest", HasCondition("Task", "focus", accepted),
                        tok("status", TokenValue(None, "active"))) == set()
    await remove(store, "Task", "t2")
    assert await id_set(store, "ServiceRequest", HasCondition("Task", "focus", accepted)) == set()
    assert await id_set(store, "Task", ChainCondition("focus", "ServiceRequest", by_id)) == set()


async def test_count(store: Store, observations: object) -> None:
    assert await store.count(Query("Observation")) == 4
    assert await store.count(Query("Observation", [tok("status", TokenValue(None, "final"))])) == 2
    assert await store.count(Query("Observation", [tok("status", TokenValue(None, "final")),
                                                   tok("code", TokenValue(LOINC, None))])) == 1
    assert await store.count(Query("Observation", [tok("code", TokenValue(None, "1234-5"), modifier="not")],
                                   count=0)) == 3
    assert await store.count(Query("Nothing")) == 0
