"""Required code bindings (``Task.status``, ``HumanName.use``, ``Bundle.entry.request.method`` …).

The table ``r4_required_codes.json`` is built from the R4 definitions by ``tools/build_required_codes.py``.
Element types come from fhirpathpy's R4 model (``path2Type.json``) so the walk can descend into data types
(``Patient.name`` is a HumanName, whose ``use`` is bound) and backbone elements (``Patient.contact.gender``).
Only branches that can contain a bound code are visited.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import fhirpathpy

from fhir_clr.errors import Issue

TABLE_PATH = Path(__file__).with_name("r4_required_codes.json")
PATH_TYPES = Path(fhirpathpy.__file__).parent / "models" / "r4" / "path2Type.json"


class BindingChecker:
    """Checks the codes of required bindings in a resource's JSON."""

    def __init__(self, table: dict[str, list[str]], path_types: dict[str, str]) -> None:
        self.allowed = {path: frozenset(codes) for path, codes in table.items()}
        self.path_types = path_types
        self.relevant = self._relevant_paths()

    def _relevant_paths(self) -> frozenset[str]:
        """Element paths (and type names) under which a bound code can occur."""
        relevant: set[str] = set()
        for path in self.allowed:
            parts = path.split(".")
            for end in range(1, len(parts)):
                relevant.add(".".join(parts[:end]))
        changed = True
        while changed:  # a path typed as a relevant data type is relevant too
            changed = False
            for path, type_name in self.path_types.items():
                if type_name in relevant and path not in relevant:
                    relevant.add(path)
                    for end in range(1, path.count(".") + 1):
                        relevant.add(".".join(path.split(".")[:end]))
                    changed = True
        return frozenset(relevant)

    def issues(self, resource: dict[str, Any], resource_type: str, location: str | None = None) -> list[Issue]:
        """Bound codes not in their value set, with the element path of each."""
        found: list[Issue] = []
        self._walk(resource, resource_type, location or resource_type, found)
        return found

    def _walk(self, node: dict[str, Any], model_path: str, location: str, found: list[Issue]) -> None:
        for key, value in node.items():
            if key.startswith("_") or key in ("extension", "modifierExtension", "contained"):
                continue
            child = f"{model_path}.{key}"
            allowed = self.allowed.get(child)
            if allowed is not None:
                self._check(value, allowed, child, f"{location}.{key}", found)
                continue
            if child not in self.relevant:
                continue
            type_name = self.path_types.get(child)
            target = type_name if type_name and type_name[:1].isupper() and type_name in self.relevant else child
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    where = f"{location}.{key}[{index}]" if isinstance(value, list) else f"{location}.{key}"
                    self._walk(item, target, where, found)

    @staticmethod
    def _check(value: Any, allowed: frozenset[str], model_path: str, location: str, found: list[Issue]) -> None:
        values = value if isinstance(value, list) else [value]
        for index, code in enumerate(values):
            where = f"{location}[{index}]" if isinstance(value, list) else location
            if isinstance(code, str) and code not in allowed:
                shown = ", ".join(sorted(allowed)) if len(allowed) <= 20 else f"{len(allowed)} codes"
                found.append(Issue(code="code-invalid", expression=where,
                                   message=f"{where}: '{code}' is not allowed by the required binding of "
                                           f"{model_path} (allowed: {shown})"))


@lru_cache(maxsize=1)
def binding_checker() -> BindingChecker:
    """The shared checker, loaded once."""
    return BindingChecker(json.loads(TABLE_PATH.read_text()), json.loads(PATH_TYPES.read_text()))
