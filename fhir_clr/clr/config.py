"""The versioned CLR rules configuration (``rules-config.json``): deadlines, calendar, workflow tables."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import orjson

DEFAULT_RULES_PATH = Path(__file__).resolve().parent / "rules-config.json"
DEFAULT_PROFILES_DIR = Path(__file__).resolve().parent.parent.parent / "profiles"


def load_rules(path: Path | str | None = None) -> dict[str, Any]:
    """The rules configuration at ``path`` (default: the bundled ``rules-config.json``)."""
    data = orjson.loads(Path(path or DEFAULT_RULES_PATH).read_bytes())
    if not isinstance(data, dict) or "version" not in data:
        raise ValueError("CLR rules configuration must be a JSON object with a version")
    return data


@cache
def default_rules() -> dict[str, Any]:
    """The bundled rules configuration, loaded once. Treat it as read-only."""
    return load_rules()


def extension_url(rules: dict[str, Any], name: str) -> str:
    """The canonical URL of one of our extensions (``referral-type`` → ``{base}/StructureDefinition/referral-type``)."""
    return f"{rules['canonical_base']}/StructureDefinition/{name}"
