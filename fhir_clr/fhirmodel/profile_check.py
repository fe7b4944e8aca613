"""Validation against our own StructureDefinitions (``profiles/``): a resource that claims a CLR profile must
meet its differential — element cardinalities, extension slices, required bindings to our ValueSets — and every
CLR extension it carries must match its definition (value type, value binding, sub-extensions).

The differentials are compiled once into small rule lists; a resource claiming no CLR profile and carrying no
CLR extension costs a couple of dict lookups. Issues name the element (``Task.restriction.period.end``,
``ServiceRequest.extension('…/referral-type')``) and never echo values.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fhir_clr.errors import Issue
from fhir_clr.fhirmodel.code_lists import CodeList, CodeLists
from fhir_clr.fhirmodel.profiles import claimed_profiles


@dataclass(frozen=True, slots=True)
class Binding:
    """The code lists a required binding's ValueSet includes (one, or several for a union ValueSet)."""

    title: str
    value_set: str
    lists: tuple[CodeList, ...]


@dataclass(frozen=True, slots=True)
class ElementRule:
    """Cardinality and required binding of one element path (below the resource root)."""

    path: tuple[str, ...]
    min: int
    max: int | None
    codes: Binding | None


@dataclass(frozen=True, slots=True)
class SliceRule:
    """How many extensions with ``url`` a profiled resource carries at its root."""

    url: str
    min: int
    max: int | None


@dataclass(slots=True)
class ExtensionRule:
    """What one extension (or a sub-extension of a complex one) must look like."""

    url: str
    value_types: tuple[str, ...] = ()
    """Allowed ``value[x]`` type codes; empty means no value is allowed (a complex extension)."""
    value_required: bool = False
    codes: Binding | None = None
    subs: dict[str, tuple[int, int | None, ExtensionRule]] = field(default_factory=dict)


@dataclass(slots=True)
class ProfileRule:
    """A compiled constraint profile."""

    url: str
    resource_type: str
    elements: list[ElementRule] = field(default_factory=list)
    slices: list[SliceRule] = field(default_factory=list)


def _max(value: Any) -> int | None:
    return None if value in (None, "*") else int(value)


def _value_key(type_code: str) -> str:
    return "value" + type_code[0].upper() + type_code[1:]


class ProfileChecker:
    """Checks resources against the compiled profiles and extension definitions of one directory."""

    def __init__(self, definitions: Iterable[dict[str, Any]], lists: CodeLists,
                 union_value_sets: Iterable[dict[str, Any]] = (), *, own_base: str | None = None) -> None:
        self.own_base = own_base
        """The canonical base of this server's own definitions: a claimed profile below it must be defined
        here (None: no such check)."""
        every = [lists[name] for name in lists.keys()]  # noqa: SIM118 (CodeLists is not iterable)
        self._codes_by_value_set = {c.value_set: Binding(c.title, c.value_set, (c,)) for c in every}
        by_system = {c.system: c for c in every}
        for value_set in union_value_sets:
            included = tuple(by_system[i["system"]] for i in value_set["compose"]["include"])
            self._codes_by_value_set[value_set["url"]] = Binding(value_set["title"], value_set["url"], included)
        self.profiles: dict[str, ProfileRule] = {}
        self.extensions: dict[str, ExtensionRule] = {}
        for definition in definitions:
            if definition.get("type") == "Extension":
                self.extensions[definition["url"]] = self._extension(definition)
            else:
                self.profiles[definition["url"]] = self._profile(definition)

    @classmethod
    def from_directory(cls, directory: Path, codes: CodeLists, own_base: str | None = None) -> ProfileChecker:
        """Compile every ``StructureDefinition-*.json`` of ``directory`` against ``codes`` (its code lists) and
        its ValueSets that unite several of them; ``own_base`` is the canonical base of these definitions."""
        definitions = (orjson.loads(p.read_bytes()) for p in sorted(directory.glob("StructureDefinition-*.json")))
        return cls(definitions, codes, _union_value_sets(directory), own_base=own_base)

    # ---- compiling ---------------------------------------------------------------------------------------

    def _codes(self, element: dict[str, Any]) -> Binding | None:
        binding = element.get("binding") or {}
        if binding.get("strength") != "required":
            return None
        return self._codes_by_value_set.get(str(binding.get("valueSet", "")).split("|")[0])

    def _profile(self, definition: dict[str, Any]) -> ProfileRule:
        rule = ProfileRule(definition["url"], definition["type"])
        for element in definition["differential"]["element"][1:]:
            steps = element["id"].split(".")[1:]
            if steps and ":" in steps[-1] and steps[-1].startswith("extension:"):
                profile = next((p for t in element.get("type", ()) for p in t.get("profile", ())), None)
                if profile:
                    rule.slices.append(SliceRule(profile, int(element.get("min", 0)), _max(element.get("max"))))
                continue
            constrains = "min" in element or "max" in element or self._codes(element) is not None
            if any(":" in s for s in steps) or not constrains:
                continue
            rule.elements.append(ElementRule(tuple(steps), int(element.get("min", 0)), _max(element.get("max")),
                                             self._codes(element)))
        return rule

    def _extension(self, definition: dict[str, Any]) -> ExtensionRule:
        elements = {e["id"]: e for e in definition["differential"]["element"]}
        rule = self._value_rule(definition["url"], elements.get("Extension.value[x]", {}))
        for element_id, element in elements.items():
            parts = element_id.split(".")
            if len(parts) == 2 and parts[1].startswith("extension:"):
                name = parts[1].split(":", 1)[1]
                sub = self._value_rule(name, elements.get(f"{element_id}.value[x]", {}))
                rule.subs[name] = (int(element.get("min", 0)), _max(element.get("max")), sub)
        return rule

    def _value_rule(self, url: str, element: dict[str, Any]) -> ExtensionRule:
        if element.get("max") == "0":
            return ExtensionRule(url)
        types = tuple(t["code"] for t in element.get("type", ()))
        return ExtensionRule(url, types, int(element.get("min", 0)) > 0, self._codes(element))

    # ---- checking ----------------------------------------------------------------------------------------

    def check(self, resource: dict[str, Any]) -> list[Issue]:
        """Every way ``resource`` falls short of the CLR profiles it claims and the CLR extensions it carries."""
        resource_type = str(resource.get("resourceType", "Resource"))
        issues: list[Issue] = []
        for url in claimed_profiles(resource):
            profile = self.profiles.get(url)
            if profile is not None:
                self._check_profile(profile, resource, resource_type, issues)
            elif self.own_base is not None and url.startswith(f"{self.own_base}/") and url not in self.extensions:
                issues.append(Issue("invalid", "The resource claims a profile this server does not define",
                                    expression=f"{resource_type}.meta.profile"))
        for extension in resource.get("extension", ()):
            rule = self.extensions.get(str(extension.get("url"))) if isinstance(extension, dict) else None
            if rule is not None:
                self._check_extension(rule, extension, f"{resource_type}.extension('{rule.url}')", issues)
        return issues

    def _check_profile(self, profile: ProfileRule, resource: dict[str, Any], resource_type: str,
                       issues: list[Issue]) -> None:
        for element in profile.elements:
            self._check_element(element, resource, resource_type, issues)
        for rule in profile.slices:
            count = sum(1 for e in resource.get("extension", ()) if isinstance(e, dict) and e.get("url") == rule.url)
            where = f"{resource_type}.extension('{rule.url}')"
            if count < rule.min:
                issues.append(Issue("required", "This profile requires the extension", expression=where))
            elif rule.max is not None and count > rule.max:
                issues.append(Issue("structure", f"This profile allows the extension at most {rule.max} time(s)",
                                    expression=where))

    def _check_element(self, rule: ElementRule, resource: dict[str, Any], resource_type: str,
                       issues: list[Issue]) -> None:
        parents: list[Any] = [resource]
        for step in rule.path[:-1]:
            parents = [child for parent in parents if isinstance(parent, dict)
                       for child in _as_list(parent.get(step))]
        expression = ".".join((resource_type, *rule.path))
        for parent in parents:
            if not isinstance(parent, dict):
                continue
            values = _as_list(parent.get(rule.path[-1]))
            if len(values) < rule.min:
                issues.append(Issue("required", "This profile requires the element", expression=expression))
            elif rule.max is not None and len(values) > rule.max:
                issues.append(Issue("structure", f"This profile allows at most {rule.max} value(s)",
                                    expression=expression))
            if rule.codes is not None:
                for value in values:
                    if not _in_code_list(value, rule.codes):
                        issues.append(Issue("code-invalid", f"The code is not in the value set {rule.codes.title} "
                                            f"({rule.codes.value_set})", expression=expression))

    def _check_extension(self, rule: ExtensionRule, extension: dict[str, Any], where: str,
                         issues: list[Issue]) -> None:
        values = [k for k in extension if k.startswith("value")]
        if not rule.value_types and values:
            issues.append(Issue("structure", "This extension carries sub-extensions, not a value", expression=where))
        elif rule.value_types:
            allowed = [_value_key(t) for t in rule.value_types]
            if any(k not in allowed for k in values):
                issues.append(Issue("structure", f"This extension's value must be of type "
                                    f"{' or '.join(rule.value_types)}", expression=where))
            elif rule.value_required and not values:
                issues.append(Issue("required", "This extension needs a value", expression=where))
            elif rule.codes is not None and values and not _in_code_list(extension[values[0]], rule.codes):
                issues.append(Issue("code-invalid", f"The code is not in the value set {rule.codes.title} "
                                    f"({rule.codes.value_set})", expression=where))
        subs = [e for e in extension.get("extension", ()) if isinstance(e, dict)]
        if not rule.subs:
            if subs:
                issues.append(Issue("structure", "This extension takes no sub-extensions", expression=where))
            return
        for name, (low, high, sub) in rule.subs.items():
            found = [e for e in subs if e.get("url") == name]
            sub_where = f"{where}.extension('{name}')"
            if len(found) < low:
                issues.append(Issue("required", "This extension requires the sub-extension", expression=sub_where))
            elif high is not None and len(found) > high:
                issues.append(Issue("structure", f"This sub-extension is allowed at most {high} time(s)",
                                    expression=sub_where))
            for item in found:
                self._check_extension(sub, item, sub_where, issues)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _in_code_list(value: Any, binding: Binding) -> bool:
    """True when a code, Coding or CodeableConcept names a code of one of the ``binding``'s lists in its
    system."""
    if isinstance(value, str):
        return any(value in codes.concepts for codes in binding.lists)
    if not isinstance(value, dict):
        return False
    codings = value.get("coding") if "coding" in value else [value]
    return any(isinstance(c, dict) and c.get("system") == codes.system and c.get("code") in codes.concepts
               for c in codings or () for codes in binding.lists)


def _union_value_sets(directory: Path) -> list[dict[str, Any]]:
    """The ValueSets of ``directory`` that include more than one code system (whole code systems only)."""
    found = (orjson.loads(p.read_bytes()) for p in sorted(directory.glob("ValueSet-*.json")))
    return [v for v in found if len((v.get("compose") or {}).get("include", ())) > 1]


def normalize_extension_codes(checker: ProfileChecker, resource: dict[str, Any]) -> dict[str, Any]:
    """``resource`` with the coded values of its CLR extensions (and their sub-extensions) parsed leniently
    (``1``, ``1.``, a label, any case) into canonical Codings; a value outside its value set is a 422 naming
    the extension (the extensions ``checker`` knows)."""
    extensions = resource.get("extension")
    if not isinstance(extensions, list) or not any(
            isinstance(e, dict) and e.get("url") in checker.extensions for e in extensions):
        return resource
    resource_type = str(resource.get("resourceType", "Resource"))
    normalized = [_normalized(checker.extensions[e["url"]], e, f"{resource_type}.extension('{e['url']}')")
                  if isinstance(e, dict) and e.get("url") in checker.extensions else e for e in extensions]
    return {**resource, "extension": normalized}


def _normalized(rule: ExtensionRule, extension: dict[str, Any], where: str) -> dict[str, Any]:
    out = dict(extension)
    if rule.codes is not None and len(rule.codes.lists) == 1 and isinstance(out.get("valueCoding"), dict):
        out["valueCoding"] = rule.codes.lists[0].parse(out["valueCoding"], where)
    if rule.subs and isinstance(out.get("extension"), list):
        out["extension"] = [_normalized(rule.subs[e["url"]][2], e, f"{where}.extension('{e['url']}')")
                            if isinstance(e, dict) and e.get("url") in rule.subs else e for e in out["extension"]]
    return out
