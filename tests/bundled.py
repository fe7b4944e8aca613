"""The reference data shipped with the package, loaded once for the tests (the server loads its own from
Settings in ``build_services``; these are the explicit defaults of tests that build objects without one), and
engines with the CLR write rules as ``build_services`` wires them."""

from __future__ import annotations

from datetime import UTC, datetime

from fhir_clr.clr.config import DEFAULT_PROFILES_DIR
from fhir_clr.clr.reference import bundled_reference
from fhir_clr.clr.rules.write_rules import ClrWriteRules
from fhir_clr.clr.workflow import ROLE_PLAN, TaskWorkflow
from fhir_clr.engine.engine import Engine
from fhir_clr.engine.rules import Caller, PlanningContext
from fhir_clr.mapping import spec as mapping_spec
from fhir_clr.mapping.spec import MappingSpec
from fhir_clr.mapping.spec_loader import bundled_specs
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.port import Store

REFERENCE = bundled_reference()
RULES = REFERENCE.rules
CODES = REFERENCE.codes
SPECS = bundled_specs()
WORKFLOW = TaskWorkflow(RULES, CODES)


def find_spec(kind: str, program: str | None = None) -> MappingSpec:
    """The shipped spec for a file ``kind`` (and ``program``)."""
    return mapping_spec.find_spec(kind, program, specs=SPECS)


def clr_engine(store: Store) -> Engine:
    """An engine over ``store`` with the shipped search parameters, reference data and CLR write rules."""
    engine = Engine(store, SearchParamRegistry.from_directory(DEFAULT_PROFILES_DIR), reference=REFERENCE)
    engine.write_rules = [ClrWriteRules(engine.planner, REFERENCE)]
    return engine


def clr_rules_of(engine: Engine) -> ClrWriteRules:
    """The CLR write rules ``engine`` applies."""
    return next(rule for rule in engine.write_rules if isinstance(rule, ClrWriteRules))


def plan_planning() -> PlanningContext:
    """The planning context of a single write by the plan, outside any transaction or batch."""
    return PlanningContext(Caller(None, ROLE_PLAN), datetime.now(UTC))
