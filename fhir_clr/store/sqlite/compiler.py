"""Compile search criteria and sort keys (``fhir_clr.store.query``) into SQLite fragments.

Every value is a bound parameter; only table/column names chosen here appear in the SQL text. A compiled
criterion has two forms:

* ``probe`` — a boolean expression about one ``resources`` row, written against the alias placeholder
  ``{a}`` (bound with ``Fragment.on``): a correlated ``EXISTS`` on the rid-clustered index table, cheap per row;
* ``driver`` — a ``SELECT rid ...`` answered from the ``(param, value, rid)`` covering index, used to drive a
  query from a selective criterion (None for negations, which cannot drive).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fhir_clr.store.port import UnsupportedSearch
from fhir_clr.store.query import (
    AnyOf,
    ChainCondition,
    Condition,
    Criterion,
    HasCondition,
    ParamType,
    Prefix,
    RangeValue,
    ReferenceValue,
    SearchValue,
    SortKey,
    StringValue,
    TokenValue,
    UriValue,
)
from fhir_clr.store.sqlite.schema import INDEX_TABLES

ALIAS = "{a}"
TOKEN_CODE_INDEX = "idx_token_code"
"""The ``(param, code, rid, system)`` index of token rows. Probes of a criterion that names its codes read it
rather than the rid-clustered table: the rows of one code are few pages in rid order, so probing the rids of a
driver (which come in rid order) touches those pages again and again instead of a page of the large table per
rid (``Task?owner=…&status=requested`` on a store of 1,000,000 resources: 4 times less time for the total)."""


@dataclass(slots=True, frozen=True)
class Fragment:
    """SQL text and its bound parameters, in order."""

    sql: str
    params: tuple[Any, ...] = ()

    def on(self, alias: str) -> Fragment:
        """This fragment with the row placeholder bound to a table alias."""
        return Fragment(self.sql.replace(ALIAS, alias), self.params)


TRUE = Fragment("1")
FALSE = Fragment("0")


@dataclass(slots=True, frozen=True)
class Compiled:
    """One compiled criterion (see module docstring). ``rank`` orders candidate drivers for estimation:
    lower ranks are usually more selective. ``rid_only`` probes read nothing but ``{a}.rid``, so they can be
    checked on index rows before the resources row is fetched."""

    probe: Fragment
    driver: Fragment | None = None
    rank: int = 9
    rid_only: bool = False


@dataclass(slots=True, frozen=True)
class SortTerm:
    """One ORDER BY term over the main alias ``r``; ``nullable`` terms sort missing values last."""

    expr: Fragment
    descending: bool
    nullable: bool


def successor(text: str) -> str:
    """The smallest string greater than every string starting with ``text`` (for prefix ranges)."""
    chars = list(text)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1 if last + 1 != 0xD800 else 0xE000
            return "".join(chars) + chr(nxt)
    return "\U0010ffff" * 2


MAX_UNION_TERMS = 400
"""SQLite refuses a compound SELECT of more than 500 terms: longer value lists share terms (OR-ed)."""


def join_balanced(parts: list[Fragment], glue: str) -> Fragment:
    """``parts`` joined by ``glue`` as a balanced tree: SQLite parses ``a OR b OR c…`` one level deeper per
    term and refuses past depth 1000, so hundreds of OR-ed values would otherwise fail."""
    if len(parts) <= 8:
        return Fragment(glue.join(f"({p.sql})" for p in parts), tuple(x for p in parts for x in p.params))
    middle = len(parts) // 2
    return join_balanced([join_balanced(parts[:middle], glue), join_balanced(parts[middle:], glue)], glue)


class CriteriaCompiler:
    """Compiles criteria of one query. ``now_us`` anchors the ``ap`` prefix for dates."""

    def __init__(self, now_us: int) -> None:
        self.now_us = now_us

    def compile(self, criterion: Criterion, resource_type: str) -> Compiled:
        """Compile a criterion of a query on ``resource_type``."""
        if isinstance(criterion, ChainCondition):
            return self._chain(criterion)
        if isinstance(criterion, HasCondition):
            return self._has(criterion, resource_type)
        if isinstance(criterion, AnyOf):
            return self._any_of(criterion, resource_type)
        return self.condition(criterion, resource_type)

    def _any_of(self, any_of: AnyOf, resource_type: str) -> Compiled:
        """OR of alternatives: probes OR-ed; it can drive only when every alternative can (rid union)."""
        parts = [self.compile(alt, resource_type) for alt in any_of.alternatives]
        if not parts:
            return Compiled(FALSE, rid_only=True)
        probe = join_balanced([p.probe for p in parts], " OR ")
        drivers = [p.driver for p in parts if p.driver is not None]
        driver = None
        if len(drivers) == len(parts):
            driver = Fragment(" UNION ALL ".join(d.sql for d in drivers), tuple(x for d in drivers for x in d.params))
        return Compiled(probe, driver, max(p.rank for p in parts), rid_only=all(p.rid_only for p in parts))

    def condition(self, cond: Condition, resource_type: str) -> Compiled:
        """Compile a plain condition (values OR-ed)."""
        if cond.param == "_id":
            return self._id(cond, resource_type)
        if cond.param == "_lastUpdated":
            return self._last_updated(cond)
        table = INDEX_TABLES.get(cond.type)
        if table is None:
            raise UnsupportedSearch(f"{cond.type.value} parameters cannot be searched ({cond.param})")
        if cond.modifier == "missing":
            return _missing(table, cond.param, _missing_wanted(cond))
        if cond.modifier not in (None, "not", "identifier", "exact", "contains", "above", "below"):
            raise UnsupportedSearch(f"the :{cond.modifier} modifier is not supported")
        param = f"{cond.param}:identifier" if cond.modifier == "identifier" else cond.param
        alts = [self._value(cond.type, cond.modifier, value) for value in cond.values]
        rank = {ParamType.REFERENCE: 1, ParamType.TOKEN: 2}.get(cond.type, 4)
        by_code = cond.type is ParamType.TOKEN and cond.modifier in (None, "not", "identifier") \
            and all(isinstance(v, TokenValue) and v.code is not None for v in cond.values)
        return _index_criterion(table, param, alts, negate=cond.modifier == "not", rank=rank,
                                probe_index=TOKEN_CODE_INDEX if by_code else None)

    # ---- special columns ------------------------------------------------------------------------------

    @staticmethod
    def _id(cond: Condition, resource_type: str) -> Compiled:
        if cond.modifier == "missing":
            return Compiled(FALSE if _missing_wanted(cond) else TRUE)
        codes = [v.code for v in cond.values if isinstance(v, TokenValue)]
        if any(code is None for code in codes):
            return Compiled(FALSE if cond.modifier == "not" else TRUE)
        marks = ", ".join("?" * len(codes))
        if cond.modifier == "not":
            return Compiled(Fragment(f"{ALIAS}.id NOT IN ({marks})", tuple(codes)))
        if cond.modifier is not None:
            raise UnsupportedSearch(f"the :{cond.modifier} modifier does not apply to _id")
        return Compiled(Fragment(f"{ALIAS}.id IN ({marks})", tuple(codes)),
                        Fragment(f"SELECT rid FROM resources WHERE type = ? AND id IN ({marks})",
                                 (resource_type, *codes)), rank=0)

    def _last_updated(self, cond: Condition) -> Compiled:
        if cond.modifier == "missing":
            return Compiled(FALSE if _missing_wanted(cond) else TRUE)
        column = f"{ALIAS}.last_updated_us"
        alts = [self._range(v, column, column, is_date=True) for v in cond.values if isinstance(v, RangeValue)]
        probe = join_balanced(alts, " OR ") if alts else FALSE
        if cond.modifier == "not":
            return Compiled(Fragment(f"NOT ({probe.sql})", probe.params))
        if cond.modifier is not None:
            raise UnsupportedSearch(f"the :{cond.modifier} modifier does not apply to _lastUpdated")
        return Compiled(probe)

    # ---- chains -----------------------------------------------------------------------------------------

    def _chain(self, chain: ChainCondition) -> Compiled:
        inner = self.condition(chain.inner, chain.target_type)
        if inner.driver is not None:
            match = Fragment(f"+t.type = ? AND +t.deleted = 0 AND t.rid IN ({inner.driver.sql})",
                             (chain.target_type, *inner.driver.params))
        else:
            probe = inner.probe.on("t")
            match = Fragment(f"t.type = ? AND t.deleted = 0 AND ({probe.sql})", (chain.target_type, *probe.params))
        targets = (f"(SELECT ? || t.id FROM resources t WHERE {match.sql})", (f"{chain.target_type}/", *match.params))
        driving = _index_criterion("idx_reference", chain.param, [Fragment(f"ref IN {targets[0]}", targets[1])],
                                   negate=False, rank=3)
        # Checked row by row, the row's own references are read by key and looked up in the target list
        # (``+ref`` keeps SQLite from probing the value index once per target instead).
        checking = _index_criterion("idx_reference", chain.param, [Fragment(f"+ref IN {targets[0]}", targets[1])],
                                    negate=False, rank=3)
        return Compiled(checking.probe, driving.driver, 3, rid_only=True)

    def _has(self, has: HasCondition, resource_type: str) -> Compiled:
        inner = self.condition(has.inner, has.source_type)
        if inner.driver is not None:
            match = Fragment(f"+s.type = ? AND x.rid IN ({inner.driver.sql})", (has.source_type, *inner.driver.params))
        else:
            probe = inner.probe.on("s")
            match = Fragment(f"s.type = ? AND ({probe.sql})", (has.source_type, *probe.params))
        prefix = f"{resource_type}/"
        ids = Fragment(
            "SELECT substr(x.ref, ?) FROM idx_reference x JOIN resources s ON s.rid = x.rid "
            f"WHERE x.param = ? AND x.ref >= ? AND x.ref < ? AND {match.sql}",
            (len(prefix) + 1, has.param, prefix, successor(prefix), *match.params))
        return Compiled(Fragment(f"{ALIAS}.id IN ({ids.sql})", ids.params),
                        Fragment(f"SELECT rid FROM resources WHERE type = ? AND id IN ({ids.sql})",
                                 (resource_type, *ids.params)), rank=3)

    # ---- values -----------------------------------------------------------------------------------------

    def _value(self, ptype: ParamType, modifier: str | None, value: SearchValue) -> Fragment:
        if isinstance(value, TokenValue):
            return _token(value)
        if isinstance(value, ReferenceValue):
            return _reference(value)
        if isinstance(value, StringValue):
            return _string(value, modifier)
        if isinstance(value, UriValue):
            return _uri(value, modifier)
        if isinstance(value, RangeValue):
            found = self._range(value, "lo", "hi", is_date=ptype is ParamType.DATE)
            if ptype is not ParamType.QUANTITY:
                return found
            extra = [(col, v) for col, v in (("system", value.system), ("code", value.code)) if v is not None]
            sql = " AND ".join([f"({found.sql})", *(f"{col} = ?" for col, _ in extra)])
            return Fragment(sql, (*found.params, *(v for _, v in extra)))
        raise UnsupportedSearch(f"unexpected search value {type(value).__name__}")

    def _range(self, value: RangeValue, lo: str, hi: str, *, is_date: bool) -> Fragment:
        """FHIR R4 prefix semantics between the stored range [lo, hi] and the search range."""
        slo, shi = (int(value.lo), int(value.hi)) if is_date else (value.lo, value.hi)
        contained = (f"{lo} >= ? AND {hi} <= ?", (slo, shi))
        match value.prefix:
            case Prefix.EQ:
                return Fragment(*contained)
            case Prefix.NE:
                return Fragment(f"NOT ({contained[0]})", contained[1])
            case Prefix.GT:
                return Fragment(f"{hi} > ?", (shi,))
            case Prefix.LT:
                return Fragment(f"{lo} < ?", (slo,))
            case Prefix.GE:
                return Fragment(f"{hi} > ? OR ({contained[0]})", (shi, *contained[1]))
            case Prefix.LE:
                return Fragment(f"{lo} < ? OR ({contained[0]})", (slo, *contained[1]))
            case Prefix.SA:
                return Fragment(f"{lo} > ?", (shi,))
            case Prefix.EB:
                return Fragment(f"{hi} < ?", (slo,))
            case Prefix.AP:
                if is_date:
                    gap = abs(self.now_us - (slo + shi) // 2) // 10
                    low, high = slo - gap, shi + gap
                else:
                    low, high = slo - abs(slo) * 0.1, shi + abs(shi) * 0.1
                return Fragment(f"{lo} <= ? AND {hi} >= ?", (high, low))
        raise UnsupportedSearch(f"unknown prefix {value.prefix}")


# ---- helpers over index tables ------------------------------------------------------------------------

def _index_criterion(table: str, param: str, alts: list[Fragment], *, negate: bool, rank: int,
                     probe_index: str | None = None) -> Compiled:
    """A criterion on one index table; its probe reads ``probe_index`` when given (else SQLite's choice, the
    rid-clustered primary key)."""
    if not alts:
        return Compiled(TRUE if negate else FALSE, rid_only=True)
    values = join_balanced(alts, " OR ")
    source = f"{table} INDEXED BY {probe_index}" if probe_index else table
    probe = Fragment(f"{'NOT ' if negate else ''}EXISTS (SELECT 1 FROM {source} "
                     f"WHERE rid = {ALIAS}.rid AND param = ? AND ({values.sql}))", (param, *values.params))
    if negate:
        return Compiled(probe, rid_only=True)
    groups = [alts] if len(alts) <= MAX_UNION_TERMS else [[join_balanced(alts[i::MAX_UNION_TERMS], " OR ")]
                                                          for i in range(MAX_UNION_TERMS)]
    parts = [a for group in groups for a in group]
    driver = Fragment(" UNION ALL ".join(f"SELECT rid FROM {table} WHERE param = ? AND ({a.sql})" for a in parts),
                      tuple(x for a in parts for x in (param, *a.params)))
    return Compiled(probe, driver, rank, rid_only=True)


def _missing(table: str, param: str, missing: bool) -> Compiled:
    exists = f"EXISTS (SELECT 1 FROM {table} WHERE rid = {ALIAS}.rid AND param = ?)"
    if missing:
        return Compiled(Fragment(f"NOT {exists}", (param,)), rid_only=True)
    return Compiled(Fragment(exists, (param,)), Fragment(f"SELECT rid FROM {table} WHERE param = ?", (param,)), 5,
                    rid_only=True)


def _missing_wanted(cond: Condition) -> bool:
    first = cond.values[0] if cond.values else None
    return isinstance(first, TokenValue) and first.code == "true"


def _token(value: TokenValue) -> Fragment:
    parts = [(col, v) for col, v in (("code", value.code), ("system", value.system)) if v is not None]
    if not parts:
        return TRUE
    return Fragment(" AND ".join(f"{col} = ?" for col, _ in parts), tuple(v for _, v in parts))


def _reference(value: ReferenceValue) -> Fragment:
    if not value.bare_id:
        return Fragment("ref = ?", (value.ref,))
    if value.types:
        marks = ", ".join("?" * len(value.types))
        return Fragment(f"ref IN ({marks})", tuple(f"{t}/{value.ref}" for t in value.types))
    # A bare id matches a local reference of any type: "<Type>/<id>" with no other '/' or ':'.
    tail = f"/{value.ref}"
    return Fragment("length(ref) > ? AND substr(ref, ?) = ? AND instr(ref, ':') = 0 "
                    "AND instr(substr(ref, 1, length(ref) - ?), '/') = 0",
                    (len(tail), -len(tail), tail, len(tail)))


def _string(value: StringValue, modifier: str | None) -> Fragment:
    if modifier == "exact":
        return Fragment("norm = ? AND exact = ?", (value.norm, value.raw))
    if modifier == "contains":
        return Fragment("instr(norm, ?) > 0", (value.norm,))
    if modifier is None or modifier == "not":
        return Fragment("norm >= ? AND norm < ?", (value.norm, successor(value.norm)))
    raise UnsupportedSearch(f"the :{modifier} modifier does not apply to strings")


def _uri(value: UriValue, modifier: str | None) -> Fragment:
    if modifier == "below":
        return Fragment("uri >= ? AND uri < ?", (value.uri, successor(value.uri)))
    if modifier == "above":
        return Fragment("substr(?, 1, length(uri)) = uri", (value.uri,))
    if modifier is None or modifier == "not":
        return Fragment("uri = ?", (value.uri,))
    raise UnsupportedSearch(f"the :{modifier} modifier does not apply to uris")


# ---- sorting and keyset predicates --------------------------------------------------------------------

_SORT_COLUMNS = {ParamType.TOKEN: ("code", "code"), ParamType.REFERENCE: ("ref", "ref"),
                 ParamType.STRING: ("norm", "norm"), ParamType.URI: ("uri", "uri"),
                 ParamType.DATE: ("lo", "hi"), ParamType.NUMBER: ("lo", "hi"), ParamType.QUANTITY: ("lo", "hi")}


def sort_terms(keys: list[SortKey]) -> list[SortTerm]:
    """ORDER BY terms for ``_sort`` keys, ending with ``r.rid`` (in the last key's direction) as tie-break.

    Params sort by their smallest value ascending and their largest value descending."""
    terms: list[SortTerm] = []
    for key in keys:
        if key.param == "_id":
            terms.append(SortTerm(Fragment("r.id"), key.descending, False))
        elif key.param == "_lastUpdated":
            terms.append(SortTerm(Fragment("r.last_updated_us"), key.descending, False))
        else:
            table, columns = INDEX_TABLES.get(key.type), _SORT_COLUMNS.get(key.type)
            if table is None or columns is None:
                raise UnsupportedSearch(f"cannot sort by {key.type.value} parameter {key.param}")
            agg, column = ("max", columns[1]) if key.descending else ("min", columns[0])
            terms.append(SortTerm(Fragment(f"(SELECT {agg}({column}) FROM {table} WHERE rid = r.rid AND param = ?)",
                                           (key.param,)), key.descending, True))
    terms.append(SortTerm(Fragment("r.rid"), terms[-1].descending if terms else False, False))
    return terms


def order_by(terms: list[SortTerm], backward: bool) -> Fragment:
    """The ORDER BY list (missing values last; everything reversed when paging backward)."""
    parts = []
    for term in terms:
        direction = "DESC" if term.descending != backward else "ASC"
        nulls = (" NULLS FIRST" if backward else " NULLS LAST") if term.nullable else ""
        parts.append(Fragment(f"{term.expr.sql} {direction}{nulls}", term.expr.params))
    return Fragment(", ".join(p.sql for p in parts), tuple(x for p in parts for x in p.params))


def keyset(terms: list[SortTerm], cursor: list[Any], backward: bool) -> Fragment:
    """Rows strictly after ``cursor`` (the sort values of a row) in the page's order."""
    if not any(t.nullable for t in terms) and len({t.descending for t in terms}) == 1:
        op = "<" if terms[0].descending != backward else ">"
        exprs = ", ".join(t.expr.sql for t in terms)
        return Fragment(f"({exprs}) {op} ({', '.join('?' * len(terms))})", tuple(cursor))
    branches: list[Fragment] = []
    equal: list[Fragment] = []
    for term, value in zip(terms, cursor, strict=True):
        expr = term.expr
        if value is None:
            after = Fragment(f"{expr.sql} IS NOT NULL", expr.params) if backward else None
        else:
            op = "<" if term.descending != backward else ">"
            null_after = " OR " + expr.sql + " IS NULL" if term.nullable and not backward else ""
            after = Fragment(f"{expr.sql} {op} ?{null_after}",
                             (*expr.params, value, *(expr.params if null_after else ())))
        if after is not None:
            branches.append(join_balanced([*equal, after], " AND "))
        equal.append(Fragment(f"{expr.sql} IS ?", (*expr.params, value)))
    return join_balanced(branches, " OR ") if branches else FALSE
