"""Build ``profiles/search-parameters-r4.json`` from the official R4 ``search-parameters.json`` Bundle.

Keeps the SearchParameters whose base is a type this server serves (plus the Resource-level ones), trims
each to the elements a server needs, narrows multi-type expressions and targets to the served types, and
writes a compact ``collection`` Bundle. Composite and special parameters are skipped and listed on stderr.

Usage (from the repository root): ``python -m tools.build_search_parameters SEARCH_PARAMETERS_JSON [OUTPUT]``
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from fhir_clr.fhirmodel.allowlist import R4_RESOURCE_TYPES
from fhir_clr.search.paths import expression_root, split_union

RESOURCE_LEVEL = {"_id", "_lastUpdated", "_tag", "_profile", "_security", "_source"}
ABSTRACT_BASES = {"Resource", "DomainResource"}
UNSUPPORTED_TYPES = {"composite", "special"}
DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "profiles" / "search-parameters-r4.json"
COPIED = ("multipleOr", "multipleAnd", "comparator", "modifier", "chain")


def describe(code: str, param_type: str, bases: list[str]) -> str:
    """A short description of the parameter, written by this tool."""
    where = "every resource type" if set(bases) & ABSTRACT_BASES else ", ".join(bases)
    return f"Searches {where} by `{code}` ({param_type} parameter from the FHIR R4 core specification)."


def narrow_expression(expression: str, bases: list[str]) -> str | None:
    """Keep only the union branches whose root type is one of ``bases`` (None if nothing is left)."""
    if set(bases) & ABSTRACT_BASES:
        return expression
    kept = [part for part in split_union(expression) if expression_root(part) in bases]
    return " | ".join(kept) if kept else None


def trim(source: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The trimmed SearchParameter, or None and the reason it is left out."""
    code = source["code"]
    if source["type"] in UNSUPPORTED_TYPES:
        return None, f"{source['type']} parameter"
    if code.startswith("_") and code not in RESOURCE_LEVEL:
        return None, "Resource-level parameter not offered"
    bases = [b for b in source["base"] if b in R4_RESOURCE_TYPES or (b in ABSTRACT_BASES and code in RESOURCE_LEVEL)]
    if not bases:
        return None, "no served base"
    expression = narrow_expression(source.get("expression", ""), bases)
    if not expression:
        return None, "no expression for a served base"
    out: dict[str, Any] = {
        "resourceType": "SearchParameter", "id": source["id"], "url": source["url"],
        "version": source.get("version", "4.0.1"), "name": source["name"], "status": source["status"],
        "description": describe(code, source["type"], bases), "code": code, "base": bases,
        "type": source["type"], "expression": expression,
    }
    if source.get("target"):
        # a parameter that only points at types we do not serve keeps its targets: its values are then
        # external or canonical URLs (e.g. ServiceRequest.instantiatesCanonical)
        out["target"] = [t for t in source["target"] if t in R4_RESOURCE_TYPES] or source["target"]
    for key in COPIED:
        if key in source:
            out[key] = source[key]
    return out, None


def build(source_bundle: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The output Bundle and the list of skipped parameters (``url: reason``)."""
    entries: list[dict[str, Any]] = []
    skipped: list[str] = []
    for entry in source_bundle.get("entry", []):
        resource = entry.get("resource", {})
        if resource.get("resourceType") != "SearchParameter":
            continue
        trimmed, reason = trim(resource)
        if trimmed is None:
            served = [b for b in resource.get("base", []) if b in R4_RESOURCE_TYPES or b in ABSTRACT_BASES]
            if served:
                skipped.append(f"{resource['url']}: {reason}")
            continue
        entries.append({"fullUrl": trimmed["url"], "resource": trimmed})
    bundle = {"resourceType": "Bundle", "id": "search-parameters-r4", "type": "collection", "entry": entries}
    return bundle, skipped


def main(argv: list[str]) -> int:
    """Command-line entry point."""
    if len(argv) not in (2, 3):
        print(__doc__, file=sys.stderr)
        return 2
    source = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    output = Path(argv[2]) if len(argv) == 3 else DEFAULT_OUTPUT
    bundle, skipped = build(source)
    text = json.dumps(bundle, separators=(",", ":"), ensure_ascii=False)
    # one entry per line keeps diffs readable without pretty-printing every element
    text = text.replace(',{"fullUrl"', ',\n{"fullUrl"')
    output.write_text(text + "\n", encoding="utf-8")
    print(f"wrote {len(bundle['entry'])} SearchParameters to {output}", file=sys.stderr)
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
