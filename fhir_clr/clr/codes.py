"""The CLR code lists: the code-list types (:mod:`fhir_clr.fhirmodel.code_lists`) with the lists shipped in the
package's ``profiles/`` directory."""

from __future__ import annotations

from fhir_clr.clr.config import DEFAULT_PROFILES_DIR
from fhir_clr.fhirmodel.code_lists import CodeList, CodeLists, Concept

__all__ = ["CodeList", "CodeLists", "Concept", "bundled_code_lists"]


def bundled_code_lists() -> CodeLists:
    """The code lists of the ``profiles/`` directory shipped with the package, read afresh: for tests and tools
    that build their objects without :class:`~fhir_clr.config.Settings` (the server loads the configured
    directory's once, in ``build_services``)."""
    return CodeLists.from_directory(DEFAULT_PROFILES_DIR)
