"""A corpus of bad RTF files, each imported into a real embedded store: every one ends with a per-row result or
a clear file-level reason — never an exception. The files are built here, byte by byte, so each case says
exactly what is wrong with it."""

from __future__ import annotations

import io
from datetime import date

from fhir_clr.app import Services
from fhir_clr.imports.job import FileImporter, ImportRequest
from fhir_clr.imports.results import ImportReport
from fhir_clr.mapping.writers import write_table
from tests.api.test_rtf_import import referral, row, valid_npi
from tests.bundled import find_spec

SPEC = find_spec("rtf", "ecm")
CIN, OTHER_CIN = "62345678F", "72345678G"


def csv_text(rows: list[list[str]], delimiter: str = ",") -> str:
    return "\r\n".join(delimiter.join(cells) for cells in [SPEC.headers, *rows]) + "\r\n"


def cells(npi: str, cin: str = CIN, status: str = "1", when: str = "11/10/2026", reason: str = "") -> list[str]:
    values = {"MCP Name": "Plan", "Member Client Index Number (CIN)": cin, "ECM Provider Name": "Provider",
              "ECM Provider National Provider Identifier (NPI)": npi, "Referral Status": status,
              "Date of Referral Status Update": when, "Reason for Referral Loop Closure": reason}
    return [values.get(header, "") for header in SPEC.headers]


async def run(services: Services, data: bytes, filename: str = "rtf.csv") -> ImportReport:
    return await FileImporter(services.bundles, services.engine.clock, services.specs).run(
        ImportRequest("rtf", data, filename, "ecm"))


def rules(report: ImportReport) -> dict[int, list[str]]:
    return {r.number: [p.rule for p in r.problems] for r in report.rejected}


async def test_bad_cells_are_rejected_row_by_row(services: Services) -> None:
    npi = valid_npi("523456789")
    await referral(services, CIN, npi)
    data = csv_text([
        cells(npi, when="13/45/2026"),            # row 2: impossible date
        cells(npi, status="9. Teleported"),       # row 3: code outside the value set
        cells(npi, cin="=HYPERLINK(1)"),          # row 4: formula-looking cell
        cells("1234567890"),                      # row 5: NPI with a bad check digit
        cells(npi, status="", when=""),           # row 6: required cells empty
        cells(npi, when="2026-11-10"),            # row 7: ISO date, valid: applied
        cells(npi, when="2026-11-10"),            # row 8: the same row again: unchanged
    ]).encode()
    report = await run(services, data)
    assert report.counts == {"applied": 1, "unchanged": 1, "rejected": 5}
    found = rules(report)
    assert found[2] == ["date"] and found[3] == ["code"] and found[4] == ["formula"]
    assert found[5] == ["npi"] and sorted(found[6]) == ["required", "required"]


async def test_encodings_delimiters_and_line_endings(services: Services) -> None:
    npi = valid_npi("623456789")
    await referral(services, CIN, npi)
    await referral(services, OTHER_CIN, npi)
    pipe_cp1252 = csv_text([cells(npi, status="1. Accepted")], "|").replace("Plan", "Planè").encode("cp1252")
    assert (await run(services, pipe_cp1252, "a.txt")).counts["applied"] == 1
    tab_bom_lf = ("\ufeff" + csv_text([cells(npi, cin=OTHER_CIN, when="11-10-2026")], "\t")).replace(
        "\r\n", "\n").encode("utf-8")
    report = await run(services, tab_bom_lf, "b.tsv")
    assert (report.file_format, report.counts["applied"]) == ("tab", 1)


async def test_files_that_cannot_be_read_say_why(services: Services) -> None:
    missing = b"Member CIN,Referral Status\r\n12345678A,1\r\n"
    report = await run(services, missing)
    assert report.rows == 0 and "required columns missing" in report.file_problems[0]
    out = io.BytesIO()
    write_table(SPEC, [row(CIN, valid_npi("723456789"), "1", date(2026, 11, 10))], "xlsx", out)
    truncated = await run(services, out.getvalue()[: len(out.getvalue()) // 2], "rtf.xlsx")
    assert truncated.rows == 0 and truncated.file_problems
    empty = await run(services, b"", "empty.csv")
    assert empty.rows == 0 and empty.file_problems


async def test_a_ten_megabyte_single_line_is_one_rejected_row(services: Services) -> None:
    npi = valid_npi("823456789")
    await referral(services, CIN, npi)
    huge = cells(npi)
    huge[SPEC.headers.index("Member Residential Address")] = "x" * 10_000_000
    data = csv_text([huge, cells(npi)]).encode()
    report = await run(services, data)
    assert report.counts["rejected"] == 1 and report.counts["applied"] == 1
    assert report.rejected[0].number == 2
