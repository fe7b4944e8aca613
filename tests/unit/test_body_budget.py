"""The JSON body budget: byte counts decide what they can prove, the parsed tree decides the rest, and the
counts agree with the definition (JSON values and strings, keys included)."""

from __future__ import annotations

import orjson
import pytest

from fhir_clr.api.body_budget import BodyBudget
from fhir_clr.errors import FhirError


def _refusal(budget: BodyBudget, raw: bytes) -> str | None:
    try:
        budget.parse(raw)
    except FhirError as error:
        assert error.status == 413
        return error.issues[0].message
    return None


def test_counts_values_and_strings_with_keys() -> None:
    raw = orjson.dumps({"resourceType": "Patient", "name": [{"given": ["a", "b"]}], "active": True})
    # values: the root, then keys and values of {resourceType: "Patient", name: [..], active: true} = 6, the
    # name list's object = 1, {given: [..]} = 2, ["a", "b"] = 2: 12; strings: 4 keys and 3 values: 7
    assert _refusal(BodyBudget(max_elements=12, max_strings=7), raw) is None
    assert "more than 11 values" in (_refusal(BodyBudget(max_elements=11, max_strings=100), raw) or "")
    assert "more than 6 strings" in (_refusal(BodyBudget(max_elements=100, max_strings=6), raw) or "")


def test_many_strings_are_refused_from_the_bytes_alone() -> None:
    budget = BodyBudget(max_elements=10**9, max_strings=1000)
    raw = b'{"resourceType":"Patient","x":[' + b",".join([b'"abc"'] * 2000) + b"]}"
    with pytest.raises(FhirError) as refused:
        budget.check_bytes(raw)
    assert refused.value.status == 413


def test_structural_characters_inside_strings_are_counted_exactly() -> None:
    budget = BodyBudget(max_elements=1000, max_strings=1000)
    prose = {"resourceType": "Patient", "name": [{"text": 'a, [b]: {c}, \\"quoted\\" ' * 5000}]}
    raw = orjson.dumps(prose)
    assert budget.check_bytes(raw) is False  # the upper bounds are far over: the tree decides
    assert budget.parse(raw) == prose


def test_escaped_quotes_do_not_hide_strings() -> None:
    budget = BodyBudget(max_elements=10**9, max_strings=1000)
    raw = orjson.dumps({"x": ['"'] * 1500})
    assert "more than 1000 strings" in (_refusal(budget, raw) or "")


def test_numbers_without_strings_are_refused_from_the_bytes() -> None:
    budget = BodyBudget(max_elements=1000, max_strings=1000)
    with pytest.raises(FhirError):
        budget.check_bytes(orjson.dumps([1] * 2000))
    assert budget.check_bytes(orjson.dumps([1] * 500)) is True
