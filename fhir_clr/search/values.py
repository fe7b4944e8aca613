"""Value parsing shared by the index side (extraction) and the query side (search values), so both always
agree: FHIR date/dateTime/instant strings as inclusive epoch-microsecond ranges, string normalisation, and
the implicit range of a decimal written with a given precision."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from datetime import date
from decimal import Decimal, InvalidOperation

MIN_US = -62135596800 * 1_000_000
"""0001-01-01T00:00:00Z: the low end of an open-started Period."""
MAX_US = 253402300799 * 1_000_000 + 999_999
"""9999-12-31T23:59:59.999999Z: the high end of an open-ended Period."""

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_US = 86_400_000_000
_DATE_RE = re.compile(
    r"(\d{4})(?:-(\d{2})(?:-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_WHITESPACE_RE = re.compile(r"\s+")
_TYPE_ID_RE = re.compile(r"[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}")


def _days_in_month(year: int, month: int) -> int:
    if month == 12:
        return 31
    return (date(year, month + 1, 1) - date(year, month, 1)).days


def parse_date_range(text: str) -> tuple[int, int]:
    """The inclusive ``(lo, hi)`` epoch-microsecond range a FHIR date, dateTime or instant stands for.

    The range follows the written precision (``2024`` is the whole year, ``2024-05-17T10:00:00.5Z`` the
    tenth of a second). A time without an offset is taken as UTC. Raises ValueError for anything else.
    """
    match = _DATE_RE.fullmatch(text)
    if match is None:
        raise ValueError("not a FHIR date, dateTime or instant")
    year_s, month_s, day_s, hour_s, minute_s, second_s, fraction, offset = match.groups()
    year = int(year_s)
    if year == 0:
        raise ValueError("year 0000 is not valid")
    month = int(month_s) if month_s else 1
    day = int(day_s) if day_s else 1
    try:
        start_day = date(year, month, day).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        raise ValueError("calendar date out of range") from None
    if hour_s is None:
        if day_s:
            days = 1
        elif month_s:
            days = _days_in_month(year, month)
        else:
            days = 366 if (year % 4 == 0 and year % 100 != 0) or year % 400 == 0 else 365
        lo = start_day * _DAY_US
        return lo, lo + days * _DAY_US - 1
    hour, minute, second = int(hour_s), int(minute_s), int(second_s or 0)
    if hour > 23 or minute > 59 or second > 59:
        raise ValueError("time of day out of range")
    lo = start_day * _DAY_US + ((hour * 60 + minute) * 60 + second) * 1_000_000
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 14 or off_m > 59:
            raise ValueError("timezone offset out of range")
        lo -= sign * (off_h * 60 + off_m) * 60_000_000
    if second_s is None:
        width = 60_000_000
    elif fraction:
        digits = fraction[:6]
        lo += int(digits.ljust(6, "0"))
        width = 10 ** (6 - len(digits))
    else:
        width = 1_000_000
    return lo, lo + width - 1


def normalize_string(text: str) -> str:
    """Case-folded, accent-stripped, whitespace-collapsed form used for string search."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch)) if not decomposed.isascii() \
        else decomposed
    return _WHITESPACE_RE.sub(" ", stripped.casefold()).strip()


def number_range(text: str) -> tuple[float, float]:
    """The inclusive implicit range of a decimal as written: half a unit of its last digit either side
    (``100`` -> [99.5, 100.5], ``1.50`` -> [1.495, 1.505], ``1e2`` -> [50, 150]). ValueError if not a number."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ValueError("not a decimal number") from None
    if not value.is_finite():
        raise ValueError("not a finite number")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # a finite Decimal's exponent is a number ("n", "N", "F": NaN, infinity)
    half = Decimal(5).scaleb(exponent - 1)
    return float(value - half), float(value + half)


def json_number_range(value: int | float) -> tuple[float, float]:
    """``number_range`` for a number already parsed from JSON (its shortest written form is used)."""
    return number_range(repr(value) if isinstance(value, float) else str(value))


def local_prefixes(base_urls: Sequence[str]) -> tuple[str, ...]:
    """The URL prefixes (``base + "/"``) under which absolute references point at this server."""
    return tuple(url.rstrip("/") + "/" for url in base_urls if url)


def normalize_reference(reference: str, prefixes: tuple[str, ...] = ()) -> str | None:
    """A reference as the index stores it: ``Type/id`` for relative references and absolute ones under one
    of ``prefixes`` (see ``local_prefixes``), other URLs as written, None for contained (``#id``) and empty
    references. A ``/_history/n`` suffix is dropped."""
    if not reference or reference.startswith("#"):
        return None
    cut = reference.find("/_history/")
    if cut > 0:
        reference = reference[:cut]
    for prefix in prefixes:
        if reference.startswith(prefix):
            local = reference[len(prefix):]
            if _TYPE_ID_RE.fullmatch(local):
                return local
    return reference


def is_local_reference(reference: str) -> bool:
    """True for a normalised ``Type/id`` reference."""
    return _TYPE_ID_RE.fullmatch(reference) is not None
