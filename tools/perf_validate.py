"""Measure the validation gate on the realistic referral Task of ``tools.perf_search_extract`` (a dev check,
not a test): the R4B model alone, our JSON rules and binding walk alone, and the whole ``validate_resource``.

Usage (from the repository root): ``python -m tools.perf_validate [ITERATIONS]``
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import orjson

from fhir_clr.fhirmodel.bindings import binding_table
from fhir_clr.fhirmodel.json_rules import JsonRules
from fhir_clr.fhirmodel.validate import ALL_R4_TYPES, validate_resource, warm_models
from tools.perf_search_extract import REFERRAL_TASK


def best_of(runs: int, iterations: int, action: Callable[[], object]) -> float:
    """Best mean time per call in microseconds over ``runs`` runs."""
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(iterations):
            action()
        best = min(best, (time.perf_counter() - start) / iterations)
    return best * 1e6


def main() -> None:
    """Print the three timings."""
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    start = time.perf_counter()
    warm_models()
    print(f"warm_models: {(time.perf_counter() - start) * 1000:.0f} ms")
    from fhir.resources.R4B import get_fhir_model_class

    model = get_fhir_model_class("Task")
    table = binding_table()

    def rules() -> None:
        JsonRules(table, ALL_R4_TYPES).resource(REFERRAL_TASK, "Task")

    print(f"Task of {len(orjson.dumps(REFERRAL_TASK))} bytes, best of 5 x {iterations}")
    print(f"R4B model_validate:  {best_of(5, iterations, lambda: model.model_validate(REFERRAL_TASK)):7.1f} µs")
    print(f"JSON rules+bindings: {best_of(5, iterations, rules):7.1f} µs")
    print(f"validate_resource:   {best_of(5, iterations, lambda: validate_resource(REFERRAL_TASK, 'Task')):7.1f} µs")


if __name__ == "__main__":
    main()
