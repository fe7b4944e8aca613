"""ASF rows to authorization decisions: the row's authorization (status, period, number) is recorded on the
CLR Referral its Member, service and provider name — as the plan recording the decision through the engine, so
the decision's notices and clocks follow exactly as for a REST update. The referral is found through its
referral Task like an RTF row's (:mod:`fhir_clr.imports.referral_match`); one referral's rows go in file order."""

from __future__ import annotations

import copy
from collections.abc import Callable
from datetime import datetime
from typing import Any

from fhir_clr.clr.config import extension_url
from fhir_clr.imports.referral_match import ReferralMatcher, RowProblem
from fhir_clr.imports.row_kinds import ReferralUpdates

UNREADABLE = RowProblem(None, "match", "The referral of this Member, service and provider could not be read")


class AsfRows(ReferralUpdates):
    """ASF rows: each records its authorization decision on the CLR Referral its referral Task is focused on
    (a decision without a date is dated by ``clock``)."""

    def __init__(self, matcher: ReferralMatcher, provider_npi: str | None, clock: Callable[[], datetime]) -> None:
        super().__init__(matcher, provider_npi)
        self.clock = clock

    def updated(self, task: dict[str, Any], fragments: dict[str, dict[str, Any]]
                ) -> tuple[dict[str, Any], dict[str, Any]] | RowProblem:
        """The CLR Referral and the referral as the row's decision updates it."""
        focus = str((task.get("focus") or {}).get("reference", "")).removeprefix("ServiceRequest/")
        current = self.matcher.referrals.get(focus, {})
        if not current:
            return UNREADABLE
        return current, updated_referral(current, fragments.get("ServiceRequest", {}), self.clock(),
                                         self.matcher.engine.rules)


def updated_referral(current: dict[str, Any], fragment: dict[str, Any], now: datetime,
                     rules: dict[str, Any]) -> dict[str, Any]:
    """``current`` with the row's authorization decision (sub-extensions replaced by name; a decision without a
    date is dated ``now``) and authorization number (added when new), under the rules configuration ``rules``."""
    auth_url = extension_url(rules, "authorization-decision")
    referral = copy.deepcopy(current)
    referral.pop("meta", None)
    referral["meta"] = {k: v for k, v in (current.get("meta") or {}).items() if k in ("profile", "tag")}
    incoming = next((e for e in fragment.get("extension", ()) if e.get("url") == auth_url), None)
    if incoming is not None:
        existing: dict[str, Any] = next((e for e in referral.get("extension", ()) if e.get("url") == auth_url),
                                        {"url": auth_url})
        before = {p["url"]: p for p in existing.get("extension", ())}
        parts = {**before, **{p["url"]: p for p in incoming.get("extension", ())}}
        if "status" in parts and not any(p.get("url") == "date" for p in incoming.get("extension", ())):
            decided_again = parts["status"] != before.get("status")
            parts["date"] = {"url": "date", "valueDateTime": now.isoformat()} if decided_again or \
                "date" not in before else before["date"]
        referral["extension"] = [e for e in referral.get("extension", ()) if e.get("url") != auth_url] + [
            {"url": auth_url, "extension": list(parts.values())}]
    number_system = rules["identifier_systems"]["authorization_number"]
    for identifier in fragment.get("identifier", ()):
        if identifier.get("system") == number_system and identifier not in referral.get("identifier", []):
            referral["identifier"] = [*referral.get("identifier", ()), identifier]
    return referral

