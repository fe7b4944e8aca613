"""Reading the audit log (written by ``fhir_clr.auth.audit``) as ``AuditEvent`` resources: read by id, and a
search by ``agent`` (Organization reference), ``altid`` (client id), ``entity`` (``Type/id``), ``date``
(``recorded``, with the ge/gt/le/lt/eq prefixes), ``subtype`` (the interaction), ``action`` and ``outcome``,
oldest first, in pages of ``_count``. Other parameters are ignored with a warning, as the engine ignores
unknown ones (refused under ``Prefer: handling=strict``).

A search walks one key range: the index records of its first single ``entity``, ``altid`` or ``agent`` value,
else the batches themselves, from the batches whose last entry is not older than the ``date`` lower bound, up
to the first batch that starts after its upper bound; every parameter filters the entries of the batches on
the way. A page looks at most ``SCAN_LIMIT`` entries, so a very selective search may give a short page with a
next link.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import orjson

from fhir_clr.auth.audit import (
    ACTIONS,
    BY_AGENT,
    BY_CLIENT,
    BY_ENTITY,
    CLIENT,
    CODE,
    EVENTS,
    ID,
    INDEX_SEPARATOR,
    ORGANIZATION,
    RECORDED,
    STATUS,
    TYPE,
    audit_event,
    outcome_code,
    split_event_id,
)
from fhir_clr.engine.results import SearchResult
from fhir_clr.errors import FhirError, Issue
from fhir_clr.search.values import parse_date_range
from fhir_clr.store.port import ChangeOp, Store, StoredResource

AUDIT_EVENT = "AuditEvent"
INDEXES = (("entity", BY_ENTITY), ("altid", BY_CLIENT), ("agent", BY_AGENT))
"""Search parameters served by an index, in the order a search prefers them."""
FILTERS = frozenset({"agent", "altid", "entity", "date", "subtype", "action", "outcome"})
PAGING = frozenset({"_count", "_page_token"})
IGNORED = frozenset({"_format", "_pretty"})
"""Answered by content negotiation, not by the search."""
SCAN_LIMIT = 5000
"""Entries a page looks at, at most."""
BATCHES_PER_LISTING = 8
LATEST = 16 ** 14 - 1
"""The latest recording time a batch key can encode."""

Test = Callable[[Sequence[Any]], bool]


def _unsupported(message: str) -> FhirError:
    return FhirError(400, "not-supported", message)


def _organization(value: str) -> str:
    return value if "/" in value else f"Organization/{value}"


def _date_bounds(value: str) -> tuple[int, int]:
    """The inclusive range of recording times (epoch µs) a ``date`` value admits."""
    prefix, text = (value[:2], value[2:]) if value[:2] in ("eq", "ge", "gt", "le", "lt") else ("eq", value)
    try:
        lo, hi = parse_date_range(text)
    except ValueError:
        raise FhirError(400, "invalid", f"AuditEvent date: {text!r} is not a FHIR date, dateTime or instant"
                        ) from None
    return {"eq": (lo, hi), "ge": (lo, LATEST), "gt": (hi + 1, LATEST), "le": (0, hi), "lt": (0, lo - 1)}[prefix]


def _test(name: str, value: str) -> Test:
    """Whether an entry matches one (comma-separated: any of the values) search parameter."""
    wanted = set(value.split(","))
    if name == "agent":
        organizations = {_organization(v) for v in wanted}
        return lambda e: e[ORGANIZATION] in organizations
    if name == "altid":
        return lambda e: e[CLIENT] in wanted
    if name == "entity":
        return lambda e: f"{e[TYPE]}/{e[ID]}" in wanted
    codes = {v.rpartition("|")[2] for v in wanted}
    if name == "subtype":
        return lambda e: e[CODE] in codes
    if name == "action":
        return lambda e: ACTIONS[e[CODE]] in codes
    return lambda e: outcome_code(e[STATUS]) in codes


def _stored(key: str, position: int, entry: Sequence[Any]) -> StoredResource:
    """An entry as stored version 1 of its AuditEvent."""
    event = audit_event(entry, f"{key}-{position:x}")
    return StoredResource(AUDIT_EVENT, event["id"], 1, entry[RECORDED], event["meta"]["lastUpdated"], False,
                          orjson.dumps(event), ChangeOp.CREATE)


class AuditLog:
    """The audit log of ``store`` served as AuditEvent (plan-only: callers check access first)."""

    def __init__(self, store: Store, *, default_count: int, max_count: int) -> None:
        self.store = store
        self.default_count = default_count
        self.max_count = max_count

    async def read(self, identifier: str) -> StoredResource | None:
        """The AuditEvent with this id, or None."""
        named = split_event_id(identifier)
        batch = await self._batch(named[0]) if named else None
        if named is None or batch is None or named[1] >= len(batch["entries"]):
            return None
        return _stored(named[0], named[1], batch["entries"][named[1]])

    async def search(self, params: list[tuple[str, str]], *, strict: bool = False) -> SearchResult:
        """One page of the AuditEvents matching ``params``. Parameters the log does not answer are ignored
        with a warning issue, as the engine does, or refused (400) under ``strict``."""
        count, token, filters, unknown = self._parse(params)
        issues = []
        if unknown:
            names = ", ".join(sorted(set(unknown)))
            if strict:
                raise _unsupported(f"Unknown or unsupported search parameter(s): {names}")
            issues.append(Issue(code="not-supported", severity="warning",
                                message=f"Ignored unknown or unsupported search parameter(s): {names}"))
        lo, hi = 0, LATEST
        tests = []
        for name, value in filters:
            if name == "date":
                low, high = _date_bounds(value)
                lo, hi = max(lo, low), min(hi, high)
            else:
                tests.append(_test(name, value))
        kind, prefix = EVENTS, ""
        for name, index_kind in INDEXES:
            found = next((v for n, v in filters if n == name and "," not in v), None)
            if found is not None:
                kind = index_kind
                prefix = f"{_organization(found) if name == 'agent' else found}{INDEX_SEPARATOR}"
                break
        resume = _resume(token, prefix) if token is not None else None
        matches, next_token = await self._scan(kind, prefix, resume or (f"{prefix}{lo:014x}", None), lo, hi,
                                               count, tests)
        return SearchResult(matches=matches, included=[], total=None,
                            self_params=[(n, v) for n, v in params if n != "_page_token" and n not in unknown],
                            next_token=next_token, prev_token=None, issues=issues)

    def _parse(self, params: list[tuple[str, str]]
               ) -> tuple[int, str | None, list[tuple[str, str]], list[str]]:
        count, token, filters, unknown = self.default_count, None, [], []
        for name, value in params:
            if name == "_count":
                if not value.isdigit():
                    raise FhirError(400, "invalid", f"_count must be a non-negative integer, not {value!r}")
                count = min(int(value), self.max_count)
            elif name == "_page_token":
                token = value
            elif name in FILTERS:
                filters.append((name, value))
            elif name not in IGNORED:
                unknown.append(name)
        return count, token, filters, unknown

    async def _scan(self, kind: str, prefix: str, start: tuple[str, int | None], lo: int, hi: int, count: int,
                    tests: list[Test]) -> tuple[list[StoredResource], str | None]:
        """Matching entries in key order from ``start`` (a listing key to resume after, or with a position
        the listing key whose batch to resume at); the next page's token, or None when the range is done."""
        matches: list[StoredResource] = []
        scanned = 0
        after, position = start
        pending: list[tuple[str, dict[str, Any] | None, int]] = []
        if position is not None:
            pending.append((after, await self._batch(after[len(prefix):]), position))
        while True:
            for listing_key, batch, first in pending:
                if batch is None:
                    continue
                if batch["first"] > hi:
                    return matches, None
                key = listing_key[len(prefix):]
                entries = batch["entries"]
                for n in range(first, len(entries)):
                    if len(matches) >= count or scanned >= SCAN_LIMIT:
                        return matches, f"{listing_key}!{n}"
                    scanned += 1
                    entry = entries[n]
                    if lo <= entry[RECORDED] <= hi and all(test(entry) for test in tests):
                        matches.append(_stored(key, n, entry))
                after = listing_key
            listed = await self.store.list_records(kind, prefix=prefix, after=after, limit=BATCHES_PER_LISTING)
            if not listed:
                return matches, None
            pending = [(r.key, r.doc if kind == EVENTS else await self._batch(r.key[len(prefix):]), 0)
                       for r in listed]

    async def _batch(self, key: str) -> dict[str, Any] | None:
        record = await self.store.get_record(EVENTS, key)
        return record.doc if record is not None else None


def _resume(token: str, prefix: str) -> tuple[str, int]:
    """The listing key and position a page token names (400 for a token of another search)."""
    listing_key, _, position = token.rpartition("!")
    if not listing_key.startswith(prefix) or not position.isdigit():
        raise FhirError(400, "invalid", "The _page_token does not belong to this search")
    return listing_key, int(position)
