"""Projection between a row's typed values and FHIR resource fragments, driven only by the column targets.

``record_to_fhir`` builds one fragment per resource key of the spec (``Patient``, ``Task``,
``Organization[servicing]``…) holding the elements the row fills; ``fhir_to_record`` reads the same elements
back. Codes become canonical Codings of their CodeSystem (a CodeableConcept also gets ``text``). Fragments
are not linked to each other and carry no ids: matching and merging them into stored resources is the
import job's work.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from fhir_clr.mapping.spec import ColumnSpec, MappingSpec
from fhir_clr.mapping.targets import Step, TargetPath

_Placement = tuple[str, str, str, tuple[Step, ...], str, bool, Callable[[Any], Any] | None, Callable[[Any], Any]]
"""column name, resource key, resource type, parent steps, leaf element, leaf repeats, to FHIR, from FHIR"""


def record_to_fhir(spec: MappingSpec, values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Resource key → fragment for the non-empty mapped values of one record."""
    out: dict[str, dict[str, Any]] = {}
    for name, key, resource_type, parents, element, repeats, to_fhir, _ in _projection(spec):
        value = values.get(name)
        if value is None:
            continue
        node = out.get(key)
        if node is None:
            node = out[key] = {"resourceType": resource_type}
        for step in parents:
            child = _child(node, step, create=True)
            assert child is not None  # made when missing
            node = child
        if to_fhir is not None:
            value = to_fhir(value)
        node[element] = [value] if repeats else value
    return out


def fhir_to_record(spec: MappingSpec, resources: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every column's value read from ``resources`` (keyed as :func:`record_to_fhir` keys them); None when
    absent, when the column has no target, or when the element holds something the column cannot carry
    (a partial date, a code outside the column's CodeSystem)."""
    record: dict[str, Any] = dict.fromkeys(spec.by_name)
    for name, key, _, parents, element, repeats, _, from_fhir in _projection(spec):
        node: Any = resources.get(key)
        for step in parents:
            if node is None:
                break
            node = _child(node, step, create=False)
        if node is None:
            continue
        value = node.get(element)
        if repeats:
            value = value[0] if isinstance(value, list) and value else None
        record[name] = None if value is None else from_fhir(value)
    return record


def _child(node: dict[str, Any], step: Step, *, create: bool) -> dict[str, Any] | None:
    """The object ``step`` names under ``node`` (the first list item its slice selects); made if asked."""
    current = node.get(step.element)
    if step.repeats:
        if current is None:
            if not create:
                return None
            current = node[step.element] = []
        for item in current:
            if isinstance(item, dict) and (step.match is None or item.get(step.match[0]) == step.match[1]):
                return item
        if not create:
            return None
        item = {step.match[0]: step.match[1]} if step.match else {}
        current.append(item)
        return item
    if current is None:
        if not create:
            return None
        current = node[step.element] = {step.match[0]: step.match[1]} if step.match else {}
    elif not isinstance(current, dict) or (
            not create and step.match is not None and current.get(step.match[0]) != step.match[1]):
        return None
    return current


@cache
def _projection(spec: MappingSpec) -> list[_Placement]:
    """Where each column with a target goes, and how its value converts, in column order."""
    zone = ZoneInfo(spec.timezone)
    return [(c.name, c.path.resource, c.path.resource_type, c.path.steps[:-1], c.path.leaf.element,
             c.path.leaf.repeats, _to_fhir(c, c.path), _from_fhir(c, c.path, zone))
            for c in spec.columns if c.path is not None]


def _to_fhir(column: ColumnSpec, path: TargetPath) -> Callable[[Any], Any] | None:
    """The converter of a typed value to its FHIR JSON form (None: the value is already that form)."""
    leaf = path.leaf.fhir_type
    if leaf in ("date", "dateTime"):
        return date.isoformat
    if leaf in ("Coding", "CodeableConcept"):
        codes = column.code_list
        assert codes is not None
        if leaf == "Coding":
            return codes.coding
        return lambda code: {"coding": [codes.coding(code)], "text": codes.concepts[code].display}
    return None


def _from_fhir(column: ColumnSpec, path: TargetPath, zone: ZoneInfo) -> Callable[[Any], Any]:
    leaf = path.leaf.fhir_type
    if leaf in ("date", "dateTime"):
        return lambda value: _local_date(value, zone)
    if leaf in ("Coding", "CodeableConcept"):
        codes = column.code_list
        assert codes is not None
        return codes.code_of
    kind = {"integer": int, "boolean": bool}.get(column.type, str)
    return lambda value: value if type(value) is kind else None


def _local_date(value: Any, zone: ZoneInfo) -> date | None:
    """The calendar date of a FHIR date or dateTime (a dateTime with an offset in the plan's time zone)."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        if "T" not in value:
            return date.fromisoformat(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.astimezone(zone).date() if moment.tzinfo else moment.date()
