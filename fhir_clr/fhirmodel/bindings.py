"""Required bindings of FHIR R4 and the element structure needed to find them in resource JSON.

Loaded from ``r4_required_codes.json`` (built by ``tools/build_required_codes.py`` from the R4 definitions):
walk nodes (resource types, data types, backbone element paths) with their JSON keys, and the allowed codes of
every ``code`` element (``Task.status``, ``HumanName.use``) and small ``CodeableConcept`` value set
(``Condition.clinicalStatus``) bound *required*.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhir_clr.errors import Issue

TABLE_PATH = Path(__file__).with_name("r4_required_codes.json")
NESTED_RESOURCE = "Resource"
PRIMITIVE_SIBLING = "Element"
MAX_LISTED_CODES = 25
MAX_SHOWN_CODE_LENGTH = 64

Element = tuple[str, str | None, str | None]
"""An element entry of a walk node: (element name, child node, binding path). Child ``None``: a primitive;
``"Resource"``: a nested resource; anything else: a node to walk into. The binding path (``Task.status``) is
set when the element has a required binding."""


@dataclass(frozen=True, slots=True)
class BindingTable:
    """Walk nodes and required bindings, keyed by ``node.element`` paths."""

    elements: dict[str, dict[str, Element]]
    codes: dict[str, frozenset[str]]
    concepts: dict[str, dict[str, frozenset[str]]]
    value_sets: dict[str, str]

    def check(self, binding_path: str, value: Any, where: str) -> Issue | None:
        """An issue when ``value`` (one code, Coding or CodeableConcept) violates the binding at
        ``binding_path`` (``Task.status``); ``where`` is the instance path for the message."""
        allowed = self.codes.get(binding_path)
        if allowed is not None:
            if isinstance(value, str) and value not in allowed:
                return self._code_issue(binding_path, value, where, allowed)
            return None
        systems = self.concepts.get(binding_path)
        if systems is None or not isinstance(value, dict):
            return None
        is_coding = "system" in value or "code" in value
        codings = [value] if is_coding else value.get("coding", [])
        if not isinstance(codings, list) or any(_in_systems(coding, systems) for coding in codings):
            return None  # valid, or a structure error the model reports
        listed = "; ".join(f"{system}: {', '.join(sorted(codes))}" for system, codes in sorted(systems.items()))
        return Issue(code="code-invalid", expression=where,
                     message=f"{where}: needs a coding from the required value set "
                             f"{self.value_sets[binding_path]} ({listed})")

    def _code_issue(self, binding_path: str, code: str, where: str, allowed: frozenset[str]) -> Issue:
        shown = code if len(code) <= MAX_SHOWN_CODE_LENGTH else code[:MAX_SHOWN_CODE_LENGTH] + "…"
        listed = (", ".join(sorted(allowed)) if len(allowed) <= MAX_LISTED_CODES
                  else f"{len(allowed)} codes")
        return Issue(code="code-invalid", expression=where,
                     message=f"{where}: code '{shown}' is not in the required value set "
                             f"{self.value_sets[binding_path]} (allowed: {listed})")


def _in_systems(coding: Any, systems: dict[str, frozenset[str]]) -> bool:
    if not isinstance(coding, dict):
        return False
    codes = systems.get(coding.get("system"))  # type: ignore[arg-type]
    return codes is not None and coding.get("code") in codes


@cache
def binding_table() -> BindingTable:
    """The table shipped with the package, loaded once."""
    raw = json.loads(TABLE_PATH.read_text())
    bound = raw["codes"].keys() | raw["concepts"].keys()

    def entry(node: str, name: str, child: str | None) -> Element:
        path = f"{node}.{name}"
        return name, child, path if path in bound else None

    return BindingTable(
        elements={node: {key: entry(node, name, child) for key, (name, child) in keys.items()}
                  for node, keys in raw["elements"].items()},
        codes={path: frozenset(codes) for path, codes in raw["codes"].items()},
        concepts={path: {system: frozenset(codes) for system, codes in systems.items()}
                  for path, systems in raw["concepts"].items()},
        value_sets=raw["valueSets"],
    )
