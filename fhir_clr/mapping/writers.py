"""Flat-file writers: records to CSV (comma, pipe, tab) or XLSX through a mapping spec, streamed.

The header row is the spec's headers in spec order; each cell is written by ``format_cell`` (dates in the
column's format, codes in their canonical form, formula-looking text behind a ``'``). XLSX cells are all
text, so identifiers keep their leading zeros and dates their written form.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, BinaryIO

from fhir_clr.mapping.spec import MappingSpec
from fhir_clr.mapping.values import format_cell

DELIMITERS = {"csv": ",", "pipe": "|", "tab": "\t"}
FORMATS = (*DELIMITERS, "xlsx")


def write_table(spec: MappingSpec, records: Iterable[dict[str, Any]], fmt: str, out: BinaryIO) -> int:
    """Write the header row and one row per record (missing keys are empty cells); the number of rows written."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown file format {fmt!r} (one of {', '.join(FORMATS)})")
    columns = spec.columns
    rows = ([format_cell(c, record.get(c.name)) for c in columns] for record in records)
    if fmt == "xlsx":
        return _write_xlsx(spec, rows, out)
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    try:
        writer = csv.writer(text, delimiter=DELIMITERS[fmt], lineterminator="\r\n")
        writer.writerow(spec.headers)
        count = 0
        for row in rows:
            writer.writerow(row)
            count += 1
        text.flush()
    finally:
        text.detach()
    return count


def _write_xlsx(spec: MappingSpec, rows: Iterable[list[str]], out: BinaryIO) -> int:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=spec.kind.upper())
    sheet.append(spec.headers)
    count = 0
    for row in rows:
        sheet.append(row)
        count += 1
    workbook.save(out)
    return count
