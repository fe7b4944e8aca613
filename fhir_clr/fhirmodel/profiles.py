"""Which profiles a resource claims (``meta.profile``), compared without the ``|version`` suffix a canonical may
carry: the one reading of the claim for the CLR rules, the profile checks, imports and reports."""

from __future__ import annotations

from typing import Any


def claimed_profiles(resource: dict[str, Any]) -> list[str]:
    """The canonical URLs ``resource`` claims in ``meta.profile``, without versions, in order."""
    meta = resource.get("meta")
    claimed = meta.get("profile") if isinstance(meta, dict) else None
    return [p.split("|")[0] for p in claimed if isinstance(p, str)] if isinstance(claimed, list) else []


def claims_profile(resource: dict[str, Any], url: str) -> bool:
    """True when ``resource`` claims the profile ``url`` (any version of it)."""
    return url in claimed_profiles(resource)
