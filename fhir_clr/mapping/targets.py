"""Target paths: where a file column lives in FHIR (``Patient.identifier[cin].value``).

A path is checked once, when its mapping spec loads, against the fhir.resources R4B models (element names,
repetition, types) and against our profiles (extension names, slices, value types). The result is a
:class:`TargetPath` whose steps carry everything projection needs, so no model is consulted per row.
The grammar is documented in ``mappings/README.md``.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from fhir.resources.R4B import get_fhir_model_class

from fhir_clr.fhirmodel.allowlist import is_served_type

_RESOURCE = re.compile(r"^(?P<type>[A-Z][A-Za-z]+)(?:\[(?P<alias>[a-z][a-z0-9-]*)\])?$")
_STEP = re.compile(r"^(?P<element>[a-z][A-Za-z0-9]*)(?:\[(?P<key>[a-z0-9][a-z0-9_-]*)\])?$")
_SLICED_TYPES = frozenset({"Identifier", "Extension", "ContactPoint"})
_CONTACT_SYSTEMS = frozenset({"phone", "fax", "email", "pager", "url", "sms", "other"})


@dataclass(frozen=True, slots=True)
class Step:
    """One element along a target path."""

    element: str
    """The element's JSON name (``identifier``, ``valueDateTime``)."""
    repeats: bool
    """True when the element is a JSON array (the path then addresses one item of it)."""
    fhir_type: str
    """The element's FHIR type: ``string``, ``dateTime``, ``CodeableConcept``, ``Identifier``…"""
    match: tuple[str, str] | None = None
    """``(key, value)`` that selects the item (``("system", <NPI system>)``) and is stamped on a new one."""


@dataclass(frozen=True, slots=True)
class TargetPath:
    """A checked target path."""

    text: str
    resource: str
    """The resource key of the projection: the type, with its alias in brackets when it has one."""
    resource_type: str
    steps: tuple[Step, ...]

    @property
    def leaf(self) -> Step:
        """The last step: the element that holds the column's value."""
        return self.steps[-1]


class TargetError(ValueError):
    """A target path that does not name a usable FHIR element; the message says why."""


def parse_target(text: str, *, identifier_systems: dict[str, str], canonical_base: str,
                 profiles_dir: Path) -> TargetPath:
    """Check ``text`` (``Resource[alias].step.step[key]…``) and resolve its steps; raises :class:`TargetError`."""
    parts = text.strip().split(".")
    head = _RESOURCE.match(parts[0])
    if head is None or len(parts) < 2:
        raise TargetError("expected Resource[alias].element… (e.g. Patient.identifier[cin].value)")
    resource_type = head["type"]
    if not is_served_type(resource_type):
        raise TargetError(f"{resource_type} is not a resource type this server serves")
    model_type = resource_type
    extension: tuple[str, ...] = ()
    steps: list[Step] = []
    for index, part in enumerate(parts[1:]):
        match = _STEP.match(part)
        if match is None:
            raise TargetError(f"step {part!r} is not element or element[key]")
        if model_type[:1].islower():
            raise TargetError(f"{steps[-1].element} is a primitive ({model_type}); it has no element {part!r}")
        element, key = match["element"], match["key"]
        fields = _fields(model_type)
        if element not in fields:
            raise TargetError(f"{model_type} has no element {element!r}")
        fhir_type, repeats = fields[element]
        inside = extension if model_type == "Extension" else ()
        slot = _slice(fhir_type, key, identifier_systems, canonical_base, profiles_dir, inside,
                      resource_type if index == 0 else None)
        if inside and element.startswith("value"):
            _check_extension_value(profiles_dir, inside, fhir_type)
        steps.append(Step(element, repeats, fhir_type, slot))
        if fhir_type == "Extension":
            extension = (*inside, key)
        model_type = fhir_type
    if model_type[:1].isupper() and model_type not in ("Coding", "CodeableConcept"):
        raise TargetError(f"the path ends at a {model_type}; name one of its primitive elements")
    return TargetPath(text.strip(), parts[0], resource_type, tuple(steps))


def _slice(fhir_type: str, key: str | None, identifier_systems: dict[str, str], canonical_base: str,
           profiles_dir: Path, inside: tuple[str, ...], on_resource: str | None) -> tuple[str, str] | None:
    """The ``(key, value)`` pair a bracketed key selects on an element of ``fhir_type``."""
    if fhir_type not in _SLICED_TYPES:
        if key is not None:
            raise TargetError(f"[{key}] only applies to Identifier, Extension or ContactPoint elements")
        return None
    if key is None:
        raise TargetError(f"an {fhir_type} element needs a [key] naming its slice")
    if fhir_type == "Identifier":
        if key not in identifier_systems:
            raise TargetError(f"identifier[{key}]: not a key of identifier_systems in the rules config "
                              f"({', '.join(sorted(identifier_systems))})")
        return ("system", identifier_systems[key])
    if fhir_type == "ContactPoint":
        if key not in _CONTACT_SYSTEMS:
            raise TargetError(f"[{key}]: not a ContactPoint system ({', '.join(sorted(_CONTACT_SYSTEMS))})")
        return ("system", key)
    if not inside:
        definition = _extension_definition(profiles_dir, key)
        if definition is None:
            raise TargetError(f"extension[{key}]: no StructureDefinition-{key}.json in the profiles")
        contexts = {c.get("expression") for c in definition.get("context", ())}
        if on_resource is not None and contexts and on_resource not in contexts:
            raise TargetError(f"extension[{key}] is not allowed on {on_resource} (context: {sorted(contexts)})")
        return ("url", f"{canonical_base}/StructureDefinition/{key}")
    if len(inside) > 1:
        raise TargetError(f"extension[{key}]: our extensions nest one level only")
    if _element(profiles_dir, inside[0], f"Extension.extension:{key}") is None:
        raise TargetError(f"extension[{key}]: the extension {inside[0]} has no slice {key!r}")
    return ("url", key)


def _check_extension_value(profiles_dir: Path, inside: tuple[str, ...], fhir_type: str) -> None:
    """Refuse a ``value[x]`` type the extension's profile does not allow."""
    outer, inner = inside[0], (inside[1] if len(inside) > 1 else None)
    element_id = f"Extension.extension:{inner}.value[x]" if inner else "Extension.value[x]"
    element = _element(profiles_dir, outer, element_id)
    if element is None:
        return
    if element.get("max") == "0":
        raise TargetError(f"extension {outer}{f' slice {inner}' if inner else ''} carries no value[x]")
    allowed = {t["code"] for t in element.get("type", ())}
    if allowed and fhir_type not in allowed:
        raise TargetError(f"extension {outer}{f' slice {inner}' if inner else ''} takes value "
                          f"{'/'.join(sorted(allowed))}, not {fhir_type}")


def _element(profiles_dir: Path, extension: str, element_id: str) -> dict[str, Any] | None:
    definition = _extension_definition(profiles_dir, extension) or {}
    return next((e for e in definition.get("differential", {}).get("element", ()) if e.get("id") == element_id),
                None)


@cache
def _extension_definition(profiles_dir: Path, name: str) -> dict[str, Any] | None:
    path = profiles_dir / f"StructureDefinition-{name}.json"
    if not path.is_file():
        return None
    definition = orjson.loads(path.read_bytes())
    return definition if definition.get("type") == "Extension" else None


@cache
def _fields(type_name: str) -> dict[str, tuple[str, bool]]:
    """JSON element name → (FHIR type, repeats) for a resource or complex datatype of the R4B models."""
    model = get_fhir_model_class(type_name)
    out: dict[str, tuple[str, bool]] = {}
    for name, info in model.model_fields.items():
        if name.endswith("__ext") or name in ("fhir_comments", "resource_type"):
            continue
        described = _describe(info.annotation)
        if described is not None:
            out[info.alias or name] = described
    return out


def _describe(annotation: Any) -> tuple[str, bool] | None:
    """(FHIR type, repeats) of a model field annotation, or None for one we do not map into."""
    kind, repeats = _unwrap_optional(annotation), False
    if typing.get_origin(kind) is list:
        kind, repeats = _unwrap_optional(typing.get_args(kind)[0]), True
    if typing.get_origin(kind) is typing.Annotated:
        primitive = type(kind.__metadata__[0]).__name__
        return primitive[:1].lower() + primitive[1:], repeats
    if kind is bool:
        return "boolean", repeats
    name = getattr(kind, "__name__", "")
    if name.endswith("Type") and name != "Type":
        return name[:-4], repeats
    return None


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        return options[0] if len(options) == 1 else annotation
    return annotation
