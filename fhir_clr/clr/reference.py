"""Loading the CLR reference data: the rules configuration with the code lists and compiled profiles of a
profiles directory (the configured one in :func:`fhir_clr.app.build_services`, the shipped one for tests and
tools without Settings)."""

from __future__ import annotations

from pathlib import Path

from fhir_clr.clr.config import CANONICAL_BASE, DEFAULT_PROFILES_DIR, load_rules
from fhir_clr.engine.reference import ReferenceData
from fhir_clr.fhirmodel.code_lists import CodeLists
from fhir_clr.fhirmodel.profile_check import ProfileChecker


def load_reference(profiles_dir: Path) -> ReferenceData:
    """The CLR rules configuration with the code lists and compiled profiles of ``profiles_dir``."""
    codes = CodeLists.from_directory(profiles_dir)
    return ReferenceData(load_rules(), codes, ProfileChecker.from_directory(Path(profiles_dir), codes, CANONICAL_BASE))


def bundled_reference() -> ReferenceData:
    """The reference data shipped with the package, read afresh (for tests and tools without Settings)."""
    return load_reference(DEFAULT_PROFILES_DIR)
