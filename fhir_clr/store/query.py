"""Backend-neutral data the store consumes: index entries written with each resource and the search AST.

The search layer (``fhir_clr.search``) produces these objects from SearchParameter definitions and query
strings; every store adapter (SQLite, MongoDB) compiles them into its own query language. Nothing here
knows about HTTP or FHIRPath, and nothing here imports from other fhir_clr packages.

Conventions shared by producers and adapters:

* ``param`` is the SearchParameter *code* as used on the resource type (``status``, ``owner``,
  ``authored-on``). Reference identifiers searched with ``:identifier`` are indexed as token entries whose
  param is ``"<code>:identifier"``.
* Instants are **epoch microseconds (UTC)**; a date range ``[lo, hi]`` is inclusive on both ends
  (``2024-05`` -> first and last microsecond of May 2024).
* Strings are indexed twice: ``norm`` (case-folded, accents stripped, whitespace collapsed) for the default
  starts-with and ``:contains`` searches, and ``exact`` for ``:exact``.
* References are normalised to ``Type/id`` for resources on this server; other absolute URLs and canonical
  URLs are kept as written (without ``|version`` for canonicals).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ParamType(StrEnum):
    """FHIR search parameter types the server indexes."""

    TOKEN = "token"
    REFERENCE = "reference"
    DATE = "date"
    STRING = "string"
    NUMBER = "number"
    QUANTITY = "quantity"
    URI = "uri"
    SPECIAL = "special"


@dataclass(slots=True)
class IndexEntries:
    """Pre-extracted search values of one resource version (only the current version is searchable)."""

    tokens: list[tuple[str, str | None, str]] = field(default_factory=list)
    """(param, system or None, code)."""
    references: list[tuple[str, str]] = field(default_factory=list)
    """(param, 'Type/id' or absolute/canonical URL)."""
    dates: list[tuple[str, int, int]] = field(default_factory=list)
    """(param, lo, hi) epoch microseconds, inclusive."""
    strings: list[tuple[str, str, str]] = field(default_factory=list)
    """(param, normalised, exact)."""
    numbers: list[tuple[str, float, float]] = field(default_factory=list)
    """(param, lo, hi): the value widened by its written precision."""
    quantities: list[tuple[str, float, float, str | None, str | None]] = field(default_factory=list)
    """(param, lo, hi, system, code)."""
    uris: list[tuple[str, str]] = field(default_factory=list)
    """(param, uri)."""

    def params(self) -> set[str]:
        """Every param that has at least one value (used for ``:missing``)."""
        found: set[str] = set()
        for rows in (self.tokens, self.references, self.dates, self.strings, self.numbers,
                     self.quantities, self.uris):
            found.update(row[0] for row in rows)
        return found


# --------------------------------------------------------------------------------------------------------
# Search values. Each condition holds values of one kind; several values in one condition are OR-ed.
# --------------------------------------------------------------------------------------------------------

class Prefix(StrEnum):
    """Comparison prefixes for ordered types (date, number, quantity)."""

    EQ = "eq"
    NE = "ne"
    GT = "gt"
    LT = "lt"
    GE = "ge"
    LE = "le"
    SA = "sa"
    EB = "eb"
    AP = "ap"


@dataclass(frozen=True, slots=True)
class TokenValue:
    """``system|code``. ``system`` None = any system; "" = no system. ``code`` None = any code (``sys|``)."""

    system: str | None
    code: str | None


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    """A reference search value: ``Type/id``, an absolute URL, or a bare id (``types`` lists the
    allowed target types for a bare id; empty means any type)."""

    ref: str
    bare_id: bool = False
    types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RangeValue:
    """An ordered value (date, number, quantity) with its implicit range ``[lo, hi]`` and a prefix.

    For quantities ``system``/``code`` restrict the unit when given."""

    prefix: Prefix
    lo: float
    hi: float
    system: str | None = None
    code: str | None = None


@dataclass(frozen=True, slots=True)
class StringValue:
    """A string search value, already normalised the same way as ``IndexEntries.strings[*][1]``
    (``raw`` keeps the original for ``:exact``)."""

    norm: str
    raw: str


@dataclass(frozen=True, slots=True)
class UriValue:
    """A uri search value."""

    uri: str


SearchValue = TokenValue | ReferenceValue | RangeValue | StringValue | UriValue


@dataclass(frozen=True, slots=True)
class Condition:
    """One search parameter occurrence: ``param[:modifier]=v1,v2`` (values OR-ed).

    ``param`` may be the special ``_id`` (TokenValue codes) or ``_lastUpdated`` (RangeValue), which
    adapters answer from resource columns. ``modifier`` is one of: None, ``missing`` (values hold one
    TokenValue whose code is ``true``/``false``), ``exact``, ``contains``, ``not``, ``identifier``,
    ``above``, ``below``. The ``:[type]`` reference modifier is expressed through ReferenceValue.types.
    """

    param: str
    type: ParamType
    values: tuple[SearchValue, ...]
    modifier: str | None = None


@dataclass(frozen=True, slots=True)
class ChainCondition:
    """``param:TargetType.inner`` — resources whose ``param`` references a ``target_type`` resource that
    matches ``inner``."""

    param: str
    target_type: str
    inner: Condition


@dataclass(frozen=True, slots=True)
class HasCondition:
    """Reverse chain ``_has:SourceType:param:inner`` — resources referenced (through ``param``) by some
    ``source_type`` resource matching ``inner``."""

    source_type: str
    param: str
    inner: Condition


@dataclass(frozen=True, slots=True)
class AnyOf:
    """OR of criteria (each a Condition, ChainCondition or HasCondition): a resource matches when at least
    one alternative does; no alternatives match nothing. Not produced from query strings: the access
    policy uses it to add "referrals this organization is party to" restrictions to a query."""

    alternatives: tuple[Condition | ChainCondition | HasCondition, ...]


Criterion = Condition | ChainCondition | HasCondition | AnyOf


@dataclass(frozen=True, slots=True)
class SortKey:
    """One ``_sort`` key. ``param`` ``_id``/``_lastUpdated`` are columns; others are indexed params."""

    param: str
    type: ParamType
    descending: bool = False


@dataclass(slots=True)
class Query:
    """A search against one resource type (``resource_type``), AND of ``criteria``.

    ``page_token`` is an opaque token the same store returned earlier in ``SearchPage.next_token`` /
    ``prev_token``; the store validates it. ``count`` is the page size (0 = no rows, only a count).
    """

    resource_type: str
    criteria: list[Criterion] = field(default_factory=list)
    sort: list[SortKey] = field(default_factory=list)
    count: int = 20
    page_token: str | None = None
