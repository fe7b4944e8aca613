"""Parse FHIR search query parameters into the backend-neutral ``Query`` AST plus result controls.

Repeating a parameter ANDs it, commas inside one value OR (``\\,`` ``\\|`` ``\\$`` ``\\\\`` escape). Supports
the modifiers the server implements (see ``fhir_clr.search.registry.MODIFIERS``), one level of chaining,
one level of ``_has``, ``_sort``, ``_count``, ``_include``/``_revinclude`` (``:iterate``), ``_summary``,
``_elements`` and ``_total``. Malformed values and unsupported modifiers raise ``FhirError`` 400; unknown
parameters are collected in ``ParsedSearch.unknown`` for the engine to report or refuse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from fhir_clr.errors import FhirError
from fhir_clr.fhirmodel.allowlist import is_served_type
from fhir_clr.search.registry import SearchParamDef, SearchParamRegistry
from fhir_clr.search.values import (
    is_local_reference,
    local_prefixes,
    normalize_reference,
    normalize_string,
    number_range,
    parse_date_range,
)
from fhir_clr.store.query import (
    ChainCondition,
    Condition,
    Criterion,
    HasCondition,
    ParamType,
    Prefix,
    Query,
    RangeValue,
    ReferenceValue,
    SearchValue,
    SortKey,
    StringValue,
    TokenValue,
    UriValue,
)

PAGE_TOKEN = "_page_token"
"""The paging parameter of searches and histories, carrying a store's opaque keyset token."""
IGNORED = frozenset({"_format", "_pretty"})
SUMMARY_VALUES = frozenset({"true", "text", "data", "count", "false"})
TOTAL_VALUES = frozenset({"none", "estimate", "accurate"})
UNSUPPORTED_MODIFIERS = frozenset({"text", "in", "not-in", "of-type"})
ALIASES = {"_lastupdated": "_lastUpdated"}
_ORDERED = frozenset({ParamType.DATE, ParamType.NUMBER, ParamType.QUANTITY})
_PREFIXES = frozenset(p.value for p in Prefix)
_ESCAPABLE = frozenset(",|$\\")


@dataclass(frozen=True, slots=True)
class IncludeSpec:
    """``_include``/``_revinclude`` = ``source_type:param[:target_type]``; ``param`` may be ``*`` (every
    reference parameter of ``source_type``) for ``_include``."""

    source_type: str
    param: str
    target_type: str | None = None
    iterate: bool = False


@dataclass(slots=True)
class ParsedSearch:
    """A parsed search: the store query plus what the engine needs to shape the result Bundle."""

    query: Query
    includes: list[IncludeSpec] = field(default_factory=list)
    revincludes: list[IncludeSpec] = field(default_factory=list)
    summary: str | None = None
    elements: list[str] = field(default_factory=list)
    total: str | None = None
    """``_total`` as asked; None when not asked (the total is then given only when it is free: see
    :meth:`fhir_clr.engine.searching.Searcher.search`)."""
    unknown: list[str] = field(default_factory=list)
    """Parameters that were ignored (unknown to this server)."""
    self_params: list[tuple[str, str]] = field(default_factory=list)
    """The parameters actually applied, in order (for the Bundle ``self`` link; no paging token)."""


def _bad(param: str, message: str, code: str = "value") -> FhirError:
    return FhirError(400, code, f"Search parameter '{param}': {message}")


# ---- escapes -----------------------------------------------------------------------------------------

def split_escaped(text: str, separator: str) -> list[str]:
    """Split at ``separator`` characters not preceded by a backslash escape (escapes are kept)."""
    if "\\" not in text:
        return text.split(separator)
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str) -> str:
    """Remove the search escapes ``\\,`` ``\\|`` ``\\$`` ``\\\\`` (other backslashes are kept)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in _ESCAPABLE:
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


# ---- parser ------------------------------------------------------------------------------------------

class _Parser:
    def __init__(self, resource_type: str, registry: SearchParamRegistry, base_urls: Sequence[str]) -> None:
        self.resource_type = resource_type
        self.registry = registry
        self.prefixes = local_prefixes(base_urls)

    # -- criteria --

    def criterion(self, name: str, value: str) -> Criterion | None:
        """The criterion for one ``name=value`` pair, or None when the parameter is unknown."""
        if name.startswith("_has:"):
            return self.has(name, value)
        head, dot, chained = name.partition(".")
        code, _, modifier = head.partition(":")
        code = ALIASES.get(code, code)
        if dot:
            return self.chain(name, code, modifier or None, chained, value)
        definition = self.registry.get(self.resource_type, code)
        if definition is None:
            return None
        return self.condition(name, definition, modifier or None, value)

    def chain(self, name: str, code: str, type_modifier: str | None, chained: str, value: str
              ) -> ChainCondition | None:
        definition = self.registry.get(self.resource_type, code)
        if definition is None:
            return None
        if definition.type is not ParamType.REFERENCE:
            raise _bad(name, f"'{code}' is not a reference parameter, so it cannot be chained", "invalid")
        if "." in chained:
            raise _bad(name, "only one level of chaining is supported", "not-supported")
        inner_code, _, inner_modifier = chained.partition(":")
        inner_code = ALIASES.get(inner_code, inner_code)
        target = self.chain_target(name, definition, type_modifier, inner_code)
        inner_def = self.registry.get(target, inner_code)
        if inner_def is None:
            return None
        inner = self.condition(name, inner_def, inner_modifier or None, value)
        return ChainCondition(param=code, target_type=target, inner=inner)

    def chain_target(self, name: str, definition: SearchParamDef, type_modifier: str | None,
                     inner_code: str) -> str:
        if type_modifier is not None:
            self.check_target(name, definition, type_modifier)
            return type_modifier
        candidates = ([t for t in definition.targets if is_served_type(t)] if definition.targets
                      else sorted(self.registry.types()))
        having = [t for t in candidates if self.registry.get(t, inner_code) is not None]
        if len(having) == 1:
            return having[0]
        if not having:
            raise _bad(name, f"no target type of '{definition.code}' has a parameter '{inner_code}'", "invalid")
        raise _bad(name, f"the chain target is ambiguous ({', '.join(having)}); name it, e.g. "
                         f"{definition.code}:{having[0]}.{inner_code}", "invalid")

    def check_target(self, name: str, definition: SearchParamDef, target: str) -> None:
        if not is_served_type(target):
            raise _bad(name, f"'{target}' is not a resource type served here", "invalid")
        if definition.targets and target not in definition.targets:
            raise _bad(name, f"'{definition.code}' cannot refer to {target}", "invalid")

    def has(self, name: str, value: str) -> HasCondition | None:
        parts = name.split(":")
        if "_has" in parts[1:] or "." in name:
            raise _bad(name, "only one level of _has without chaining is supported", "not-supported")
        if len(parts) < 4 or len(parts) > 5 or not all(parts[1:4]):
            raise _bad(name, "expected _has:Type:param:inner-param=value", "invalid")
        _, source_type, code, inner_code, *rest = parts
        if not is_served_type(source_type):
            raise _bad(name, f"'{source_type}' is not a resource type served here", "invalid")
        definition = self.registry.get(source_type, code)
        if definition is None or definition.type is not ParamType.REFERENCE:
            raise _bad(name, f"'{code}' is not a reference parameter of {source_type}", "invalid")
        if definition.targets and self.resource_type not in definition.targets:
            raise _bad(name, f"{source_type}.{code} cannot refer to {self.resource_type}", "invalid")
        inner_code = ALIASES.get(inner_code, inner_code)
        inner_def = self.registry.get(source_type, inner_code)
        if inner_def is None:
            return None
        inner = self.condition(name, inner_def, rest[0] if rest else None, value)
        return HasCondition(source_type=source_type, param=code, inner=inner)

    def condition(self, name: str, definition: SearchParamDef, modifier: str | None, value: str) -> Condition:
        """One parameter occurrence with its modifier and comma-separated values."""
        ptype = definition.type
        if modifier == "missing":
            if value not in ("true", "false"):
                raise _bad(name, ":missing takes true or false")
            return Condition(definition.code, ptype, (TokenValue(None, value),), "missing")
        if modifier in UNSUPPORTED_MODIFIERS:
            raise _bad(name, f"the :{modifier} modifier is not supported by this server", "not-supported")
        types: tuple[str, ...] = ()
        if modifier is not None and ptype is ParamType.REFERENCE and modifier[:1].isupper():
            self.check_target(name, definition, modifier)
            types, modifier = (modifier,), None
        elif modifier is not None and modifier not in definition.modifiers:
            raise _bad(name, f"the :{modifier} modifier does not apply to {ptype.value} parameters",
                       "not-supported")
        raw_values = split_escaped(value, ",")
        if not value or any(not v for v in raw_values):
            raise _bad(name, "empty search value")
        if modifier == "identifier":
            tokens = tuple(self.token(name, v) for v in raw_values)
            return Condition(definition.code, ParamType.TOKEN, tokens, "identifier")
        values = tuple(self.value(name, ptype, v, types) for v in raw_values)
        return Condition(definition.code, ptype, values, modifier)

    # -- values --

    def value(self, name: str, ptype: ParamType, raw: str, types: tuple[str, ...]) -> SearchValue:
        if ptype is ParamType.TOKEN:
            return self.token(name, raw)
        if ptype is ParamType.REFERENCE:
            return self.reference(name, unescape(raw), types)
        if ptype in _ORDERED:
            return self.ranged(name, ptype, raw)
        if ptype is ParamType.STRING:
            text = unescape(raw)
            return StringValue(normalize_string(text), text)
        if ptype is ParamType.URI:
            return UriValue(unescape(raw))
        raise _bad(name, f"{ptype.value} parameters are not supported", "not-supported")

    @staticmethod
    def token(name: str, raw: str) -> TokenValue:
        parts = split_escaped(raw, "|")
        if len(parts) == 1:
            return TokenValue(None, unescape(parts[0]))
        if len(parts) != 2 or not (parts[0] or parts[1]):
            raise _bad(name, "a token is code, system|code, |code or system|")
        return TokenValue(unescape(parts[0]), unescape(parts[1]) or None)

    def reference(self, name: str, raw: str, types: tuple[str, ...]) -> ReferenceValue:
        if raw.startswith("#"):
            raise _bad(name, "contained references cannot be searched")
        if "/" not in raw:
            return ReferenceValue(raw, bare_id=True, types=types)
        if "://" in raw and "|" in raw:
            raw = raw.split("|", 1)[0]
        ref = normalize_reference(raw, self.prefixes) or raw
        if types and is_local_reference(ref) and ref.partition("/")[0] not in types:
            raise _bad(name, f"the value names a different type than :{types[0]}", "invalid")
        return ReferenceValue(ref)

    @staticmethod
    def ranged(name: str, ptype: ParamType, raw: str) -> RangeValue:
        prefix = Prefix.EQ
        if raw[:2] in _PREFIXES and raw[2:3] not in ("", "|"):
            prefix, raw = Prefix(raw[:2]), raw[2:]
        try:
            if ptype is ParamType.DATE:
                start, end = parse_date_range(raw)
                return RangeValue(prefix, start, end)
            if ptype is ParamType.NUMBER:
                return RangeValue(prefix, *number_range(raw))
            parts = [unescape(p) for p in split_escaped(raw, "|")]
            if len(parts) not in (1, 3):
                raise ValueError("a quantity is number, number|system|code or number||code")
            low, high = number_range(parts[0])
        except ValueError as exc:
            what = "a FHIR date/dateTime/instant" if ptype is ParamType.DATE else f"a {ptype.value}"
            raise _bad(name, f"value is not {what} ({exc})") from None
        system, code = (parts[1] or None, parts[2] or None) if len(parts) == 3 else (None, None)
        return RangeValue(prefix, low, high, system, code)

    # -- result controls --

    def sort(self, value: str) -> tuple[list[SortKey], list[str]]:
        """The sort keys of a ``_sort`` value, and the codes it names that are not search parameters of the
        type (ignored like unknown filters: the engine warns, or refuses them under ``handling=strict``)."""
        keys: list[SortKey] = []
        unknown: list[str] = []
        for item in value.split(","):
            descending = item.startswith("-")
            code = ALIASES.get(item.lstrip("-"), item.lstrip("-"))
            definition = self.registry.get(self.resource_type, code) if code else None
            if definition is None:
                unknown.append(f"_sort={item[:64]}")
                continue
            keys.append(SortKey(code, definition.type, descending))
        return keys, unknown

    def include(self, name: str, value: str, reverse: bool, iterate: bool) -> IncludeSpec | None:
        if value == "*" and not reverse:
            return IncludeSpec(self.resource_type, "*", None, iterate)
        parts = value.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise _bad(name, "expected SourceType:param or SourceType:param:TargetType", "invalid")
        source_type, code, *target = parts
        if not is_served_type(source_type):
            raise _bad(name, f"'{source_type}' is not a resource type served here", "invalid")
        if code == "*" and not reverse:
            return IncludeSpec(source_type, "*", None, iterate)
        definition = self.registry.get(source_type, code)
        if definition is None:
            return None
        if definition.type is not ParamType.REFERENCE:
            raise _bad(name, f"{source_type}:{code} is not a reference parameter", "invalid")
        if target:
            self.check_target(name, definition, target[0])
        return IncludeSpec(source_type, code, target[0] if target else None, iterate)


def _canonical_name(name: str) -> str:
    """``name`` with an aliased parameter code (``_lastupdated``) spelt the standard way."""
    head, sep, rest = name.partition(":")
    return ALIASES.get(head, head) + sep + rest


def _count(value: str, max_count: int) -> int:
    if not value.isdigit():
        raise _bad("_count", "must be a non-negative integer")
    return min(int(value), max_count)


def _choice(name: str, value: str, allowed: frozenset[str]) -> str:
    if value not in allowed:
        raise _bad(name, f"must be one of {', '.join(sorted(allowed))}")
    return value


def parse_search(resource_type: str, params: list[tuple[str, str]], registry: SearchParamRegistry, *,
                 default_count: int, max_count: int, base_urls: Sequence[str] = ()) -> ParsedSearch:
    """Parse the query parameters of a search on ``resource_type``.

    ``base_urls`` are this server's base URLs: absolute reference values under them become ``Type/id``.
    Raises ``FhirError`` (400) for malformed values, unsupported modifiers and invalid chains.
    """
    parser = _Parser(resource_type, registry, base_urls)
    parsed = ParsedSearch(query=Query(resource_type, count=min(default_count, max_count)))
    applied = parsed.self_params
    for name, value in params:
        if name in IGNORED:
            continue
        if name == PAGE_TOKEN:
            parsed.query.page_token = value
        elif name == "_count":
            parsed.query.count = _count(value, max_count)
            applied.append((name, str(parsed.query.count)))
        elif name == "_sort":
            keys, unknown = parser.sort(value)
            parsed.query.sort.extend(keys)
            parsed.unknown.extend(unknown)
            if keys:
                applied.append((name, ",".join(("-" if k.descending else "") + k.param for k in keys)))
        elif name in ("_include", "_include:iterate", "_revinclude", "_revinclude:iterate"):
            spec = parser.include(name, value, name.startswith("_rev"), name.endswith(":iterate"))
            if spec is None:
                parsed.unknown.append(f"{name}={value}")
                continue
            (parsed.revincludes if name.startswith("_rev") else parsed.includes).append(spec)
            applied.append((name, value))
        elif name == "_summary":
            parsed.summary = _choice(name, value, SUMMARY_VALUES)
            applied.append((name, value))
        elif name == "_elements":
            parsed.elements.extend(e.strip() for e in value.split(",") if e.strip())
            applied.append((name, value))
        elif name == "_total":
            parsed.total = _choice(name, value, TOTAL_VALUES)
            applied.append((name, value))
        else:
            criterion = parser.criterion(name, value)
            if criterion is None:
                parsed.unknown.append(name)
                continue
            parsed.query.criteria.append(criterion)
            applied.append((_canonical_name(name), value))
    return parsed
