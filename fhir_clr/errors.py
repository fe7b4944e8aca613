"""FHIR errors shared by every layer, and their OperationOutcome form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Issue:
    """One OperationOutcome issue. ``expression`` is a FHIRPath-style element path (``Task.status``)."""

    code: str
    message: str
    severity: str = "error"
    expression: str | None = None
    diagnostics: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The issue as an OperationOutcome.issue JSON object."""
        out: dict[str, Any] = {"severity": self.severity, "code": self.code,
                               "details": {"text": self.message}}
        if self.diagnostics:
            out["diagnostics"] = self.diagnostics
        if self.expression:
            out["expression"] = [self.expression]
        return out


class FhirError(Exception):
    """An error with an HTTP status and one or more OperationOutcome issues.

    Raised anywhere below the API; the API turns it into the response. Messages must never contain
    resource content (PHI): name the element and the rule, not the value, unless the value is a code.
    """

    def __init__(self, status: int, code: str, message: str, expression: str | None = None,
                 issues: list[Issue] | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.issues = issues or [Issue(code=code, message=message, expression=expression)]
        self.headers = headers or {}

    def outcome(self) -> dict[str, Any]:
        """The OperationOutcome resource for this error."""
        return operation_outcome(self.issues)


def operation_outcome(issues: list[Issue]) -> dict[str, Any]:
    """Build an OperationOutcome resource from issues."""
    return {"resourceType": "OperationOutcome", "issue": [issue.to_json() for issue in issues]}


def not_found(resource_type: str, resource_id: str | None = None) -> FhirError:
    """404 for an unknown type or id."""
    what = f"{resource_type}/{resource_id}" if resource_id else f"resource type {resource_type}"
    return FhirError(404, "not-found", f"{what} is not known")
