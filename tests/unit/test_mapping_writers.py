"""Writers: header row in spec order, written forms, CSV dialects, XLSX as text, formula protection."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import date

import openpyxl
import pytest

from fhir_clr.mapping.writers import write_table
from tests.bundled import find_spec

SPEC = find_spec("rtf", "ecm")
RECORD = {"member_cin": "12345678A", "member_last_name": "=HYPERLINK(\"x\")", "member_first_name": "Ann, \"Jo\"|x",
          "member_residential_zip": "01234", "referral_status": "1", "referral_status_date": date(2025, 7, 4),
          "ecm_provider_npi": "1234567893", "service": "ecm"}


def test_csv() -> None:
    out = io.BytesIO()
    assert write_table(SPEC, [RECORD, {"member_cin": "23456789B"}], "csv", out) == 2
    text = out.getvalue().decode("utf-8")
    lines = text.split("\r\n")
    assert lines[0] == ",".join(SPEC.headers) and lines[-1] == "" and len(lines) == 4
    assert "'=HYPERLINK(\"\"x\"\")" in lines[1] and "\"Ann, \"\"Jo\"\"|x\"" in lines[1]
    assert "07/04/2025" in lines[1] and "1. Accepted" in lines[1] and ",01234," in lines[1]
    assert lines[1].endswith("Enhanced Care Management")
    assert not out.closed


@pytest.mark.parametrize(("fmt", "delimiter"), [("pipe", "|"), ("tab", "\t")])
def test_other_delimiters(fmt: str, delimiter: str) -> None:
    out = io.BytesIO()
    write_table(SPEC, [RECORD], fmt, out)
    header, row = out.getvalue().decode().split("\r\n")[:2]
    assert header == delimiter.join(SPEC.headers)
    assert row.count(delimiter) == len(SPEC.headers) - 1 + ("|" in RECORD["member_first_name"] and fmt == "pipe")


def test_xlsx_cells_are_text_and_never_formulas() -> None:
    out = io.BytesIO()
    assert write_table(SPEC, [RECORD], "xlsx", out) == 1
    sheet = openpyxl.load_workbook(io.BytesIO(out.getvalue())).active
    assert sheet.title == "RTF"
    assert [c.value for c in sheet[1]] == SPEC.headers
    row = {SPEC.columns[i].name: cell for i, cell in enumerate(sheet[2])}
    assert row["member_last_name"].value == "'=HYPERLINK(\"x\")" and row["member_last_name"].data_type == "s"
    assert row["member_residential_zip"].value == "01234" and row["referral_status_date"].value == "07/04/2025"


def test_rows_are_written_as_records_arrive() -> None:
    out = io.BytesIO()
    sizes: list[int] = []

    def records() -> Iterator[dict[str, object]]:
        for _ in range(3):
            sizes.append(len(out.getvalue()))
            yield RECORD

    assert write_table(SPEC, records(), "tab", out) == 3
    assert sizes[0] < sizes[1] < sizes[2] < len(out.getvalue())


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown file format"):
        write_table(SPEC, [], "xml", io.BytesIO())
