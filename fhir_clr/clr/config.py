"""The versioned CLR rules configuration (``rules-config.json``): deadlines, calendar, workflow tables."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from fhir_clr.config import BUNDLED_PROFILES_DIR

DEFAULT_RULES_PATH = Path(__file__).resolve().parent / "rules-config.json"
DEFAULT_PROFILES_DIR = BUNDLED_PROFILES_DIR
CANONICAL_BASE = "http://fhir-clr.org/fhir"
"""The canonical base of this server's own profiles and extensions (a rules configuration must use it)."""


def load_rules(path: Path | str | None = None) -> dict[str, Any]:
    """The rules configuration at ``path`` (default: the bundled ``rules-config.json``)."""
    data = orjson.loads(Path(path or DEFAULT_RULES_PATH).read_bytes())
    if not isinstance(data, dict) or "version" not in data:
        raise ValueError("CLR rules configuration must be a JSON object with a version")
    if data.get("canonical_base") != CANONICAL_BASE:
        raise ValueError(f"CLR rules configuration must have canonical_base {CANONICAL_BASE!r}")
    return data


def bundled_rules() -> dict[str, Any]:
    """The rules configuration shipped with the package, read afresh: for tests and tools that build their
    objects without :class:`~fhir_clr.config.Settings` (the server loads its own once, in ``build_services``)."""
    return load_rules()


def profile_url(name: str) -> str:
    """The canonical URL of one of this server's own profiles or extensions (see :data:`CANONICAL_BASE`)."""
    return f"{CANONICAL_BASE}/StructureDefinition/{name}"


def extension_url(rules: dict[str, Any], name: str) -> str:
    """The canonical URL of one of our extensions (``referral-type`` → ``{base}/StructureDefinition/referral-type``)."""
    return f"{rules['canonical_base']}/StructureDefinition/{name}"


def extension_of(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    """The first extension of ``resource`` with ``url`` (None when it has none)."""
    return next((e for e in resource.get("extension", ()) if isinstance(e, dict) and e.get("url") == url), None)


def value_of(extension: dict[str, Any] | None) -> Any:
    """The ``value[x]`` of an extension (None for no extension or no value)."""
    if extension is None:
        return None
    return next((v for k, v in extension.items() if k.startswith("value")), None)
