"""Mapping specs: the bundled ones load, and every kind of mistake is a SpecError naming file, column and key."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from fhir_clr.clr.config import DEFAULT_PROFILES_DIR
from fhir_clr.mapping import spec_loader as mapping_spec
from fhir_clr.mapping.spec import MappingSpec, find_spec
from fhir_clr.mapping.spec_loader import SpecError
from tests.bundled import CODES, RULES, SPECS
from tests.bundled import find_spec as bundled_spec


def load_spec(path: Path) -> MappingSpec:
    return mapping_spec.load_spec(path, rules=RULES, codes=CODES, profiles_dir=DEFAULT_PROFILES_DIR)


def load_specs(directory: Path) -> dict[str, MappingSpec]:
    return mapping_spec.load_specs(directory, rules=RULES, codes=CODES, profiles_dir=DEFAULT_PROFILES_DIR)

ECM_RTF_PRE_CLR = [
    "Primary Payer (MCP) Identifier", "MCP Name", "Member Client Index Number (CIN)", "Member Last Name",
    "Member First Name", "Member New Address Indicator", "Member Homelessness Indicator", "Member Residential Address",
    "Member Residential City", "Member Residential State", "Member Residential Zip",
    "Member New Phone Number Indicator", "Member Phone Number", "Member POF Indicator", "Member POF",
    "Member ECM Status", "Member Acuity Level", "ECM Enrollment Start Date", "ECM Enrollment End Date",
    "Date of Latest Care Plan Revision", "Date of Most Recent Care Conference", "Date Assessment Started",
    "Date of Most Recent Completed Assessment", "Date of Most Recent Encounter with Member",
    "ECM Lead Care Manager Name", "ECM Lead Care Manager Phone Number", "ECM Lead Care Manager Email",
    "Discontinuation Date", "Discontinuation Reason Code", "Discontinuation Reason", "In Person", "Telephonic/Video",
    "Member Information Return Transmission File Production Date", "Member Information File Reporting Period",
    "ECM Provider Name", "ECM Provider National Provider Identifier (NPI)", "ECM Provider Tax ID Number (TIN)",
    "ECM Provider Phone Number"]

MINIMAL: dict[str, Any] = {
    "id": "test-rtf", "kind": "rtf", "program": "ecm", "version": "1.0.0", "title": "Test",
    "match": ["cin", "npi"],
    "columns": [
        {"name": "cin", "header": "Member CIN", "type": "cin", "pattern": "[0-9]{8}[A-Z]", "required": True,
         "target": "Patient.identifier[cin].value"},
        {"name": "npi", "header": "Provider NPI", "type": "npi",
         "target": "Organization[servicing].identifier[npi].value"},
        {"name": "status", "header": "Referral Status", "type": "code", "code_system": "referral-status",
         "target": "Task.businessStatus"},
    ],
}


def write(tmp_path: Path, data: Any, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_bundled_specs_load() -> None:
    specs = SPECS
    assert set(specs) == {"ecm-rtf-clr", "cs-rtf-clr", "mif", "asf"}
    for spec in specs.values():
        assert spec.match and all(name in spec.by_name for name in spec.match)
        assert any(c.type == "cin" for c in spec.columns)


def test_ecm_rtf_header_row_in_order_plus_clr_columns() -> None:
    spec = bundled_spec("rtf", "ecm")
    assert spec.headers[:len(ECM_RTF_PRE_CLR)] == ECM_RTF_PRE_CLR
    assert spec.headers[len(ECM_RTF_PRE_CLR):] == [
        "Referral Status", "Date of Referral Status Update", "Reason for Referral Loop Closure", "Service"]
    closure = spec.by_name["loop_closure_reason"]
    assert set(closure.aliases) == {"Referral Loop Closure Reason", "Reason for Referral Closure"}
    assert spec.by_name["service"].default == "ecm"
    assert spec.match == ("member_cin", "service", "ecm_provider_npi")


def test_mif_defaults_to_pending() -> None:
    assert bundled_spec("mif").by_name["referral_status"].default == "3"


def test_find_spec() -> None:
    assert bundled_spec("asf").id == "asf"
    assert bundled_spec("rtf", "cs").id == "cs-rtf-clr"
    with pytest.raises(LookupError, match="programs"):
        bundled_spec("rtf")
    with pytest.raises(LookupError):
        bundled_spec("mif", "cs")


def test_find_spec_prefers_the_newest_version(tmp_path: Path) -> None:
    write(tmp_path, {**MINIMAL, "version": "1.10.0", "id": "new"}, "a.yaml")
    write(tmp_path, {**MINIMAL, "version": "1.9.0", "id": "old"}, "b.yaml")
    assert find_spec("rtf", specs=load_specs(tmp_path)).id == "new"


def test_duplicate_ids_across_files(tmp_path: Path) -> None:
    write(tmp_path, MINIMAL, "a.yaml")
    write(tmp_path, MINIMAL, "b.yaml")
    with pytest.raises(SpecError, match=r"already used by a\.yaml"):
        load_specs(tmp_path)


def mutate(column: int | None, key: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    target = data if column is None else data["columns"][column]
    if value is _DELETE:
        del target[key]
    else:
        target[key] = value
    return data


_DELETE = object()


@pytest.mark.parametrize(("column", "key", "value", "column_name", "message"), [
    (0, "type", "cinn", "cin", "unknown type 'cinn'"),
    (2, "code_system", "no-such-list", "status", "no CodeSystem 'no-such-list'"),
    (1, "name", "cin", "cin", "duplicate column name"),
    (1, "header", "MEMBER  cin", "npi", "reads the same as one of column 'cin'"),
    (1, "aliases", ["member-CIN"], "npi", "reads the same"),
    (0, "target", "Patient.identifier[ssn].value", "cin", "identifier_systems"),
    (0, "target", "Patient.nonsense", "cin", "Patient has no element 'nonsense'"),
    (0, "target", "Nope.name", "cin", "not a resource type"),
    (0, "target", "Patient.name", "cin", "ends at a HumanName"),
    (0, "target", "Patient.birthDate", "cin", "cannot fill a date element"),
    (2, "target", "Task.extension[no-such-extension].valueCoding", "status", "no StructureDefinition"),
    (2, "target", "Task.extension[referral-type].valueCoding", "status", "not allowed on Task"),
    (1, "target", "Patient.identifier[cin].value", "npi", "overlaps the target of column 'cin'"),
    (0, "pattern", _DELETE, "cin", "needs the CIN pattern"),
    (0, "pattern", "[0-9", "cin", "not a regular expression"),
    (0, "requried", True, "cin", "unknown key"),
    (2, "format", "MM/DD/YYYY", "status", "a code format is one of"),
    (2, "default", "9", "status", "the default is not a valid code"),
    (1, "max_length", 5, "npi", "only for types"),
    (0, "required", "yes", "cin", "true or false"),
])
def test_column_errors_name_file_column_and_key(tmp_path: Path, column: int, key: str, value: Any,
                                                column_name: str, message: str) -> None:
    path = write(tmp_path, mutate(column, key, value))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    text = str(caught.value)
    assert str(path) in text and f"column {column_name!r}" in text and message in text


@pytest.mark.parametrize(("key", "value", "message"), [
    ("match", ["cin", "ghost"], "names unknown column 'ghost'"),
    ("match", [], "non-empty list"),
    ("kind", "xyz", "file-types"),
    ("version", 1.0, "non-empty string"),
    ("surprise", 1, "unknown key"),
    ("columns", [], "non-empty list of columns"),
])
def test_top_level_errors(tmp_path: Path, key: str, value: Any, message: str) -> None:
    path = write(tmp_path, mutate(None, key, value))
    with pytest.raises(SpecError, match=message) as caught:
        load_spec(path)
    assert f"key {key!r}" in str(caught.value)


def test_missing_key_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="key 'title': missing"):
        load_spec(write(tmp_path, mutate(None, "title", _DELETE)))
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: [unclosed\n", encoding="utf-8")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(bad)
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "absent.yaml")


def test_defaults_are_parsed_like_cells(tmp_path: Path) -> None:
    data = mutate(2, "default", "3. pending")
    assert load_spec(write(tmp_path, data)).by_name["status"].default == "3"
