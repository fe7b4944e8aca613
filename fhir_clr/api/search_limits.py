"""Size limits of the searches clients send over HTTP (``GET``/``POST _search``): a search beyond them only
costs the store time and memory, or exceeds its own limits. In-process callers (imports, the console, reports)
are not limited here: they look up thousands of ids in one parameter on purpose."""

from __future__ import annotations

from collections.abc import Sequence

from fhir_clr.errors import FhirError

MAX_PARAMETERS = 100
"""Most ``name=value`` pairs in one search (repeats included); real searches use a handful."""
MAX_VALUES_PER_PARAMETER = 500
"""Most comma-separated (OR-ed) values in one parameter (e.g. ``_id=a,b,…``)."""
MAX_VALUES = 1000
"""Most values in one search, all parameters together (each becomes SQL terms and variables, or a MongoDB
clause): the SQLite statement of the largest search allowed still compiles in well under a second."""
MAX_VALUE_LENGTH = 2048
"""Longest single value (between commas), in characters."""


def _too_costly(name: str, message: str) -> FhirError:
    return FhirError(400, "too-costly", f"Search parameter '{name[:64]}': {message}")


def check_limits(params: Sequence[tuple[str, str]]) -> None:
    """Refuse (400 ``too-costly``) a search with more parameters or values, or longer values, than the
    ``MAX_*`` limits allow: such a query would only cost the store time and memory (or exceed its limits)."""
    if len(params) > MAX_PARAMETERS:
        raise FhirError(400, "too-costly", f"The search has {len(params)} parameters; at most {MAX_PARAMETERS} "
                        "are allowed")
    total = 0
    for name, value in params:
        if len(value) > MAX_VALUE_LENGTH and any(len(v) > MAX_VALUE_LENGTH for v in value.split(",")):
            raise _too_costly(name, f"a value is longer than {MAX_VALUE_LENGTH} characters")
        count = value.count(",") + 1
        if count > MAX_VALUES_PER_PARAMETER:
            raise _too_costly(name, f"more than {MAX_VALUES_PER_PARAMETER} comma-separated values")
        total += count
    if total > MAX_VALUES:
        raise FhirError(400, "too-costly", f"The search has {total} values; at most {MAX_VALUES} are allowed")
