"""Readers: every delimiter, encoding, BOM and line ending; XLSX; damaged and hostile files."""

from __future__ import annotations

import codecs
import io
import tracemalloc
import zipfile
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from fhir_clr.mapping.readers import MAX_LINE_CHARS, FileFormatError, RawRow, open_table

HEADERS = ["Member CIN", "Member Last Name", "Note"]
ROWS = [["12345678A", "Peña", 'said "hi", then left'], ["23456789B", "Zoë|Ørsted", "two\nlines"]]


def delimited(delimiter: str, newline: str) -> str:
    def cell(text: str) -> str:
        needs = any(ch in text for ch in (delimiter, '"', "\n"))
        return '"' + text.replace('"', '""') + '"' if needs else text
    return "".join(delimiter.join(cell(c) for c in row) + newline for row in [HEADERS, *ROWS])


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
@pytest.mark.parametrize(("delimiter", "fmt"), [(",", "csv"), ("|", "pipe"), ("\t", "tab")])
@pytest.mark.parametrize(("codec", "bom", "expected"), [
    ("utf-8", b"", "utf-8"), ("utf-8", codecs.BOM_UTF8, "utf-8-sig"), ("cp1252", b"", "cp1252"),
    ("utf-16-le", codecs.BOM_UTF16_LE, "utf-16")])
@pytest.mark.parametrize("as_path", [True, False])
def test_text_matrix(tmp_path: Path, newline: str, delimiter: str, fmt: str, codec: str, bom: bytes,
                     expected: str, as_path: bool) -> None:
    data = bom + delimited(delimiter, newline).encode(codec)
    path = tmp_path / "file.txt"
    path.write_bytes(data)
    with open_table(path if as_path else data) as table:
        assert (table.format, table.encoding, table.headers) == (fmt, expected, HEADERS)
        rows = list(table)
    assert [r.cells for r in rows] == ROWS
    assert [r.number for r in rows] == [2, 3]


def test_windows_1252_is_decided_for_the_whole_file(tmp_path: Path) -> None:
    lines = ["Member CIN,Name"] + [f"{n:08d}A,Plain" for n in range(5000)] + ["99999999Z,Caf\xe9 \u2019s"]
    data = "\r\n".join(lines).encode("cp1252")
    with open_table(data) as table:
        rows = list(table)
    assert table.encoding == "cp1252" and rows[-1].cells == ["99999999Z", "Caf\xe9 \u2019s"]


def test_neither_utf8_nor_cp1252() -> None:
    with pytest.raises(FileFormatError, match="neither UTF-8 nor Windows-1252"):
        open_table(b"a,b\r\n\x81\x8d,x\r\n")


def test_blank_rows_are_skipped_but_counted() -> None:
    with open_table(b"A,B\r\n1,2\r\n\r\n,\r\n3,4\r\n") as table:
        assert [(r.number, r.cells) for r in table] == [(2, ["1", "2"]), (5, ["3", "4"])]


def test_single_column_file_is_comma() -> None:
    with open_table(b"Member CIN\n12345678A\n") as table:
        assert table.format == "csv" and [r.cells for r in table] == [["12345678A"]]


def test_header_cells_are_trimmed_and_trailing_empties_dropped() -> None:
    with open_table(b"\xef\xbb\xbf A , B ,,\r\n1,2,,\r\n") as table:
        assert table.headers == ["A", "B"]


@pytest.mark.parametrize("data", [b"", b"\r\n\r\n", b"   \n"])
def test_empty_file(data: bytes) -> None:
    with pytest.raises(FileFormatError, match="no header row"):
        open_table(data)


def test_binary_and_legacy_xls() -> None:
    with pytest.raises(FileFormatError, match="binary"):
        open_table(b"\x00\x01\x02abc")
    with pytest.raises(FileFormatError, match=r"\.xls"):
        open_table(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    with pytest.raises(FileFormatError, match="named like an XLSX"):
        open_table(b"A,B\n1,2\n", filename="report.xlsx")


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(FileFormatError, match="cannot read"):
        open_table(tmp_path / "missing.csv")
    with pytest.raises(FileFormatError, match="cannot read"):
        open_table(tmp_path)


def test_ten_megabyte_single_line_is_one_row_error() -> None:
    huge = b"x" * (10 * 1024 * 1024)
    data = b"A,B\r\n1,2\r\n3," + huge + b"\r\n4,5\r\n"
    with open_table(data) as table:
        rows = list(table)
    assert [(r.number, r.cells) for r in rows] == [(2, ["1", "2"]), (3, []), (4, ["4", "5"])]
    assert rows[1].error and str(MAX_LINE_CHARS) in rows[1].error


def test_ten_megabyte_line_without_newline_at_end() -> None:
    with open_table(b"A,B\n" + b"y" * (10 * 1024 * 1024)) as table:
        rows = list(table)
    assert len(rows) == 1 and rows[0].error


def test_big_field_under_line_limit_hits_the_csv_field_limit() -> None:
    with open_table(b"A,B\n1," + b"z" * 200_000 + b"\n2,3\n") as table:
        rows = list(table)
    assert rows[0].error == "the row is not valid delimited text" and rows[1].cells == ["2", "3"]


def test_unclosed_quote_does_not_swallow_the_file() -> None:
    body = b"".join(b"%d,row\n" % n for n in range(200_000))
    with open_table(b'A,B\n"1,open\n' + body) as table:
        rows = list(table)
    assert rows[0].error  # the open quote ran past the record limit
    assert rows[-1].cells == ["199999", "row"]


def test_header_line_too_long() -> None:
    with pytest.raises(FileFormatError, match="header line is too long"):
        open_table(b"A" * (MAX_LINE_CHARS + 10))
    with pytest.raises(FileFormatError, match="header row cannot be read"):
        open_table(b'"A,B\n' + b"x,y\n" * 2_000_000)


def test_memory_stays_flat_while_streaming_a_large_file(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    row = "12345678A,Doe,Jane,1 Main St,Sacramento,CA,95814,07/01/2025,3. Pending\r\n"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("CIN,Last,First,Address,City,State,Zip,Date,Status\r\n")
        for _ in range(250_000):
            out.write(row)
    assert path.stat().st_size > 15_000_000
    tracemalloc.start()
    try:
        with open_table(path) as table:
            count = sum(1 for _ in table)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 250_000 and peak < 5_000_000


def xlsx_bytes(rows: list[list[object]], title: str = "Sheet") -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_xlsx_cells_become_text(tmp_path: Path) -> None:
    data = xlsx_bytes([["Member CIN", "Date", "When", "Count", "Flag", "Ratio", None, None],
                       ["12345678A", date(2025, 7, 1), datetime(2025, 7, 1, 13, 5), 1234567893, True, 2.5],
                       [None, None],
                       ["=SUM(A1:A2)", "Zoë"]])
    path = tmp_path / "in.xlsx"
    path.write_bytes(data)
    with open_table(path) as table:
        assert (table.format, table.encoding) == ("xlsx", None)
        assert table.headers == ["Member CIN", "Date", "When", "Count", "Flag", "Ratio"]
        rows = list(table)
    assert rows[0] == RawRow(2, ["12345678A", "2025-07-01", "2025-07-01T13:05:00", "1234567893", "TRUE", "2.5",
                                 "", ""])
    assert rows[1] == RawRow(4, ["=SUM(A1:A2)", "Zoë", "", "", "", "", "", ""])


def test_xlsx_sheet_choice() -> None:
    workbook = openpyxl.Workbook()
    workbook.active.append(["Other"])
    workbook.create_sheet("RTF").append(["Member CIN"])
    out = io.BytesIO()
    workbook.save(out)
    with open_table(out.getvalue(), sheet="RTF") as table:
        assert table.headers == ["Member CIN"]
    with pytest.raises(FileFormatError, match="no sheet 'Nope'"):
        open_table(out.getvalue(), sheet="Nope")


@pytest.mark.parametrize("cut", [0.3, 0.6, 0.9, 0.99])
def test_truncated_xlsx(cut: float) -> None:
    data = xlsx_bytes([["Member CIN"], *([f"{n:08d}A"] for n in range(2000))])
    with pytest.raises(FileFormatError, match="damaged or truncated"), open_table(data[: int(len(data) * cut)]) as t:
        list(t)


def test_xlsx_with_damaged_sheet_xml() -> None:
    source = zipfile.ZipFile(io.BytesIO(xlsx_bytes([["Member CIN"], ["12345678A"], ["23456789B"]])))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            content = source.read(item)
            if item.filename == "xl/worksheets/sheet1.xml":
                content = content[: len(content) - 40]
            target.writestr(item, content)
    with pytest.raises(FileFormatError, match="damaged or truncated"), open_table(out.getvalue()) as table:
        list(table)


def test_empty_xlsx_sheet() -> None:
    with pytest.raises(FileFormatError, match="no header row"):
        open_table(xlsx_bytes([]))
