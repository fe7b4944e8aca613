"""Round-trip properties for every bundled spec: records → file (each format) → records, and
records → FHIR → records for every column with a target (FHIR → file → FHIR follows from both)."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_clr.mapping.fhir_map import fhir_to_record, record_to_fhir
from fhir_clr.mapping.headers import match_headers
from fhir_clr.mapping.readers import open_table
from fhir_clr.mapping.rows import parse_row
from fhir_clr.mapping.spec import ColumnSpec, MappingSpec
from fhir_clr.mapping.values import npi_check_digit_ok
from fhir_clr.mapping.writers import FORMATS, write_table
from tests.bundled import SPECS as BUNDLED_SPECS

SPECS = sorted(BUNDLED_SPECS.values(), key=lambda s: s.id)
TEXT = st.one_of(st.characters(blacklist_categories=("Cs", "Cc", "Cn")), st.sampled_from("\n\t,|\"'=+-@ "))


def npi_from(base: str) -> str:
    return next(base + d for d in "0123456789" if npi_check_digit_ok(base + d))


def values_of(column: ColumnSpec) -> st.SearchStrategy[Any]:
    """Values a parse can produce for ``column`` (the canonical forms)."""
    kind = column.type
    if kind == "date":
        return st.dates(date(1900, 1, 1), date(2099, 12, 31))
    if kind == "code":
        assert column.code_list is not None
        return st.sampled_from(sorted(column.code_list.concepts))
    if kind == "phone":
        return st.one_of(st.from_regex(r"[2-9][0-9]{9}", fullmatch=True),
                         st.from_regex(r"\+[2-9][0-9]{7,14}", fullmatch=True))
    if kind == "email":
        return st.from_regex(r"[a-z0-9._%+'-]{1,20}@[a-z0-9-]{1,20}(\.[a-z]{2,6}){1,2}", fullmatch=True)
    if kind == "integer":
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "boolean":
        return st.booleans()
    if kind == "npi":
        return st.from_regex(r"[0-9]{9}", fullmatch=True).map(npi_from)
    if column.pattern:
        return st.from_regex(column.pattern, fullmatch=True).map(str.upper if kind == "cin" else str)
    limit = min(column.max_length or 40, 40)
    prefixes = st.sampled_from(["", "", "", "=", "'=", "''@", "+", "-", "'"])
    return st.tuples(prefixes, st.text(TEXT, max_size=limit)).map(lambda p: "".join(p).strip()[:limit].strip()) \
        .filter(bool)


def records_of(spec: MappingSpec) -> st.SearchStrategy[dict[str, Any]]:
    fields = {c.name: values_of(c) if c.required and c.default is None else st.none() | values_of(c)
              for c in spec.columns}
    return st.fixed_dictionaries(fields)


def expected(spec: MappingSpec, record: dict[str, Any]) -> dict[str, Any]:
    """What reading ``record`` back gives: empty cells of columns with a default read as the default."""
    return {c.name: c.default if record[c.name] is None else record[c.name] for c in spec.columns}


def read_back(spec: MappingSpec, data: bytes) -> list[dict[str, Any]]:
    with open_table(data) as table:
        matched = match_headers(spec, table.headers)
        assert matched.ok and not matched.extra and not matched.duplicates
        rows = [parse_row(spec, matched, raw) for raw in table]
    assert all(row.ok for row in rows), [row.errors for row in rows]
    return [row.values for row in rows]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_records_survive_a_file(spec: MappingSpec, fmt: str) -> None:
    @settings(max_examples=15 if fmt == "xlsx" else 40, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(records_of(spec), min_size=1, max_size=4))
    def check(records: list[dict[str, Any]]) -> None:
        out = io.BytesIO()
        assert write_table(spec, records, fmt, out) == len(records)
        assert read_back(spec, out.getvalue()) == [expected(spec, r) for r in records]

    check()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_mapped_values_survive_fhir_json(spec: MappingSpec) -> None:
    @settings(max_examples=150, deadline=None)
    @given(records_of(spec))
    def check(record: dict[str, Any]) -> None:
        fragments = orjson.loads(orjson.dumps(record_to_fhir(spec, record)))
        mapped = {c.name: record[c.name] if c.path is not None else None for c in spec.columns}
        assert fhir_to_record(spec, fragments) == mapped

    check()


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.id)
def test_fhir_survives_a_file(spec: MappingSpec) -> None:
    @settings(max_examples=40, deadline=None)
    @given(records_of(spec), st.sampled_from(FORMATS))
    def check(record: dict[str, Any], fmt: str) -> None:
        fragments = record_to_fhir(spec, expected(spec, record))
        out = io.BytesIO()
        write_table(spec, [fhir_to_record(spec, fragments)], fmt, out)
        (values,) = read_back(spec, out.getvalue())
        assert record_to_fhir(spec, values) == fragments

    check()
