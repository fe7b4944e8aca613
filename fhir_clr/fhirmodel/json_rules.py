"""One pass over a resource's JSON for the rules the R4B models do not enforce.

- ``ele-1`` and the JSON format rules: no empty objects, arrays or strings, no whitespace-only strings, no
  ``null`` except as a placeholder in a primitive array or its ``_x`` extension sibling array;
- nested resources (``contained``, ``Bundle.entry.resource``, ``Parameters.parameter.resource``): a served
  R4 ``resourceType`` and a legal id;
- required bindings (``Task.status``, ``Patient.name[0].use``, ``Condition.clinicalStatus``), found by
  walking the element structure of the binding table, data types and extensions included.

Rule issues and binding issues are kept apart so that the caller can report them in check order.
"""

from __future__ import annotations

from typing import Any

from fhir_clr.errors import Issue
from fhir_clr.fhirmodel.bindings import NESTED_RESOURCE, PRIMITIVE_SIBLING, BindingTable, Element
from fhir_clr.fhirmodel.ids import ID_RULE, is_valid_id

NO_SPEC: dict[str, Element] = {}


class JsonRules:
    """Collects the issues of one resource; call :meth:`resource` once, then read the two issue lists."""

    __slots__ = ("binding_issues", "elements", "nested_types", "rule_issues", "table", "unknown_nested_type")

    def __init__(self, table: BindingTable, nested_types: frozenset[str]) -> None:
        self.table = table
        self.elements = table.elements
        self.nested_types = nested_types
        self.rule_issues: list[Issue] = []
        self.binding_issues: list[Issue] = []
        self.unknown_nested_type = False
        """True when a nested resource has no string ``resourceType`` (the models cannot dispatch it)."""

    def resource(self, data: dict[str, Any], path: str) -> None:
        """Check the resource ``data`` found at ``path`` (its type name when top-level)."""
        resource_type = data.get("resourceType")
        node = None
        if not isinstance(resource_type, str):
            self._rule("required", f"{path}.resourceType", "a resource needs a resourceType (a string)")
            self.unknown_nested_type = True
        elif resource_type not in self.nested_types:
            self._rule("not-supported", f"{path}.resourceType",
                       f"resource type {resource_type[:64]} is not supported by this R4 server")
        else:
            node = resource_type
        if "id" in data and not is_valid_id(data["id"]):
            self._rule("value", f"{path}.id", ID_RULE)
        self._object(data, node, path)

    def _object(self, data: dict[str, Any], node: str | None, path: str) -> None:
        if not data:
            self._rule("structure", path, "an empty object is not allowed; omit the element")
            return
        spec = self.elements.get(node, NO_SPEC) if node else NO_SPEC
        for key, value in data.items():
            entry = spec.get(key)
            if entry is not None:
                name, child, binding = entry
            elif key[:1] == "_":
                name, child, binding = key[1:], PRIMITIVE_SIBLING, None
            else:
                name, child, binding = key, None, None
            kind = type(value)
            if kind is str:
                if not value or value.isspace():
                    self._rule("structure", f"{path}.{name}", "an empty or whitespace-only string is not allowed")
                elif binding is not None:
                    self._bound(binding, value, f"{path}.{name}")
            elif kind is dict:
                self._value(value, child, binding, f"{path}.{name}")
            elif kind is list:
                self._list(value, child, binding, f"{path}.{name}",
                           key[:1] == "_" or f"_{key}" in data)
            elif value is None:
                self._rule("structure", f"{path}.{name}", "null is not allowed; omit the element")

    def _list(self, items: list[Any], child: str | None, binding: str | None, path: str, nulls: bool) -> None:
        if not items:
            self._rule("structure", path, "an empty array is not allowed; omit the element")
            return
        for index, item in enumerate(items):
            kind = type(item)
            if kind is str:
                if not item or item.isspace():
                    self._rule("structure", f"{path}[{index}]", "an empty or whitespace-only string is not allowed")
                elif binding is not None:
                    self._bound(binding, item, f"{path}[{index}]")
            elif kind is dict:
                self._value(item, child, binding, f"{path}[{index}]")
            elif item is None and not nulls:
                self._rule("structure", f"{path}[{index}]", "null is not allowed in an array here")
            elif kind is list:
                self._rule("structure", f"{path}[{index}]", "an array cannot contain an array")

    def _value(self, data: dict[str, Any], child: str | None, binding: str | None, path: str) -> None:
        if child == NESTED_RESOURCE:
            self.resource(data, path)
            return
        if binding is not None:
            self._bound(binding, data, path)
        self._object(data, child, path)

    def _bound(self, binding: str, value: Any, path: str) -> None:
        issue = self.table.check(binding, value, path)
        if issue is not None:
            self.binding_issues.append(issue)

    def _rule(self, code: str, path: str, rule: str) -> None:
        self.rule_issues.append(Issue(code=code, expression=path, message=f"{path}: {rule}"))
