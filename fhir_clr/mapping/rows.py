"""Rows: one raw file row to a record of typed values plus the errors of its cells."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fhir_clr.mapping.headers import HeaderMatch
from fhir_clr.mapping.readers import RawRow
from fhir_clr.mapping.spec import MappingSpec
from fhir_clr.mapping.values import CellError, InvalidCell, compile_parser


@dataclass(slots=True)
class RowRecord:
    """A parsed row: every column's typed value (None when empty or invalid) and the problems found."""

    number: int
    values: dict[str, Any]
    errors: list[CellError] = field(default_factory=list)
    warnings: list[CellError] = field(default_factory=list)
    """Cells kept as they are but worth a look: formula-looking text in a free-text column."""

    @property
    def ok(self) -> bool:
        """True when no cell was refused."""
        return not self.errors


_Plan = list[tuple[str, int, Callable[[str], Any]]]


def parse_row(spec: MappingSpec, header_match: HeaderMatch, raw_row: RawRow) -> RowRecord:
    """Parse ``raw_row`` of a file whose headers gave ``header_match``; never raises for bad content."""
    if raw_row.error is not None:
        return RowRecord(raw_row.number, dict.fromkeys(spec.by_name),
                         [CellError(None, "unreadable-row", raw_row.error)])
    plan = _plan(spec, header_match)
    cells = raw_row.cells
    width = len(cells)
    values: dict[str, Any] = {}
    errors: list[CellError] = []
    warnings: list[CellError] = []
    for name, index, parse in plan:
        raw = cells[index] if index < width else ""
        try:
            values[name] = parse(raw)
        except InvalidCell as invalid:
            values[name] = None
            if invalid.rule == "formula" and _keeps_formula_text(spec, name, raw):
                values[name] = raw.strip()
                warnings.append(CellError(name, "formula", "the cell looks like a spreadsheet formula; it was kept "
                                          "as text and not evaluated", raw))
            else:
                errors.append(CellError(name, invalid.rule, invalid.message, raw))
    if width > header_match.width and any(cell.strip() for cell in cells[header_match.width:]):
        errors.append(CellError(None, "extra-cells",
                                f"the row has {width} cells but the header row has {header_match.width}"))
    return RowRecord(raw_row.number, values, errors, warnings)


def _keeps_formula_text(spec: MappingSpec, name: str, raw: str) -> bool:
    """True when a formula-looking cell of column ``name`` is kept as plain text: a free-text column (string,
    no pattern) that identifies nothing (not a ``match`` column), within its length limit. Such text is stored
    as a string, never evaluated, and written back behind a ``'`` by every export."""
    column = spec.by_name[name]
    if column.type != "string" or column.pattern or name in spec.match:
        return False
    return column.max_length is None or len(raw.strip()) <= column.max_length


def _plan(spec: MappingSpec, header_match: HeaderMatch) -> _Plan:
    """(column name, cell index, parser) per column, cached on the header match for this spec."""
    cached = header_match.plan
    if cached is not None and cached[0] is spec:
        return cached[1]
    absent = 1 << 30  # an index past any row: the cell reads as empty
    plan = [(c.name, header_match.indexes.get(c.name, absent), compile_parser(c)) for c in spec.columns]
    header_match.plan = (spec, plan)
    return plan
