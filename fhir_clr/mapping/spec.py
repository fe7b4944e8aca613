"""The mapping spec model: a flat-file layout (:class:`MappingSpec`) and its columns (:class:`ColumnSpec`), as
:mod:`fhir_clr.mapping.spec_loader` builds them from ``mappings/*.yaml``, and the choice among loaded specs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fhir_clr.clr.codes import CodeList
from fhir_clr.mapping.targets import TargetPath

NO_TARGET = "none"


@dataclass(frozen=True, eq=False, slots=True)
class ColumnSpec:
    """One column of a flat file and the FHIR element it maps to."""

    name: str
    header: str
    type: str
    aliases: tuple[str, ...] = ()
    format: str | None = None
    required: bool = False
    code_system: str | None = None
    default: Any = None
    """The typed value used when the cell is empty (already parsed)."""
    max_length: int | None = None
    pattern: str | None = None
    """A regular expression the whole value must match (required for ``cin``)."""
    target: str = NO_TARGET
    path: TargetPath | None = None
    """The checked target; None when ``target`` is ``none``."""
    code_list: CodeList | None = None
    """The CodeSystem of a code column."""


@dataclass(frozen=True, eq=False, slots=True)
class MappingSpec:
    """A flat-file layout: its columns in file order and the columns that identify a referral."""

    id: str
    kind: str
    program: str
    version: str
    title: str
    match: tuple[str, ...]
    columns: tuple[ColumnSpec, ...]
    source: Path
    timezone: str
    """The plan's time zone (rules config): FHIR dateTimes are read as local dates in it."""
    known_extra: tuple[str, ...] = ()
    """Headers of plans' own variants that carry nothing this spec maps (read past, not reported as unknown)."""
    by_name: dict[str, ColumnSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {c.name: c for c in self.columns})

    @property
    def headers(self) -> list[str]:
        """The header row this spec writes."""
        return [c.header for c in self.columns]


def find_spec(kind: str, program: str | None = None, *, specs: dict[str, MappingSpec]) -> MappingSpec:
    """The spec among ``specs`` for a file ``kind`` (and ``program``), newest version first; LookupError when none
    or ambiguous."""
    candidates = [s for s in specs.values()
                  if s.kind == kind and (program is None or s.program == program)]
    if not candidates:
        raise LookupError(f"no mapping spec for kind {kind!r}" + (f" and program {program!r}" if program else ""))
    programs = {s.program for s in candidates}
    if len(programs) > 1:
        raise LookupError(f"kind {kind!r} has specs for programs {sorted(programs)}: name one")
    return max(candidates, key=lambda s: tuple(int(p) for p in s.version.split(".")))
