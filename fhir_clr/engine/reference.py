"""The reference data one server applies: its rules configuration, code lists and compiled profiles. The domain
loads it (the CLR's: :func:`fhir_clr.clr.reference.load_reference`, called once by
:func:`fhir_clr.app.build_services`) and hands it to the engine, which carries it for the layers above (console,
imports, subscriptions); nothing reads it from a module-level cache. The engine's own rules use none of it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fhir_clr.fhirmodel.code_lists import CodeLists
from fhir_clr.fhirmodel.profile_check import ProfileChecker


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """The rules configuration, code lists and profile checker of one profiles directory (all empty for a plain
    FHIR server)."""

    rules: dict[str, Any] = field(default_factory=dict)
    codes: CodeLists = field(default_factory=lambda: CodeLists(()))
    profiles: ProfileChecker = field(default_factory=lambda: ProfileChecker((), CodeLists(())))
