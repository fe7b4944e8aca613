"""Compile simple FHIRPath search expressions into a fast dict walker.

Handles what most R4 SearchParameter expressions are: dotted paths (``Task.owner``), unions of them,
choice elements (``ServiceRequest.occurrence`` finds ``occurrenceDateTime``/``occurrencePeriod``/...),
``(X as Type)`` / ``X.as(Type)`` / ``X.ofType(Type)`` on a choice element, ``.where(resolve() is Type)`` on
references, ``.where(element='literal')`` filters and ``extension('url')``. Element types come from the
fhirpathpy R4 model, so every extracted value carries its FHIR data type. Anything else returns None from
``compile_fast`` and is left to fhirpathpy (see ``fhir_clr.search.extract``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from typing import Any

from fhirpathpy.models import models

Typed = tuple[Any, str | None]
"""An extracted value and its FHIR data type name (``Reference``, ``dateTime``...; None when unknown)."""

Walker = Callable[[dict[str, Any]], list[Typed]]

R4_MODEL: dict[str, Any] = models["r4"]
PRIMITIVE_TYPES = frozenset({
    "boolean", "integer", "string", "decimal", "uri", "url", "canonical", "base64Binary", "instant", "date",
    "dateTime", "time", "code", "oid", "id", "markdown", "unsignedInt", "positiveInt", "uuid", "xhtml",
})
_SYSTEM_TYPES = {"System.String": "string", "System.Boolean": "boolean", "System.Integer": "integer",
                 "System.Decimal": "decimal", "System.DateTime": "dateTime", "System.Date": "date",
                 "System.Time": "time"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TYPE_FILTER = re.compile(r"(?:as|ofType)\(\s*(?:FHIR\.)?([A-Za-z]+)\s*\)")
_RESOLVE_IS = re.compile(r"where\(\s*resolve\(\)\s+is\s+(?:FHIR\.)?([A-Za-z]+)\s*\)")
_WHERE_EQ_RE = re.compile(r"where\(\s*([A-Za-z][A-Za-z0-9_]*)\s*=\s*'([^'\\]*)'\s*\)")
_EXTENSION_CALL = re.compile(r"extension\(\s*'([^'\\]*)'\s*\)")
_AS_SUFFIX = re.compile(r"(.*\S)\s+as\s+(?:FHIR\.)?([A-Za-z]+)")
_ABSTRACT_ROOT = re.compile(r"(?<![\w.])(?:DomainResource|Resource)\.")


def split_union(expression: str) -> list[str]:
    """Split ``a | b | c`` at top-level ``|`` (not inside parentheses or quoted strings)."""
    parts: list[str] = []
    depth = 0
    quote = False
    start = 0
    for i, ch in enumerate(expression):
        if ch == "'" and (i == 0 or expression[i - 1] != "\\"):
            quote = not quote
        elif quote:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(expression[start:i].strip())
            start = i + 1
    parts.append(expression[start:].strip())
    return [p for p in parts if p]


def expression_root(branch: str) -> str:
    """The type name a union branch starts from (``(Task.x as Reference)`` -> ``Task``)."""
    match = _IDENT.match(branch.lstrip("( "))
    return match.group(0) if match else ""


def rewrite_abstract_root(expression: str, resource_type: str) -> str:
    """Replace ``Resource.``/``DomainResource.`` roots by the concrete type (fhirpathpy finds nothing
    through the abstract roots)."""
    return _ABSTRACT_ROOT.sub(f"{resource_type}.", expression)


def reference_type(reference: dict[str, Any]) -> str | None:
    """The resource type a Reference points at, from ``reference`` (relative or absolute) or ``type``."""
    ref = reference.get("reference")
    if isinstance(ref, str) and ref and not ref.startswith("#"):
        cut = ref.find("/_history/")
        parts = (ref[:cut] if cut > 0 else ref).split("/")
        if len(parts) >= 2 and parts[-2][:1].isupper():
            return parts[-2]
    typ = reference.get("type")
    return typ if isinstance(typ, str) else None


# ---- model lookups ---------------------------------------------------------------------------------------

@cache
def _backbone_paths() -> frozenset[str]:
    """Every model path that has children (backbone elements have no entry of their own in path2Type)."""
    found: set[str] = set()
    for path in R4_MODEL["path2Type"]:
        parts = path.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)))
    return frozenset(found)


def _fhir_type(name: str) -> str:
    """Model type name -> FHIR type name (``DateTime`` in a choice list is the primitive ``dateTime``)."""
    if name in _SYSTEM_TYPES:
        return _SYSTEM_TYPES[name]
    lowered = name[:1].lower() + name[1:]
    return lowered if lowered in PRIMITIVE_TYPES else name


def _element(context: str, name: str) -> tuple[tuple[tuple[str, str], ...], str | None] | None:
    """Candidate (json key, FHIR type) pairs for ``context.name`` and the model path to continue from
    (None for primitives and choices). None when the model does not know the element."""
    scope: str | None = context
    while scope:
        path = f"{scope}.{name}"
        path = R4_MODEL["pathsDefinedElsewhere"].get(path, path)
        choices = R4_MODEL["choiceTypePaths"].get(path)
        if choices:
            return tuple((name + t[:1].upper() + t[1:], _fhir_type(t)) for t in choices), None
        typ = R4_MODEL["path2Type"].get(path)
        if typ is not None:
            fhir_type = _fhir_type(typ)
            nxt = None if fhir_type in PRIMITIVE_TYPES else fhir_type
            return ((name, fhir_type),), nxt
        if path in _backbone_paths():
            return ((name, "BackboneElement"),), path
        scope = R4_MODEL["type2Parent"].get(scope)
    return None


# ---- compilation -----------------------------------------------------------------------------------------

def _split_dots(text: str) -> list[str] | None:
    """Split a path at top-level dots; None when parentheses are unbalanced."""
    parts: list[str] = []
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return None
        elif ch == "." and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts if depth == 0 else None


def _strip_parens(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _split_dots(text[1:-1]) is not None:
        text = text[1:-1].strip()
    return text


def _narrow(candidates: tuple[tuple[str, str], ...], wanted: str) -> tuple[tuple[str, str], ...] | None:
    kept = tuple(c for c in candidates if c[1] == _fhir_type(wanted))
    return kept or None


_FIELD, _WHERE_EQ, _RESOLVE_IS_OP = 0, 1, 2
Op = tuple[Any, ...]
"""A walker step: (_FIELD, candidates) | (_WHERE_EQ, key, literal) | (_RESOLVE_IS_OP, type)."""


def _compile_branch(branch: str, resource_type: str) -> list[Op] | None:
    """The walker steps of one union branch, or None if the branch is not simple."""
    branch = _strip_parens(branch)
    cast: str | None = None
    as_match = _AS_SUFFIX.fullmatch(branch)
    if as_match:
        branch, cast = _strip_parens(as_match.group(1)), as_match.group(2)
    parts = _split_dots(branch)
    if not parts or parts[0] != resource_type:
        return None
    ops: list[Op] = []
    context: str | None = resource_type
    for part in (p.strip() for p in parts[1:]):
        if ops and ops[-1][0] == _RESOLVE_IS_OP:
            return None
        type_filter = _TYPE_FILTER.fullmatch(part)
        resolve = _RESOLVE_IS.fullmatch(part)
        where_eq = _WHERE_EQ_RE.fullmatch(part)
        extension = _EXTENSION_CALL.fullmatch(part)
        if extension and context and _element(context, "extension"):
            candidates, context = _element(context, "extension")  # type: ignore[misc]
            ops += [(_FIELD, candidates), (_WHERE_EQ, "url", extension.group(1))]
        elif _IDENT.fullmatch(part):
            found = _element(context, part) if context else None
            if found is None:
                return None
            candidates, context = found
            ops.append((_FIELD, candidates))
        elif type_filter and ops and ops[-1][0] == _FIELD:
            narrowed = _narrow(ops[-1][1], type_filter.group(1))
            if narrowed is None:
                return None
            ops[-1] = (_FIELD, narrowed)
            context = narrowed[0][1] if len(narrowed) == 1 and narrowed[0][1] not in PRIMITIVE_TYPES else None
        elif resolve:
            ops.append((_RESOLVE_IS_OP, resolve.group(1)))
        elif where_eq and context and _element(context, where_eq.group(1)):
            ops.append((_WHERE_EQ, where_eq.group(1), where_eq.group(2)))
        else:
            return None
    if cast is not None:
        if not ops or ops[-1][0] != _FIELD:
            return None
        narrowed = _narrow(ops[-1][1], cast)
        if narrowed is None:
            return None
        ops[-1] = (_FIELD, narrowed)
    return ops if any(op[0] == _FIELD for op in ops) else None


def compile_fast(expression: str, resource_type: str) -> Walker | None:
    """A walker for ``expression`` evaluated on ``resource_type`` resources, or None if it is not simple."""
    branches = []
    for branch in split_union(rewrite_abstract_root(expression, resource_type)):
        compiled = _compile_branch(branch, resource_type)
        if compiled is None:
            return None
        branches.append(compiled)
    if not branches:
        return None
    if len(branches) == 1:
        return _walker(branches[0])
    walkers = [_walker(b) for b in branches]

    def union(resource: dict[str, Any]) -> list[Typed]:
        out: list[Typed] = []
        for walk in walkers:
            out.extend(walk(resource))
        return out

    return union


def expression_roots(expression: str, resource_type: str) -> tuple[str, ...] | None:
    """The top-level elements ``expression`` reads on a ``resource_type`` resource (a resource without any of
    them yields nothing), or None when that cannot be told (the expression is not simple)."""
    roots: list[str] = []
    for branch in split_union(rewrite_abstract_root(expression, resource_type)):
        compiled = _compile_branch(branch, resource_type)
        if not compiled or compiled[0][0] != _FIELD:
            return None
        roots.extend(key for key, _ in compiled[0][1] if key not in roots)
    return tuple(roots) or None


def _walker(ops: list[Op]) -> Walker:
    def walk(resource: dict[str, Any]) -> list[Typed]:
        nodes: list[Typed] = [(resource, None)]
        for op in ops:
            kind = op[0]
            if kind == _FIELD:
                found: list[Typed] = []
                for node, _ in nodes:
                    if type(node) is not dict:
                        continue
                    for key, fhir_type in op[1]:
                        value = node.get(key)
                        if value is None:
                            continue
                        if type(value) is list:
                            found.extend([(v, fhir_type) for v in value])
                        else:
                            found.append((value, fhir_type))
                nodes = found
            elif kind == _WHERE_EQ:
                nodes = [n for n in nodes if type(n[0]) is dict and n[0].get(op[1]) == op[2]]
            else:
                nodes = [n for n in nodes if type(n[0]) is dict and reference_type(n[0]) == op[1]]
            if not nodes:
                break
        return nodes

    return walk
