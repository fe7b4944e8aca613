"""Code lists: the CodeSystem resources of a profiles directory, each with the ValueSet of all its codes, and
lenient parsing of code input.

Field values arrive as ``2``, ``2.``, ``2. Identified by the MCP``, ``identified by the mcp`` or a Coding; all
become the same canonical Coding. Replacing a CodeSystem file changes the accepted codes without a code change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_clr.errors import FhirError

_SPACES = re.compile(r"\s+")
_CODE_THEN_LABEL = re.compile(r"^(?P<code>[^\s.)]+)\s*[.)]?\s*(?P<label>.*)$")


def _norm(text: str) -> str:
    """Case- and spacing-insensitive form of a code or label."""
    return _SPACES.sub(" ", text).strip().casefold()


@dataclass(frozen=True, slots=True)
class Concept:
    """One code of a code system, with its display and property values."""

    code: str
    display: str
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class CodeList:
    """One CodeSystem and the ValueSet of all its codes."""

    key: str
    """The CodeSystem id (``referral-status``)."""
    title: str
    system: str
    version: str
    value_set: str
    concepts: dict[str, Concept]
    _by_code: dict[str, Concept] = field(init=False, repr=False)
    _by_label: dict[str, Concept] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._by_code = {_norm(c.code): c for c in self.concepts.values()}
        self._by_label = {_norm(c.display): c for c in self.concepts.values()}

    @classmethod
    def from_code_system(cls, resource: dict[str, Any]) -> CodeList:
        """Build from a CodeSystem resource (``content`` must be ``complete``)."""
        concepts: dict[str, Concept] = {}
        for item in resource.get("concept", ()):
            props = {p["code"]: next(v for k, v in p.items() if k.startswith("value"))
                     for p in item.get("property", ())}
            concepts[item["code"]] = Concept(item["code"], item.get("display", item["code"]), props)
        return cls(key=resource["id"], title=resource.get("title") or resource["name"], system=resource["url"],
                   version=resource.get("version", ""), value_set=resource.get("valueSet", ""), concepts=concepts)

    def find(self, value: str) -> Concept | None:
        """The concept a free-text value names, or None. Accepts the code, the label, or ``code[.)] label``."""
        text = _norm(value)
        if not text:
            return None
        found = self._by_code.get(text) or self._by_code.get(text.rstrip(".)")) or self._by_label.get(text)
        if found:
            return found
        match = _CODE_THEN_LABEL.match(text)
        if match:
            by_code = self._by_code.get(match["code"])
            if by_code is not None and _norm(by_code.display) == match["label"]:
                return by_code
        return None

    def coding(self, code: str) -> dict[str, Any]:
        """The canonical Coding of a known ``code``."""
        concept = self.concepts[code]
        return {"system": self.system, "version": self.version, "code": concept.code, "display": concept.display}

    def parse(self, value: Any, expression: str | None = None) -> dict[str, Any]:
        """The canonical Coding for ``value``: a string, a Coding, or a CodeableConcept.

        Raises a 422 :class:`FhirError` naming the value set (never the value, which may be free text).
        """
        concept = self._concept_of(value)
        if concept is None:
            raise FhirError(422, "code-invalid",
                            f"The value is not a code or label of the value set {self.title} ({self.value_set})",
                            expression=expression)
        return self.coding(concept.code)

    def parse_concept(self, value: Any, expression: str | None = None) -> dict[str, Any]:
        """A canonical CodeableConcept (one Coding, ``text`` = its display) for ``value``."""
        coding = self.parse(value, expression)
        return {"coding": [coding], "text": coding["display"]}

    def _concept_of(self, value: Any) -> Concept | None:
        if isinstance(value, str):
            return self.find(value)
        if not isinstance(value, dict):
            return None
        if "coding" in value or "text" in value:  # CodeableConcept: our coding first, then any code, then text
            codings = [c for c in value.get("coding", ()) if isinstance(c, dict)]
            ours = [c for c in codings if c.get("system") == self.system]
            for coding in ours:
                if coding.get("code") in self.concepts:
                    return self.concepts[coding["code"]]
            if ours:
                return None
            for candidate in [*(c.get("code") for c in codings if "system" not in c), value.get("text")]:
                if isinstance(candidate, str) and (concept := self.find(candidate)):
                    return concept
            return None
        system, code = value.get("system"), value.get("code")
        if system == self.system:
            return self.concepts.get(code) if isinstance(code, str) else None
        return self.find(code) if system is None and isinstance(code, str) else None

    def code_of(self, value: Any) -> str | None:
        """The code ``value`` names, or None when it names none (no error)."""
        concept = self._concept_of(value)
        return concept.code if concept else None


class CodeLists:
    """Every code list of one profiles directory, by CodeSystem id."""

    def __init__(self, code_systems: Iterable[dict[str, Any]]) -> None:
        self._lists = {cs["id"]: CodeList.from_code_system(cs) for cs in code_systems}

    @classmethod
    def from_directory(cls, directory: Path | str) -> CodeLists:
        """Load every ``CodeSystem-*.json`` file of ``directory``."""
        return cls(orjson.loads(path.read_bytes()) for path in sorted(Path(directory).glob("CodeSystem-*.json")))

    def __getitem__(self, key: str) -> CodeList:
        return self._lists[key]

    def keys(self) -> list[str]:
        """The ids of the loaded code systems."""
        return sorted(self._lists)

