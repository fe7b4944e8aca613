"""Reading the audit log (written by ``fhir_clr.auth.audit``) as ``AuditEvent`` resources: read by id, and a
search by ``agent`` (Organization reference), ``altid`` (client id), ``entity`` (``Type/id``), ``date``
(``recorded``, with the ge/gt/le/lt/eq prefixes), ``subtype`` (the interaction), ``action`` and ``outcome``,
oldest first, in pages of ``_count``.

A search walks one key range: the index of its first ``entity``, ``altid`` or ``agent`` value, else the events
themselves (from the ``date`` lower bound); every other parameter filters what that range yields. A page scans
at most ``SCAN_LIMIT`` entries, so a very selective filter may give a short page with a next link.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from fhir_clr.auth.audit import BY_AGENT, BY_CLIENT, BY_ENTITY, EVENTS, INDEX_SEPARATOR, recorded_us_of
from fhir_clr.engine.results import SearchResult
from fhir_clr.errors import FhirError
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
LIST_BATCH = 500
NO_LATER_THAN = 16 ** 14 - 1
"""The largest recording time an event id can encode."""


def _bad(message: str) -> FhirError:
    return FhirError(400, "not-supported", message)


def _codes(values: str) -> set[str]:
    """Comma-separated token values, without their ``system|`` part."""
    return {value.rpartition("|")[2] for value in values.split(",")}


def _date_bounds(value: str) -> tuple[int, int]:
    """The inclusive range of recording times a ``date`` value admits."""
    prefix, text = (value[:2], value[2:]) if value[:2] in ("eq", "ge", "gt", "le", "lt") else ("eq", value)
    try:
        lo, hi = parse_date_range(text)
    except ValueError:
        raise _bad(f"AuditEvent date: {text!r} is not a FHIR date, dateTime or instant") from None
    return {"eq": (lo, hi), "ge": (lo, NO_LATER_THAN), "gt": (hi + 1, NO_LATER_THAN), "le": (0, hi),
            "lt": (0, lo - 1)}[prefix]


def _matcher(name: str, value: str) -> Callable[[dict[str, Any]], bool]:
    """A test of one event for one search parameter (dates are handled by the scanned range)."""
    wanted = set(value.split(","))
    if name == "agent":
        refs = {v if "/" in v else f"Organization/{v}" for v in wanted}
        return lambda e: any(a.get("who", {}).get("reference") in refs for a in e.get("agent", ()))
    if name == "altid":
        return lambda e: any(a.get("altId") in wanted for a in e.get("agent", ()))
    if name == "entity":
        return lambda e: any(x.get("what", {}).get("reference") in wanted for x in e.get("entity", ()))
    codes = _codes(value)
    if name == "subtype":
        return lambda e: any(s.get("code") in codes for s in e.get("subtype", ()))
    return lambda e: e.get(name) in codes  # action, outcome


class AuditLog:
    """The audit log of ``store`` served as AuditEvent (plan-only: callers check access first)."""

    def __init__(self, store: Store, *, default_count: int, max_count: int) -> None:
        self.store = store
        self.default_count = default_count
        self.max_count = max_count

    async def read(self, identifier: str) -> StoredResource | None:
        """The event with this id, or None."""
        record = await self.store.get_record(EVENTS, identifier)
        return _stored(record.doc) if record is not None else None

    async def search(self, params: list[tuple[str, str]]) -> SearchResult:
        """One page of the events matching ``params`` (400 for parameters the log does not answer)."""
        count, token, filters = self._parse(params)
        lo, hi = 0, NO_LATER_THAN
        tests = []
        for name, value in filters:
            if name == "date":
                low, high = _date_bounds(value)
                lo, hi = max(lo, low), min(hi, high)
            else:
                tests.append(_matcher(name, value))
        kind, prefix = EVENTS, ""
        for name, index_kind in INDEXES:
            value = next((v for n, v in filters if n == name and "," not in v), None)
            if value is not None:
                reference = value if name != "agent" or "/" in value else f"Organization/{value}"
                kind, prefix = index_kind, f"{reference}{INDEX_SEPARATOR}"
                break
        if token is not None and not token.startswith(prefix):
            raise FhirError(400, "invalid", "The _page_token does not belong to this search")
        after = token if token is not None else f"{prefix}{lo:014x}"
        matches, next_token = await self._scan(kind, prefix, after, hi, count, tests)
        self_params = [(n, v) for n, v in params if n != "_page_token"]
        return SearchResult(matches=matches, included=[], total=None, self_params=self_params,
                            next_token=next_token, prev_token=None, issues=[])

    def _parse(self, params: list[tuple[str, str]]) -> tuple[int, str | None, list[tuple[str, str]]]:
        count, token, filters = self.default_count, None, []
        for name, value in params:
            if name == "_count":
                if not value.isdigit():
                    raise FhirError(400, "invalid", f"_count must be a non-negative integer, not {value!r}")
                count = min(int(value), self.max_count)
            elif name == "_page_token":
                token = value
            elif name in IGNORED:
                continue
            elif name in FILTERS:
                filters.append((name, value))
            else:
                raise _bad(f"AuditEvent search parameter {name!r} is not supported (the audit log answers "
                           f"{', '.join(sorted(FILTERS | PAGING))})")
        return count, token, filters

    async def _scan(self, kind: str, prefix: str, after: str, hi: int, count: int,
                    tests: list[Callable[[dict[str, Any]], bool]]) -> tuple[list[StoredResource], str | None]:
        """Matches from the key range of ``kind`` after ``after``, up to recording time ``hi``; the key to
        resume after, or None when the range is exhausted."""
        matches: list[StoredResource] = []
        scanned = 0
        while scanned < SCAN_LIMIT:
            batch = await self.store.list_records(kind, prefix=prefix, after=after, limit=LIST_BATCH)
            if not batch:
                return matches, None
            for record in batch:
                identifier = record.key[len(prefix):]
                if recorded_us_of(identifier) > hi:
                    return matches, None
                if len(matches) >= count:
                    return matches, after
                after = record.key
                scanned += 1
                event = record.doc if kind == EVENTS else await self._event(identifier)
                if event is not None and all(test(event) for test in tests):
                    matches.append(_stored(event))
        return matches, after

    async def _event(self, identifier: str) -> dict[str, Any] | None:
        record = await self.store.get_record(EVENTS, identifier)
        return record.doc if record is not None else None


def _stored(event: dict[str, Any]) -> StoredResource:
    """An event as a stored version 1 (its id encodes when it was recorded)."""
    recorded_us = recorded_us_of(event["id"])
    return StoredResource(AUDIT_EVENT, event["id"], 1, recorded_us, event["meta"]["lastUpdated"], False,
                          orjson.dumps(event), ChangeOp.CREATE)
