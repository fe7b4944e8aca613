"""FHIRPath Patch (FHIR R4 §3.1.0.10.2): a ``Parameters`` resource whose ``operation`` parameters add, insert,
delete, replace or move elements named by FHIRPath expressions. Produces the patched document; the write path
validates it like any update.

Paths are evaluated with fhirpathpy (the R4 model, so choice types resolve). Every element an expression selects
is located in the document either by object identity (complex elements) or by the concrete path fhirpathpy
records for it (``Patient.name[0].given[1]``). Errors are 400 (a malformed operation) or 422 (a path that does
not select what the operation needs); messages name the operation by position, never a value.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from functools import cache
from typing import Any

import fhirpathpy
from fhir.resources.R4B import get_fhir_model_class
from fhirpathpy.models import models

from fhir_clr.errors import FhirError

OPERATION_TYPES = ("add", "insert", "delete", "replace", "move")
_STEP = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?:\[(\d+)\])?$")
_ELEMENT_TYPE = re.compile(r"abc\.([A-Za-z0-9]+)Type")
_R4 = models["r4"]


@dataclass(slots=True)
class Location:
    """Where one element sits: ``container[key]``, or ``container[key][index]`` for a repeating element."""

    container: dict[str, Any]
    key: str
    index: int | None

    def get(self) -> Any:
        """The element's value."""
        value = self.container[self.key]
        return value if self.index is None else value[self.index]


@dataclass(slots=True)
class Operation:
    """One parsed ``operation`` parameter."""

    position: int
    type: str
    path: str
    name: str | None = None
    value: Any = None
    has_value: bool = False
    index: int | None = None
    source: int | None = None
    destination: int | None = None

    @property
    def label(self) -> str:
        """How messages name this operation."""
        return f"FHIRPath Patch operation {self.position + 1} ({self.type})"


def is_fhirpath_patch(body: Any) -> bool:
    """True when a PATCH body is a FHIRPath Patch (a Parameters resource) rather than a JSON Patch array."""
    return isinstance(body, dict) and body.get("resourceType") == "Parameters"


def apply_fhirpath_patch(document: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """``document`` (not modified) with every operation of ``parameters`` applied in order."""
    operations = parse_operations(parameters)
    patched = copy.deepcopy(document)
    for operation in operations:
        _APPLY[operation.type](patched, operation)
    return patched


# ---- parsing --------------------------------------------------------------------------------------------


def parse_operations(parameters: dict[str, Any]) -> list[Operation]:
    """The operations of a FHIRPath Patch; 400 naming the first malformed one."""
    entries = parameters.get("parameter")
    if not isinstance(entries, list) or not entries:
        raise FhirError(400, "structure", "A FHIRPath Patch needs at least one 'operation' parameter",
                        expression="Parameters.parameter")
    return [_operation(i, entry) for i, entry in enumerate(entries)]


def _operation(position: int, entry: Any) -> Operation:
    where = f"Parameters.parameter[{position}]"
    if not isinstance(entry, dict) or entry.get("name") != "operation" or not isinstance(entry.get("part"), list):
        raise FhirError(400, "structure", f"{where} must be an 'operation' with parts", expression=where)
    parts: dict[str, dict[str, Any]] = {}
    for part in entry["part"]:
        if not isinstance(part, dict) or not isinstance(part.get("name"), str):
            raise FhirError(400, "structure", f"{where} has a part without a name", expression=f"{where}.part")
        parts[part["name"]] = part
    kind = _scalar(parts.get("type"))
    if kind not in OPERATION_TYPES:
        raise FhirError(400, "code-invalid", f"{where} type must be one of {', '.join(OPERATION_TYPES)}",
                        expression=f"{where}.part('type')")
    path = _scalar(parts.get("path"))
    if not isinstance(path, str) or not path.strip():
        raise FhirError(400, "required", f"{where} needs a path", expression=f"{where}.part('path')")
    operation = Operation(position, kind, path)
    if "value" in parts:
        operation.value, operation.has_value = _value(parts["value"]), True
    name = _scalar(parts.get("name"))
    operation.name = name if isinstance(name, str) else None
    for field in ("index", "source", "destination"):
        number = _scalar(parts.get(field))
        if number is not None:
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise FhirError(400, "value", f"{where} {field} must be a non-negative integer",
                                expression=f"{where}.part('{field}')")
            setattr(operation, field, number)
    _require_parts(operation, where)
    return operation


def _require_parts(operation: Operation, where: str) -> None:
    needed = {"add": ("name", "value"), "insert": ("value", "index"), "replace": ("value",),
              "move": ("source", "destination"), "delete": ()}[operation.type]
    for field in needed:
        present = operation.has_value if field == "value" else getattr(operation, field) is not None
        if not present:
            raise FhirError(400, "required", f"{where} ({operation.type}) needs a '{field}' part",
                            expression=f"{where}.part('{field}')")


def _scalar(part: dict[str, Any] | None) -> Any:
    if part is None:
        return None
    return next((v for k, v in part.items() if k.startswith("value")), None)


def _value(part: dict[str, Any]) -> Any:
    """A part's value: its ``value[x]``, its ``resource``, or an element built from its sub-parts."""
    for key, value in part.items():
        if key.startswith("value"):
            return copy.deepcopy(value)
    if "resource" in part:
        return copy.deepcopy(part["resource"])
    built: dict[str, Any] = {}
    for sub in part.get("part") or ():
        if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
            raise FhirError(400, "structure", "A FHIRPath Patch value part has a sub-part without a name")
        name, value = sub["name"], _value(sub)
        if name in built:
            built[name] = [*(built[name] if isinstance(built[name], list) else [built[name]]), value]
        else:
            built[name] = value
    if not built:
        raise FhirError(400, "required", "A FHIRPath Patch value part carries no value")
    return built


# ---- locating -------------------------------------------------------------------------------------------


def _evaluate(document: dict[str, Any], operation: Operation, path: str | None = None) -> list[Any]:
    try:
        return fhirpathpy.evaluate(document, path or operation.path, model=_R4, options={"returnRawData": True})
    except Exception:  # the FHIRPath parser raises many kinds of errors for a bad expression
        raise FhirError(400, "invalid", f"{operation.label}: the path is not a valid FHIRPath expression") from None


def _identities(document: dict[str, Any]) -> dict[int, Location]:
    """Where every complex element (object) of the document sits, by object identity."""
    found: dict[int, Location] = {}

    def walk(container: dict[str, Any]) -> None:
        for key, value in container.items():
            items = value if isinstance(value, list) else [value]
            for index, item in enumerate(items):
                if isinstance(item, dict):
                    found[id(item)] = Location(container, key, index if isinstance(value, list) else None)
                    walk(item)

    walk(document)
    return found


def _by_path(document: dict[str, Any], concrete: str) -> Location | None:
    """The location of ``Patient.name[0].given[1]``-style paths (the first step is the resource type);
    a last step naming a choice element (``value``) finds the one ``value[x]`` key present."""
    steps = concrete.split(".")[1:]
    container: Any = document
    for position, step in enumerate(steps):
        match = _STEP.match(step)
        if match is None or not isinstance(container, dict):
            return None
        key, index = match.group(1), match.group(2)
        if key not in container:
            choices = [k for k in container if k.startswith(key) and k[len(key):len(key) + 1].isupper()]
            if len(choices) != 1:
                return None
            key = choices[0]
        if position == len(steps) - 1:
            return Location(container, key, int(index) if index is not None else None)
        value = container[key]
        container = value[int(index)] if index is not None and isinstance(value, list) else value
    return None


def locate(document: dict[str, Any], operation: Operation, path: str | None = None) -> list[Location]:
    """Every element the operation's path (or ``path``) selects, located in ``document``."""
    nodes = _evaluate(document, operation, path)
    identities: dict[int, Location] | None = None
    locations = []
    for node in nodes:
        data = getattr(node, "data", node)
        location = None
        if data is document:
            location = Location({"resource": document}, "resource", None)
        elif isinstance(data, dict):
            identities = identities if identities is not None else _identities(document)
            location = identities.get(id(data))
        elif isinstance(getattr(node, "propName", None), str):
            location = _by_path(document, node.propName)
        if location is None:
            raise FhirError(422, "processing", f"{operation.label}: the path selects something that is not an "
                            "element of the resource")
        locations.append(location)
    return locations


def _one(document: dict[str, Any], operation: Operation, what: str, path: str | None = None) -> Location:
    locations = locate(document, operation, path)
    if len(locations) != 1:
        raise FhirError(422, "processing", f"{operation.label}: the path must select exactly one {what}, "
                        f"it selects {len(locations)}")
    return locations[0]


def _list_at(document: dict[str, Any], operation: Operation) -> tuple[dict[str, Any], str, list[Any]]:
    """The repeating element an insert or move works on: the path's last step names it in a single parent."""
    parent, _, name = operation.path.rpartition(".")
    if not parent or _STEP.match(name) is None or "[" in name:
        raise FhirError(422, "processing", f"{operation.label}: the path must end with the name of a list element")
    container = _one(document, operation, "parent element", parent).get()
    if not isinstance(container, dict):
        raise FhirError(422, "processing", f"{operation.label}: the path's parent is not an element")
    items = container.get(name, [])
    if not isinstance(items, list):
        raise FhirError(422, "processing", f"{operation.label}: the path does not name a list element")
    return container, name, items


# ---- operations -----------------------------------------------------------------------------------------


def _add(document: dict[str, Any], operation: Operation) -> None:
    target = _one(document, operation, "element")
    container = target.get()
    name = operation.name or ""
    if not isinstance(container, dict) or _STEP.match(name) is None:
        raise FhirError(422, "processing", f"{operation.label}: the path must select an element to add to")
    current = container.get(name)
    if isinstance(current, list):
        current.append(operation.value)
    elif current is not None:
        raise FhirError(422, "processing", f"{operation.label}: the element already has a {name}; use replace")
    elif _repeats(*_type_path(document, container), name):
        container[name] = [operation.value]
    else:
        container[name] = operation.value


def _insert(document: dict[str, Any], operation: Operation) -> None:
    container, name, items = _list_at(document, operation)
    assert operation.index is not None
    if operation.index > len(items):
        raise FhirError(422, "processing", f"{operation.label}: index is beyond the end of the list")
    container[name] = [*items[:operation.index], operation.value, *items[operation.index:]]


def _delete(document: dict[str, Any], operation: Operation) -> None:
    locations = locate(document, operation)
    if len(locations) > 1:
        raise FhirError(422, "processing", f"{operation.label}: the path must select at most one element, "
                        f"it selects {len(locations)}")
    if not locations:
        return
    target = locations[0]
    _require_element(document, target, operation)
    _remove(target)


def _require_element(document: dict[str, Any], target: Location, operation: Operation) -> None:
    """422 unless ``target`` is an element inside the resource (not the resource itself)."""
    if target.get() is document:
        raise FhirError(422, "processing", f"{operation.label}: the path selects the whole resource")


def _remove(target: Location) -> None:
    """Remove an element and its primitive extension sibling (``_given``)."""
    shadow = target.container.get(f"_{target.key}")
    if target.index is None:
        target.container.pop(target.key)
        target.container.pop(f"_{target.key}", None)
        return
    items = target.container[target.key]
    items.pop(target.index)
    if isinstance(shadow, list) and target.index < len(shadow):
        shadow.pop(target.index)
    if not items:
        target.container.pop(target.key)
        target.container.pop(f"_{target.key}", None)


def _replace(document: dict[str, Any], operation: Operation) -> None:
    target = _one(document, operation, "element")
    _require_element(document, target, operation)
    if target.index is None:
        target.container[target.key] = operation.value
    else:
        target.container[target.key][target.index] = operation.value


def _move(document: dict[str, Any], operation: Operation) -> None:
    container, name, items = _list_at(document, operation)
    assert operation.source is not None and operation.destination is not None
    if operation.source >= len(items) or operation.destination >= len(items):
        raise FhirError(422, "processing", f"{operation.label}: source and destination must be within the list")
    moved = list(items)
    moved.insert(operation.destination, moved.pop(operation.source))
    container[name] = moved


_APPLY = {"add": _add, "insert": _insert, "delete": _delete, "replace": _replace, "move": _move}


# ---- the R4 model: does an element repeat? ----------------------------------------------------------------


def _type_path(document: dict[str, Any], element: dict[str, Any]) -> tuple[str, tuple[str, ...]]:
    """The resource type holding ``element`` (the document's, or a contained resource's) and the element names
    from that resource down to ``element``, for the cardinality lookup."""
    identities = _identities(document)
    names: list[str] = []
    while "resourceType" not in element:
        above = identities.get(id(element))
        if above is None:
            break
        names.append(above.key)
        element = above.container
    return str(element.get("resourceType", "")), tuple(reversed(names))


@cache
def _repeats(resource_type: str, names: tuple[str, ...], name: str) -> bool:
    """True when element ``name`` below ``resource_type``.``names`` repeats in the R4 model (an add then makes a
    list); False when the model does not know the path."""
    try:
        model = get_fhir_model_class(resource_type)
        for step in names:
            field = model.model_fields.get(step)
            found = _ELEMENT_TYPE.search(str(field.annotation)) if field is not None else None
            if found is None:
                return False
            model = get_fhir_model_class(found.group(1))
    except (KeyError, ValueError):
        return False
    field = model.model_fields.get(name)
    return field is not None and "List[" in str(field.annotation)
