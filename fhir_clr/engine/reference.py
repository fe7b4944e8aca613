"""The CLR reference data one server applies: the rules configuration, the code lists and the compiled profiles
of its profiles directory. :func:`fhir_clr.app.build_services` loads it once and hands it to the engine, which
hands it on (write rules, console, imports, subscriptions); nothing reads it from a module-level cache."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fhir_clr.clr.codes import CodeLists
from fhir_clr.clr.config import DEFAULT_PROFILES_DIR, load_rules
from fhir_clr.fhirmodel.profile_check import ProfileChecker


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """The rules configuration, code lists and profile checker of one profiles directory."""

    rules: dict[str, Any]
    codes: CodeLists
    profiles: ProfileChecker

    @classmethod
    def load(cls, profiles_dir: Path) -> ReferenceData:
        """The rules configuration with the code lists and compiled profiles of ``profiles_dir``."""
        codes = CodeLists.from_directory(profiles_dir)
        return cls(load_rules(), codes, ProfileChecker.from_directory(Path(profiles_dir), codes))

    @classmethod
    def bundled(cls) -> ReferenceData:
        """The reference data shipped with the package, read afresh (for tests and tools without Settings)."""
        return cls.load(DEFAULT_PROFILES_DIR)
