"""Builders of small valid resources for API tests (synthetic data only)."""

from __future__ import annotations

import uuid
from typing import Any

FHIR_JSON = {"Content-Type": "application/fhir+json"}


def unique(prefix: str = "t") -> str:
    """A value no other test uses (tests share one live server)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def patient(family: str = "Garcia", **extra: Any) -> dict[str, Any]:
    """A minimal valid Patient."""
    return {"resourceType": "Patient", "name": [{"family": family, "given": ["Ana"]}], **extra}


def organization(name: str = "Sample Org", **extra: Any) -> dict[str, Any]:
    """A minimal valid Organization."""
    return {"resourceType": "Organization", "name": name, **extra}


def task(owner: str | None = None, status: str = "requested", **extra: Any) -> dict[str, Any]:
    """A minimal valid referral Task."""
    body: dict[str, Any] = {"resourceType": "Task", "status": status, "intent": "order", **extra}
    if owner:
        body["owner"] = {"reference": owner}
    return body


def issue_expressions(outcome: dict[str, Any]) -> list[str]:
    """All ``expression`` paths of an OperationOutcome."""
    return [e for issue in outcome.get("issue", []) for e in issue.get("expression", [])]
