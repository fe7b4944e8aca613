"""The conformance resources of ``profiles/`` (StructureDefinitions, CodeSystems, ValueSets, SearchParameters,
OperationDefinitions) written into the store at start-up, so clients read and search them over REST like any
resource. Each is an update by its id: unchanged files write nothing, edited files become a new version."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson

from fhir_clr.engine.engine import Engine

log = logging.getLogger(__name__)
CONFORMANCE_TYPES = ("StructureDefinition", "CodeSystem", "ValueSet", "SearchParameter", "OperationDefinition")


async def load_conformance(engine: Engine, profiles_dir: Path) -> int:
    """Write every conformance resource file of ``profiles_dir``; the number of resources that changed."""
    changed = 0
    for path in sorted(profiles_dir.glob("*.json")) if profiles_dir.is_dir() else []:
        if not path.name.startswith(CONFORMANCE_TYPES):
            continue
        resource = orjson.loads(path.read_bytes())
        result = await engine.update(resource["resourceType"], resource["id"], resource)
        changed += result.changed
    log.info("conformance resources loaded", extra={"changed": changed})
    return changed
