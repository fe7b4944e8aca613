"""The life of a CLR Notice Obligation Task: open (``requested``) until a notice or event satisfies it
(``completed``, with when and by what) or it stops being needed (``cancelled``, with why)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from fhir_clr.clr.config import profile_url
from fhir_clr.fhirmodel.clone import clone
from fhir_clr.fhirmodel.profiles import claims_profile

OPEN = "requested"
OBLIGATION_PROFILE = profile_url("clr-notice-obligation")


def is_obligation(resource: dict[str, Any] | None) -> bool:
    """True for a Task claiming the CLR Notice Obligation profile."""
    if not resource or resource.get("resourceType") != "Task":
        return False
    return claims_profile(resource, OBLIGATION_PROFILE)


def kind_of(obligation: dict[str, Any]) -> str | None:
    """The obligation's kind (its notice-kinds code)."""
    codings = (obligation.get("code") or {}).get("coding") or [{}]
    code: str | None = codings[0].get("code")
    return code


def is_open(obligation: dict[str, Any]) -> bool:
    """True while nothing has satisfied or cancelled the obligation."""
    return obligation.get("status") == OPEN


def completed(obligation: dict[str, Any], when: datetime | date, by: str | None = None) -> dict[str, Any]:
    """``obligation`` satisfied at ``when`` (the notice's sent time or the satisfying event's), by the resource
    ``by`` (``Communication/123``) when there is one."""
    done = clone(obligation)
    done["status"] = "completed"
    done["executionPeriod"] = {**done.get("executionPeriod", {}), "end": when.isoformat()}
    if by:
        done["output"] = [*done.get("output", []), {"type": {"text": "Satisfied by"},
                                                    "valueReference": {"reference": by}}]
    return done


def cancelled(obligation: dict[str, Any], why: str) -> dict[str, Any]:
    """``obligation`` no longer needed, with the reason in ``statusReason``."""
    done = clone(obligation)
    done["status"] = "cancelled"
    done["statusReason"] = {"text": why}
    return done
