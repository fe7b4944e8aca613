"""FHIR logical ids: 1-64 characters of ``A-Z a-z 0-9 - .`` (the models allow 255, FHIR says 64)."""

from __future__ import annotations

import re

from fhir_clr.errors import FhirError

ID_PATTERN = re.compile(r"[A-Za-z0-9\-.]{1,64}")
ID_RULE = "an id must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'"


def is_valid_id(value: object) -> bool:
    """True for a legal FHIR logical id."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def validate_id(value: str) -> None:
    """Raise a 400 FhirError unless ``value`` (an id taken from a URL) is a legal FHIR id."""
    if not is_valid_id(value):
        raise FhirError(400, "value", f"Invalid resource id: {ID_RULE}")
