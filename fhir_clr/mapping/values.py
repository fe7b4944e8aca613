"""Cell values: text from a file to a typed value (``parse_cell``) and back (``format_cell``).

Parsing never raises: a bad cell becomes a :class:`CellError` whose ``message`` says what rule failed without
quoting the cell (messages may reach logs); the raw text travels separately in ``CellError.value`` for the
row report. ``compile_parser`` makes a column's parser for one file: it remembers (up to a bound) the cells it
has parsed, so the repetitive columns of a file (dates, codes, provider, plan) cost a dictionary lookup, and
the memory goes away with the file.

Spreadsheet formulas: a cell starting with ``=``, ``+``, ``-`` or ``@`` is refused (``+``/``-`` are fine on
phone and integer columns when the rest is a number). On output such text is written behind a ``'``, and on
input a ``'`` in front of it is removed again, so any value survives a write and a read unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

from fhir_clr.mapping.spec import ColumnSpec

TYPES = ("string", "date", "code", "phone", "email", "integer", "boolean", "npi", "cin")
"""The column types a mapping spec may use."""

DATE_FORMATS: dict[str, str] = {"MM/DD/YYYY": "{m:02d}/{d:02d}/{y:04d}", "MM-DD-YYYY": "{m:02d}-{d:02d}-{y:04d}",
                                "YYYY-MM-DD": "{y:04d}-{m:02d}-{d:02d}"}
"""Output formats of date columns (each one is also accepted on input)."""
DEFAULT_DATE_FORMAT = "MM/DD/YYYY"
CODE_FORMATS = ("display", "code", "code-display")
"""How a code column is written: its label, its code, or ``code. label`` (``3. Pending``)."""
DEFAULT_BOOLEAN_FORMAT = "Y/N"
TRUE_WORDS = frozenset({"y", "yes", "true", "t", "1"})
FALSE_WORDS = frozenset({"n", "no", "false", "f", "0"})

_FORMULA_START = frozenset("=+-@")
_SIGNED_TYPES = frozenset({"phone", "integer"})
_QUOTED_FORMULA = re.compile(r"^'+[=+\-@]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_US_DATE = re.compile(r"^(\d{1,2})[/-](\d{1,2})[/-](\d{4})$", re.ASCII)
_ISO_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})([T ].+)?$", re.ASCII)
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_DIGITS = re.compile(r"^\d+$", re.ASCII)
_INTEGER = re.compile(r"^[+-]?\d+$", re.ASCII)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_NPI = re.compile(r"^\d{10}$", re.ASCII)
_CACHE_LIMIT = 4096


@dataclass(frozen=True, slots=True)
class CellError:
    """Why one cell (or, with ``column`` None, a whole row) was refused."""

    column: str | None
    rule: str
    """A short rule id: required, formula, date, code, phone, email, integer, boolean, npi, pattern…"""
    message: str
    """Human-readable, and free of the cell's content."""
    value: str | None = None
    """The raw cell text, for the row report only (never logged)."""


@dataclass(frozen=True, slots=True)
class ParsedCell:
    """The outcome of parsing one cell: a typed value (None when empty), or an error."""

    value: Any = None
    error: CellError | None = None

    @property
    def ok(self) -> bool:
        """True when the cell parsed."""
        return self.error is None


class InvalidCell(Exception):
    """Raised by a compiled parser; ``parse_cell`` and ``parse_row`` turn it into a :class:`CellError`."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


def parse_cell(column: ColumnSpec, raw: str | None) -> ParsedCell:
    """The typed value of ``raw`` for ``column``; never raises."""
    try:
        return ParsedCell(compile_parser(column)(raw or ""))
    except InvalidCell as invalid:
        return ParsedCell(None, CellError(column.name, invalid.rule, invalid.message, raw))


def format_cell(column: ColumnSpec, value: Any) -> str:
    """The text written for ``value`` in ``column`` (empty for None), safe to open in a spreadsheet."""
    if value is None:
        return ""
    text = _formatter(column)(value)
    if column.type != "integer" and text and (text[0] in _FORMULA_START or _QUOTED_FORMULA.match(text)):
        return "'" + text
    return text


def compile_parser(column: ColumnSpec) -> Callable[[str], Any]:
    """A function from raw cell text to the column's typed value, raising :class:`InvalidCell`.

    Compile one per file: the function keeps the values it parsed, keyed by raw text, up to a bound.
    """
    typed = _TYPED[column.type](column)
    required, default, signed = column.required, column.default, column.type in _SIGNED_TYPES
    seen: dict[str, Any] = {}

    def parse(raw: str) -> Any:
        value = seen.get(raw)
        if value is not None:
            return value
        text = raw.strip()
        if not text:
            if default is not None:
                return default
            if required:
                raise InvalidCell("required", "a value is required")
            return None
        if text[0] in _FORMULA_START or text[0] == "'":
            text = _defuse(text, signed)
        value = typed(text)
        if len(seen) < _CACHE_LIMIT:
            seen[raw] = value
        return value

    return parse


def _defuse(text: str, signed: bool) -> str:
    """``text`` without the ``'`` that protects a formula-looking value; refuses an unprotected formula."""
    if text[0] == "'":
        return text[1:] if _QUOTED_FORMULA.match(text) else text
    if text[0] in "=@" or not signed:
        raise InvalidCell("formula", "the cell looks like a spreadsheet formula")
    return text


def _limited(column: ColumnSpec, check: Callable[[str], str]) -> Callable[[str], str]:
    """Wrap a text check with the column's pattern and maximum length."""
    pattern = re.compile(column.pattern) if column.pattern else None
    limit = column.max_length
    if pattern is None and limit is None:
        return check

    def parse(text: str) -> str:
        value = check(text)
        if limit is not None and len(value) > limit:
            raise InvalidCell("max-length", f"longer than {limit} characters")
        if pattern is not None and not pattern.fullmatch(value):
            raise InvalidCell("pattern", f"does not match the pattern of {column.header}")
        return value

    return parse


def _string(column: ColumnSpec) -> Callable[[str], str]:
    def check(text: str) -> str:
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        if not text.isprintable() and _CONTROL.search(text):
            raise InvalidCell("control-character", "contains a control character")
        return text

    return _limited(column, check)


def _cin(column: ColumnSpec) -> Callable[[str], str]:
    return _limited(column, str.upper)


def _email(column: ColumnSpec) -> Callable[[str], str]:
    def check(text: str) -> str:
        if not _EMAIL.match(text):
            raise InvalidCell("email", "not an email address")
        return text

    return _limited(column, check)


def _npi(column: ColumnSpec) -> Callable[[str], str]:
    def check(text: str) -> str:
        if not _NPI.match(text):
            raise InvalidCell("npi", "an NPI has 10 digits")
        if not npi_check_digit_ok(text):
            raise InvalidCell("npi", "the NPI check digit is wrong")
        return text

    return check


def npi_check_digit_ok(npi: str) -> bool:
    """Luhn check of a 10-digit NPI with the ``80840`` card-issuer prefix (CMS NPI check digit rule)."""
    total = 24  # the doubled-and-summed digits of the 80840 prefix
    for position, char in enumerate(reversed(npi[:9])):
        digit = int(char)
        if position % 2 == 0:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return (10 - total % 10) % 10 == int(npi[9])


def _phone(column: ColumnSpec) -> Callable[[str], str]:
    def check(text: str) -> str:
        compact = _PHONE_PUNCTUATION.sub("", text)
        international = compact.startswith("+")
        digits = compact[1:] if international else compact
        if not _DIGITS.match(digits):
            raise InvalidCell("phone", "a phone number has digits, spaces, ( ) - . / and an optional leading +")
        if len(digits) == 11 and digits[0] == "1":
            digits = digits[1:]
        if len(digits) == 10 and (not international or len(compact) == 12):
            return digits
        if international and 8 <= len(digits) <= 15:
            return "+" + digits
        raise InvalidCell("phone", "a US phone number has 10 digits")

    return check


def _integer(column: ColumnSpec) -> Callable[[str], int]:
    def check(text: str) -> int:
        if not _INTEGER.match(text):
            raise InvalidCell("integer", "not a whole number")
        value = int(text)
        if not -(2**31) <= value < 2**31:
            raise InvalidCell("integer", "outside the range of a FHIR integer")
        return value

    return check


def _boolean(column: ColumnSpec) -> Callable[[str], bool]:
    def check(text: str) -> bool:
        word = text.casefold()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise InvalidCell("boolean", "expected Y/N, Yes/No, True/False or 1/0")

    return check


def _date(column: ColumnSpec) -> Callable[[str], date]:
    def check(text: str) -> date:
        found = parse_date_text(text)
        if found is None:
            raise InvalidCell("date", "not a date (MM/DD/YYYY, MM-DD-YYYY, M/D/YYYY or ISO 8601)")
        return found

    return check


def parse_date_text(text: str) -> date | None:
    """The date ``text`` names (``MM/DD/YYYY``, ``MM-DD-YYYY``, ``M/D/YYYY``, ISO 8601 date or dateTime)."""
    try:
        us = _US_DATE.match(text)
        if us:
            return date(int(us[3]), int(us[1]), int(us[2]))
        iso = _ISO_DATE.match(text)
        if iso is None:
            return None
        if iso[4]:
            return datetime.fromisoformat(text).date()
        return date(int(iso[1]), int(iso[2]), int(iso[3]))
    except ValueError:
        return None


def _code(column: ColumnSpec) -> Callable[[str], str]:
    codes = column.code_list
    assert codes is not None  # the spec loader resolves every code column's list

    def check(text: str) -> str:
        concept = codes.find(text)
        if concept is None:
            raise InvalidCell("code", f"not a code or label of {codes.title}")
        return concept.code

    return check


_TYPED: dict[str, Callable[[ColumnSpec], Callable[[str], Any]]] = {
    "string": _string, "cin": _cin, "email": _email, "npi": _npi, "phone": _phone, "integer": _integer,
    "boolean": _boolean, "date": _date, "code": _code,
}


def boolean_labels(fmt: str) -> tuple[str, str]:
    """The (true, false) labels of a boolean format such as ``Y/N``; ValueError when they would not read back."""
    labels = fmt.split("/")
    if len(labels) != 2 or labels[0].casefold() not in TRUE_WORDS or labels[1].casefold() not in FALSE_WORDS:
        raise ValueError(f"a boolean format is TRUE/FALSE labels that read back ({'/'.join(sorted(TRUE_WORDS))} "
                         f"and {'/'.join(sorted(FALSE_WORDS))}), e.g. Y/N")
    return labels[0], labels[1]


def check_phone_format(fmt: str) -> None:
    """ValueError unless ``fmt`` is a layout of ten ``#`` with spaces and ``( ) - . /`` between them."""
    if fmt.count("#") != 10 or _PHONE_PUNCTUATION.sub("", fmt) != "#" * 10:
        raise ValueError("a phone format has ten # and only spaces ( ) - . / between them, e.g. (###) ###-####")


@cache
def _formatter(column: ColumnSpec) -> Callable[[Any], str]:
    """The function that writes a typed value of ``column`` as text (before formula protection)."""
    if column.type == "date":
        template = DATE_FORMATS[column.format or DEFAULT_DATE_FORMAT]
        return lambda value: template.format(y=value.year, m=value.month, d=value.day) \
            if isinstance(value, date) else str(value)
    if column.type == "boolean":
        yes, no = boolean_labels(column.format or DEFAULT_BOOLEAN_FORMAT)
        return lambda value: yes if value else no
    if column.type == "code":
        return _code_formatter(column)
    if column.type == "phone" and column.format:
        layout = column.format.replace("#", "{}")
        return lambda value: layout.format(*value) if len(value) == 10 and value.isdigit() else value
    return str


def _code_formatter(column: ColumnSpec) -> Callable[[Any], str]:
    codes, style = column.code_list, column.format or "display"
    assert codes is not None

    def write(code: Any) -> str:
        concept = codes.concepts.get(code)
        if concept is None:
            return str(code)
        if style == "code":
            return concept.code
        if style == "code-display":
            return f"{concept.code}. {concept.display}"
        return concept.display

    return write
