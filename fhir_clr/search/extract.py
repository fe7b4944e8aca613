"""Compile SearchParameter expressions once and turn the FHIR values they select into index entries.

``compile_extractor`` prefers the hand-written walker of ``fhir_clr.search.paths`` and falls back to
fhirpathpy (compiled once, R4 model, ``Resource.`` roots rewritten, a local ``resolve()``).
``IndexWriter`` converts extracted values by search parameter type and FHIR data type, using the same
parsing functions (``fhir_clr.search.values``) as the query side.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import Any

from fhirpathpy import compile as fhirpath_compile
from fhirpathpy.engine.nodes import FP_Type, ResourceNode

from fhir_clr.search.paths import R4_MODEL, Typed, Walker, compile_fast, reference_type, rewrite_abstract_root
from fhir_clr.search.values import (
    MAX_US,
    MIN_US,
    json_number_range,
    local_prefixes,
    normalize_reference,
    normalize_string,
    parse_date_range,
)
from fhir_clr.store.query import IndexEntries, ParamType

_STRINGY = frozenset({"string", "code", "uri", "url", "canonical", "id", "oid", "uuid", "markdown"})
_DATES = frozenset({"date", "dateTime", "instant"})
_QUANTITIES = frozenset({"Quantity", "Age", "Duration", "Count", "Distance", "SimpleQuantity", "MoneyQuantity"})
_NAME_PARTS = ("family", "given", "prefix", "suffix", "text")
_ADDRESS_PARTS = ("line", "city", "district", "state", "postalCode", "country", "text")


# ---- expression compilation -----------------------------------------------------------------------------

def _resolve(inputs: list[Any]) -> list[ResourceNode]:
    """fhirpathpy ``resolve()``: a stub resource of the referenced type, enough for ``resolve() is Type``."""
    out = []
    for item in inputs:
        if isinstance(item, dict):
            typ = reference_type(item)
            if typ:
                out.append(ResourceNode.create_node({"resourceType": typ}))  # type: ignore[no-untyped-call]
    return out


_FHIRPATH_OPTIONS = {"returnRawData": True, "userInvocationTable": {"resolve": {"fn": _resolve, "arity": {0: []}}}}


def _fallback(expression: str, resource_type: str) -> Walker:
    compiled = fhirpath_compile(rewrite_abstract_root(expression, resource_type), R4_MODEL, _FHIRPATH_OPTIONS)

    def evaluate(resource: dict[str, Any]) -> list[Typed]:
        out: list[Typed] = []
        for node in compiled(resource, {}):
            if isinstance(node, ResourceNode):
                data = node.data
                typ = node.path if isinstance(node.path, str) and "." not in node.path else None
                if typ and typ.startswith("System"):
                    typ = None
                out.append((data, typ))
            elif not isinstance(node, FP_Type):
                out.append((node, None))
        return out

    return evaluate


def compile_extractor(expression: str, resource_type: str) -> Walker:
    """A function returning the (value, FHIR type) pairs ``expression`` selects in a ``resource_type``."""
    return compile_fast(expression, resource_type) or _fallback(expression, resource_type)


# ---- value conversion ----------------------------------------------------------------------------------

def _guess_type(value: Any) -> str | None:
    """The FHIR type of a value whose type the expression could not tell (fhirpathpy results)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "decimal"
    if not isinstance(value, dict):
        return None
    if "coding" in value:
        return "CodeableConcept"
    if "reference" in value:
        return "Reference"
    if "start" in value or "end" in value:
        return "Period"
    if "family" in value or "given" in value:
        return "HumanName"
    if "value" in value and isinstance(value["value"], int | float):
        return "Quantity"
    if "value" in value:
        return "Identifier"
    if "code" in value:
        return "Coding"
    return None


def _strip_version(url: str) -> str:
    return url.split("|", 1)[0]


class IndexWriter:
    """Appends the index entries of extracted values to an ``IndexEntries``.

    ``base_urls`` are this server's own base URLs: absolute references under them are stored as ``Type/id``.
    """

    def __init__(self, base_urls: Sequence[str] = ()) -> None:
        self._prefixes = local_prefixes(base_urls)
        self._by_type: dict[ParamType, Callable[[IndexEntries, str, Iterable[Typed]], None]] = {
            ParamType.TOKEN: self.tokens, ParamType.REFERENCE: self.references, ParamType.DATE: self.dates,
            ParamType.STRING: self.strings, ParamType.NUMBER: self.numbers, ParamType.QUANTITY: self.quantities,
            ParamType.URI: self.uris,
        }

    def add(self, entries: IndexEntries, param_type: ParamType, code: str, values: Iterable[Typed]) -> None:
        """Index ``values`` of parameter ``code`` (of ``param_type``) into ``entries``."""
        writer = self._by_type.get(param_type)
        if writer is not None:
            writer(entries, code, values)

    @staticmethod
    def tokens(entries: IndexEntries, code: str, values: Iterable[Typed]) -> None:
        """Token entries: codes and strings, booleans, Coding, CodeableConcept, Identifier, ContactPoint."""
        out = entries.tokens
        for value, typ in values:
            typ = typ or _guess_type(value)
            if typ in _STRINGY:
                if isinstance(value, str):
                    out.append((code, None, _strip_version(value) if typ == "canonical" else value))
            elif typ == "boolean":
                if isinstance(value, bool):
                    out.append((code, None, "true" if value else "false"))
            elif type(value) is not dict:
                continue
            elif typ == "Coding":
                _coding(out, code, value)
            elif typ == "CodeableConcept":
                for coding in value.get("coding", ()):
                    _coding(out, code, coding)
            elif typ == "Identifier":
                if isinstance(value.get("value"), str):
                    out.append((code, value.get("system"), value["value"]))
            elif typ == "ContactPoint" and isinstance(value.get("value"), str):
                out.append((code, None, value["value"]))

    def references(self, entries: IndexEntries, code: str, values: Iterable[Typed]) -> None:
        """Reference entries (normalised), ``<code>:identifier`` tokens, and canonical/uri URLs."""
        for value, typ in values:
            if isinstance(value, str):
                if typ in ("canonical", "uri", "url", "string", None):
                    entries.references.append((code, _strip_version(value)))
                continue
            if type(value) is not dict:
                continue
            ref = value.get("reference")
            if isinstance(ref, str):
                normalized = normalize_reference(ref, self._prefixes)
                if normalized is not None:
                    entries.references.append((code, normalized))
            identifier = value.get("identifier")
            if isinstance(identifier, dict) and isinstance(identifier.get("value"), str):
                entries.tokens.append((f"{code}:identifier", identifier.get("system"), identifier["value"]))

    @staticmethod
    def dates(entries: IndexEntries, code: str, values: Iterable[Typed]) -> None:
        """Date ranges: date/dateTime/instant by precision, Period (open ends widened), Timing events."""
        out = entries.dates
        for value, typ in values:
            typ = typ or _guess_type(value)
            if isinstance(value, str):
                _add_date(out, code, value)
            elif type(value) is not dict:
                continue
            elif typ == "Period":
                start, end = value.get("start"), value.get("end")
                lo = _date_or_none(start)
                hi = _date_or_none(end)
                if (start is not None and lo is None) or (end is not None and hi is None) or (lo is hi is None):
                    continue
                out.append((code, lo[0] if lo else MIN_US, hi[1] if hi else MAX_US))
            elif typ == "Timing":
                for event in value.get("event", ()):
                    if isinstance(event, str):
                        _add_date(out, code, event)

    @staticmethod
    def strings(entries: IndexEntries, code: str, values: Iterable[Typed]) -> None:
        """String entries (normalised + exact): strings, HumanName and Address parts."""
        out = entries.strings
        for value, typ in values:
            if isinstance(value, str):
                out.append((code, normalize_string(value), value))
                continue
            if type(value) is not dict:
                continue
            typ = typ or _guess_type(value)
            parts = _NAME_PARTS if typ == "HumanName" else _ADDRESS_PARTS if typ == "Address" else ()
            for part in parts:
                item = value.get(part)
                for text in item if isinstance(item, list) else (item,):
                    if isinstance(text, str):
                        out.append((code, normalize_string(text), text))

    @staticmethod
    def numbers(entries: IndexEntries, code: str, values: Iterable[Typed]) -> None:
        """Number entries widened by their written precision."""
        for value, _ in values:
            if isinstance(value, int | float) and not isinstance(value, bool):
                lo, hi = json_number_range(value)
                entries.numbers.append((code, lo, hi))

    @staticmethod
    def quantities(entries: IndexEntries, code: str, values: Iterable[Typed]) -> None:
        """Quantity entries: value range plus system and code (the unit stands in for a missing code)."""
        for value, typ in values:
            if type(value) is not dict:
                continue
            number = value.get("value")
            if not isinstance(number, int | float) or isinstance(number, bool):
                continue
            lo, hi = json_number_range(number)
            if typ == "Money":
                entries.quantities.append((code, lo, hi, "urn:iso:std:iso:4217", value.get("currency")))
            elif typ in _QUANTITIES or typ is None:
                entries.quantities.append((code, lo, hi, value.get("system"), value.get("code") or value.get("unit")))

    @staticmethod
    def uris(entries: IndexEntries, code: str, values: Iterable[Typed]) -> None:
        """Uri entries (canonical URLs without ``|version``)."""
        for value, typ in values:
            if isinstance(value, str):
                entries.uris.append((code, _strip_version(value) if typ == "canonical" else value))


def _coding(out: list[tuple[str, str | None, str]], code: str, coding: Any) -> None:
    if type(coding) is dict and isinstance(coding.get("code"), str):
        out.append((code, coding.get("system"), coding["code"]))


def _date_or_none(text: Any) -> tuple[int, int] | None:
    return _cached_date_range(text) if isinstance(text, str) else None


@lru_cache(maxsize=8192)
def _cached_date_range(text: str) -> tuple[int, int] | None:
    """The range of a date text, None when it is not one (memoized: dates repeat across resources)."""
    try:
        return parse_date_range(text)
    except ValueError:
        return None


def _add_date(out: list[tuple[str, int, int]], code: str, text: str) -> None:
    found = _date_or_none(text)
    if found is not None:
        out.append((code, found[0], found[1]))
