"""Measure search index extraction speed on a realistic SDOHCC referral Task (a dev check, not a test).

Usage (from the repository root): ``python -m tools.perf_search_extract [ITERATIONS]``
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import orjson

from fhir_clr.search.registry import SearchParamRegistry

PROFILES = Path(__file__).resolve().parent.parent / "profiles"

REFERRAL_TASK = {
    "resourceType": "Task",
    "id": "referral-task-1",
    "meta": {
        "versionId": "3",
        "lastUpdated": "2026-10-02T15:04:05.123Z",
        "profile": ["http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/SDOHCC-TaskForReferralManagement"],
        "tag": [{"system": "urn:example:clr:source", "code": "ecm-referral"}],
    },
    "identifier": [{"system": "urn:example:clr:referral", "value": "REF-2026-000123"}],
    "status": "in-progress",
    "businessStatus": {"coding": [{"system": "urn:example:clr:business-status", "code": "enrolled"}],
                       "text": "Enrolled"},
    "intent": "order",
    "priority": "routine",
    "code": {"coding": [{"system": "http://hl7.org/fhir/CodeSystem/task-code", "code": "fulfill"}]},
    "focus": {"reference": "ServiceRequest/referral-sr-1"},
    "for": {"reference": "Patient/member-1", "display": "Member"},
    "authoredOn": "2026-10-01T09:30:00-07:00",
    "lastModified": "2026-10-02T08:04:05-07:00",
    "requester": {"reference": "https://clr.example.org/fhir/Organization/mcp-1"},
    "owner": {"reference": "Organization/cbo-7"},
    "restriction": {"period": {"start": "2026-10-01", "end": "2026-12-31"}},
    "output": [{
        "type": {"coding": [{"system": "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes",
                             "code": "resulting-activity"}]},
        "valueReference": {"reference": "Procedure/proc-1"},
    }],
}


def main(argv: list[str]) -> int:
    """Print µs per extraction for the sample Task."""
    iterations = int(argv[1]) if len(argv) > 1 else 20000
    registry = SearchParamRegistry.from_directory(PROFILES, base_urls=["https://clr.example.org/fhir"])
    print(f"resource size: {len(orjson.dumps(REFERRAL_TASK))} bytes")
    entries = registry.extract(REFERRAL_TASK)
    print(f"entries: {len(entries.tokens)} tokens, {len(entries.references)} references, {len(entries.dates)} dates, "
          f"{len(entries.uris)} uris")
    for _ in range(1000):
        registry.extract(REFERRAL_TASK)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(iterations):
            registry.extract(REFERRAL_TASK)
        best = min(best, (time.perf_counter() - start) / iterations * 1e6)
    print(f"extract: {best:.1f} µs per resource (best of 5 x {iterations})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
