"""Header rows: match a file's headers to a spec's columns by normalized name or alias.

``Member Client Index Number (CIN)``, ``member client index number cin`` and ``MEMBER_CLIENT-INDEX NUMBER CIN``
are the same header: case, spacing, punctuation, a byte-order mark and compatibility forms do not count.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from fhir_clr.mapping.spec import MappingSpec

_NOT_WORD = re.compile(r"[\W_]+")


def normalize_header(text: str) -> str:
    """The comparison form of a header: NFKC, case-folded, words of letters/digits joined by single spaces."""
    return _NOT_WORD.sub(" ", unicodedata.normalize("NFKC", text.replace("\ufeff", "")).casefold()).strip()


@dataclass(slots=True)
class HeaderMatch:
    """Which file column holds each spec column, and what did not match."""

    indexes: dict[str, int]
    """Column name → 0-based position in the file's rows."""
    missing: list[str]
    """Required columns (without a default) that no header names: the file cannot be imported."""
    absent: list[str]
    """Optional columns that no header names (their cells read as empty)."""
    extra: list[str]
    """Headers that name no column (reported, not fatal)."""
    duplicates: list[str]
    """Headers naming a column an earlier header already named (the first one is used)."""
    width: int
    """How many headers the file has."""
    plan: Any = field(default=None, repr=False, compare=False)
    """Parsing plan cached by :func:`fhir_clr.mapping.rows.parse_row`."""

    @property
    def ok(self) -> bool:
        """True when every required column is present."""
        return not self.missing


def match_headers(spec: MappingSpec, headers: list[str]) -> HeaderMatch:
    """Match ``headers`` (a file's header row) against the columns of ``spec``."""
    by_label = {normalize_header(label): column.name
                for column in spec.columns for label in (column.header, *column.aliases)}
    known = {normalize_header(label) for label in spec.known_extra}
    indexes: dict[str, int] = {}
    extra: list[str] = []
    duplicates: list[str] = []
    for position, header in enumerate(headers):
        normalized = normalize_header(header)
        if not normalized or normalized in known:
            continue
        name = by_label.get(normalized)
        if name is None:
            extra.append(header)
        elif name in indexes:
            duplicates.append(header)
        else:
            indexes[name] = position
    unmatched = [c for c in spec.columns if c.name not in indexes]
    return HeaderMatch(indexes=indexes,
                       missing=[c.name for c in unmatched if c.required and c.default is None],
                       absent=[c.name for c in unmatched if not (c.required and c.default is None)],
                       extra=extra, duplicates=duplicates, width=len(headers))
