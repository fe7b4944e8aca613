"""Display labels for the references a page shows (Members, providers, Referring Entities), read in one search
per resource type through the caller's engine: a reference the caller may not see shows as its type only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson

from fhir_clr.clr.rules.context import reference_of
from fhir_clr.engine.engine import Engine

LABELLED_TYPES = ("Patient", "Organization", "Practitioner", "PractitionerRole", "RelatedPerson")
MAX_IDS_PER_SEARCH = 200


def _human_name(resource: dict[str, Any]) -> str | None:
    for name in resource.get("name", ()) if isinstance(resource.get("name"), list) else ():
        if isinstance(name, dict):
            text = name.get("text") or " ".join([*name.get("given", ()), name.get("family", "")]).strip()
            if text:
                return text
    return None


def label_of(resource: dict[str, Any], systems: dict[str, str]) -> str:
    """A person's or organization's display label, with its CIN or NPI (of the rules configuration's identifier
    ``systems``) when it has one."""
    name = resource.get("name") if isinstance(resource.get("name"), str) else _human_name(resource)
    for identifier in resource.get("identifier", ()):
        if isinstance(identifier, dict) and identifier.get("system") in (systems["cin"], systems["npi"]):
            kind = "CIN" if identifier["system"] == systems["cin"] else "NPI"
            return f"{name} ({kind} {identifier.get('value')})" if name else f"{kind} {identifier.get('value')}"
    return name or resource["resourceType"]


class Names:
    """Labels of referenced resources, loaded in batches by :meth:`load`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.systems: dict[str, str] = engine.rules["identifier_systems"]
        self.labels: dict[str, str] = {}

    async def load(self, references: Iterable[str | None]) -> None:
        """Read the labels of ``references`` not known yet (unknown types and ids are skipped)."""
        wanted: dict[str, set[str]] = {}
        for reference in references:
            if reference and reference not in self.labels:
                resource_type, _, resource_id = reference.partition("/")
                if resource_type in LABELLED_TYPES and resource_id:
                    wanted.setdefault(resource_type, set()).add(resource_id)
        for resource_type, ids in wanted.items():
            ordered = sorted(ids)
            for start in range(0, len(ordered), MAX_IDS_PER_SEARCH):
                batch = ordered[start:start + MAX_IDS_PER_SEARCH]
                result = await self.engine.search(resource_type, [("_id", ",".join(batch)),
                                                                  ("_count", str(len(batch))), ("_total", "none")])
                for match in result.matches:
                    if match.body is not None:
                        self.labels[f"{resource_type}/{match.resource_id}"] = label_of(orjson.loads(match.body),
                                                                                   self.systems)

    def __call__(self, reference: Any) -> str:
        """The label of a Reference; its display or type when not loaded."""
        text = reference_of(reference)
        if text is None or "/" not in text:
            return (reference.get("display") if isinstance(reference, dict) else None) or "—"
        return self.labels.get(text) or (reference.get("display") if isinstance(reference, dict) else None) \
            or text.partition("/")[0]
