"""The reference data shipped with the package, loaded once for the tests (the server loads its own from
Settings in ``build_services``; these are the explicit defaults of tests that build objects without one)."""

from __future__ import annotations

from fhir_clr.clr.workflow import TaskWorkflow
from fhir_clr.engine.reference import ReferenceData
from fhir_clr.mapping import spec as mapping_spec
from fhir_clr.mapping.spec import MappingSpec
from fhir_clr.mapping.spec_loader import bundled_specs

REFERENCE = ReferenceData.bundled()
RULES = REFERENCE.rules
CODES = REFERENCE.codes
SPECS = bundled_specs()
WORKFLOW = TaskWorkflow(RULES, CODES)


def find_spec(kind: str, program: str | None = None) -> MappingSpec:
    """The shipped spec for a file ``kind`` (and ``program``)."""
    return mapping_spec.find_spec(kind, program, specs=SPECS)
