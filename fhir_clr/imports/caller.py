"""Whose file an import is: the plan (and server-side callers) see every referral; a provider or Referring
Entity sees only the referrals its Organization is a party to, so its import matches rows against those alone and
its received files are kept as its own."""

from __future__ import annotations

from fhir_clr.engine.engine import Engine


def restricted_organization(engine: Engine) -> str | None:
    """``Organization/id`` of a caller whose access policy limits the referrals it sees; None for the plan, the
    CLI and dev mode (callers who see every referral)."""
    access = engine.access
    if access.organization is None or access.restriction("Task") is None:
        return None
    return access.organization
