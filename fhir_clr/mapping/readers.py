"""Flat-file readers: CSV (comma, pipe or tab) and XLSX, streamed one row at a time.

``open_table`` reads the header row and returns a :class:`Table` that yields :class:`RawRow` lazily, so memory
stays flat in the file size. Text files are decoded per file: UTF-8 (with or without BOM, checked over the
whole file before the first row), else Windows-1252; UTF-16 with a BOM (Excel's "Unicode text") too. A row
too long to be real (one physical line over ``MAX_LINE_CHARS``, or a record over ``MAX_RECORD_CHARS`` as
when a quote is never closed) becomes a RawRow with ``error`` set and reading goes on with the next line.
Anything that is not a readable table raises :class:`FileFormatError` with a message fit for the user.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import IO, Any

MAX_LINE_CHARS = 1 << 20
"""Longest physical line read whole (1 Mi characters); longer lines are skipped and reported."""
MAX_RECORD_CHARS = 4 << 20
"""Longest record (all its physical lines, for quoted fields spanning lines)."""

_CHUNK = 1 << 20
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"
_DELIMITERS = {",": "csv", "|": "pipe", "\t": "tab"}


class FileFormatError(ValueError):
    """The file is not a table we can read; the message says why (and quotes no content)."""


@dataclass(frozen=True, slots=True)
class RawRow:
    """One data row: its number as a spreadsheet shows it (the header is row 1) and its cells as text."""

    number: int
    cells: list[str]
    error: str | None = None
    """Set when the row could not be read at all (then ``cells`` is empty)."""


class Table:
    """An open file: its header row, format and encoding, and its data rows (iterate once)."""

    def __init__(self, headers: list[str], fmt: str, encoding: str | None, rows: Iterator[RawRow],
                 resource: Any) -> None:
        self.headers = headers
        self.format = fmt
        """``csv``, ``pipe``, ``tab`` or ``xlsx``."""
        self.encoding = encoding
        """The text encoding used (None for XLSX)."""
        self._rows = rows
        self._resource = resource

    def __iter__(self) -> Iterator[RawRow]:
        return self._rows

    def close(self) -> None:
        """Release the file."""
        self._resource.close()

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_table(source: Path | bytes, filename: str | None = None, sheet: str | None = None) -> Table:
    """Open a CSV/pipe/tab/XLSX file (a path, or its bytes with an optional file name for the extension)."""
    name = filename or (source.name if isinstance(source, Path) else None)
    try:
        stream: IO[bytes] = source.open("rb") if isinstance(source, Path) else io.BytesIO(source)
    except OSError as exc:
        raise FileFormatError(f"cannot read the file ({exc.strerror})") from None
    try:
        head = stream.read(8)
        stream.seek(0)
        if head.startswith(_ZIP_MAGIC):
            return _open_xlsx(stream, sheet)
        if head.startswith(_OLE_MAGIC):
            raise FileFormatError("legacy Excel .xls files are not supported: save the file as .xlsx or CSV")
        if name and name.lower().endswith((".xlsx", ".xlsm")):
            raise FileFormatError("the file is named like an XLSX workbook but is not one")
        return _open_text(stream)
    except BaseException:
        stream.close()
        raise


def _open_text(stream: IO[bytes]) -> Table:
    encoding = _detect_encoding(stream)
    text = io.TextIOWrapper(stream, encoding=encoding, newline="")
    lines = _Lines(text)
    try:
        first = next(lines, "")
    except _RowTooLong:
        raise FileFormatError("the header line is too long to be a header row") from None
    if not first.strip():
        raise FileFormatError("the file is empty or its first line is blank: no header row")
    delimiter = _sniff_delimiter(first)
    lines.push_back(first)
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        headers = _trim([cell.strip() for cell in next(reader)])
    except (csv.Error, _RowTooLong):
        raise FileFormatError("the header row cannot be read as delimited text") from None
    lines.record_started()
    return Table(headers, _DELIMITERS[delimiter], encoding, _text_rows(reader, lines), text)


def _detect_encoding(stream: IO[bytes]) -> str:
    """The encoding the whole file decodes with: BOM first, then UTF-8, then Windows-1252."""
    head = stream.read(4)
    stream.seek(0)
    if head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        candidates = ["utf-16"]
    else:
        if b"\x00" in stream.read(_CHUNK):
            raise FileFormatError("the file is binary, not delimited text or XLSX")
        stream.seek(0)
        candidates = ["utf-8", "cp1252"]
    for encoding in candidates:
        if _decodes(stream, encoding):
            return encoding
    raise FileFormatError("the text is neither UTF-8 nor Windows-1252")


def _decodes(stream: IO[bytes], encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        while chunk := stream.read(_CHUNK):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
        return True
    except UnicodeDecodeError:
        return False
    finally:
        stream.seek(0)


def _sniff_delimiter(line: str) -> str:
    """The delimiter among comma, pipe and tab that occurs most often outside quotes in the header line."""
    counts = dict.fromkeys(_DELIMITERS, 0)
    quoted = False
    for char in line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


class _RowTooLong(Exception):
    """Raised through the csv reader when a line or record exceeds the limits."""


class _Lines:
    """The physical lines of a text stream, each at most ``MAX_LINE_CHARS`` long (the rest is skipped).

    A class, not a generator: it raises :class:`_RowTooLong` through the csv reader and keeps going after.
    """

    def __init__(self, text: io.TextIOWrapper) -> None:
        self._readline = text.readline
        self._record = 0
        self._pending: str | None = None

    def __iter__(self) -> _Lines:
        return self

    def push_back(self, line: str) -> None:
        """Make ``line`` the next line returned again."""
        self._pending = line

    def __next__(self) -> str:
        if self._pending is not None:
            line, self._pending = self._pending, None
            return line
        line = self._readline(MAX_LINE_CHARS + 1)
        if not line:
            raise StopIteration
        if len(line) > MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
            while (rest := self._readline(_CHUNK)) and not rest.endswith(("\n", "\r")):
                pass
            raise _RowTooLong(f"a line is longer than {MAX_LINE_CHARS} characters")
        self._record += len(line)
        if self._record > MAX_RECORD_CHARS:
            raise _RowTooLong(f"a row is longer than {MAX_RECORD_CHARS} characters (is a quote left open?)")
        return line

    def record_started(self) -> None:
        """Start counting the characters of a new record."""
        self._record = 0


def _text_rows(reader: Any, lines: _Lines) -> Iterator[RawRow]:
    number = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except (_RowTooLong, csv.Error) as exc:
            number += 1
            lines.record_started()
            message = str(exc) if isinstance(exc, _RowTooLong) else "the row is not valid delimited text"
            yield RawRow(number, [], message)
            continue
        number += 1
        lines.record_started()
        if any(cells):
            yield RawRow(number, cells)


def _open_xlsx(stream: IO[bytes], sheet: str | None) -> Table:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(stream, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a damaged zip or XML
        raise FileFormatError(f"the XLSX workbook is damaged or truncated ({type(exc).__name__})") from None
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise FileFormatError(f"the workbook has no sheet {sheet!r} (sheets: {', '.join(workbook.sheetnames)})")
        worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        rows = _xlsx_guard(worksheet.iter_rows(values_only=True))
        header = next(rows, None)
        headers = _trim([_cell_text(v).strip() for v in header or ()])
        if not any(headers):
            raise FileFormatError("the first row of the sheet is empty: no header row")
    except BaseException:
        workbook.close()
        raise
    return Table(headers, "xlsx", None, _xlsx_rows(rows), workbook)


def _xlsx_guard(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    try:
        yield from rows
    except Exception as exc:  # a truncated sheet fails while streaming
        raise FileFormatError(f"the XLSX sheet is damaged or truncated ({type(exc).__name__})") from None


def _xlsx_rows(rows: Iterator[tuple[Any, ...]]) -> Iterator[RawRow]:
    for number, values in enumerate(rows, 2):
        cells = [_cell_text(v) for v in values]
        if any(cells):
            yield RawRow(number, cells)


def _cell_text(value: Any) -> str:
    """An XLSX cell as the text a CSV export of it would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time() else value.isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def _trim(headers: list[str]) -> list[str]:
    """Headers without the empty cells trailing the last named one."""
    while headers and not headers[-1]:
        headers.pop()
    return headers
