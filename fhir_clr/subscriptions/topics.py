"""Subscription topics: R5-shaped ``SubscriptionTopic`` JSON files in ``profiles/topics/`` (R4 has no such
resource; a Subscription names its topic by canonical URL in ``criteria``).

A topic fires for a committed change when one of its resource triggers accepts it: the interaction is supported,
the ``queryCriteria`` hold (``previous`` against the replaced version, ``current`` against the new one; on a
create the previous test takes ``resultForCreate``, on a delete the current test takes ``resultForDelete``;
``requireBoth`` ANDs them, otherwise either one is enough) and, when present, the ``fhirPathCriteria`` (with
``%previous`` and ``%current``) is true. When a trigger has both query and FHIRPath criteria, both must hold.
Topics with an ``eventTrigger`` only are raised by the server itself (e.g. the overdue-obligation sweep).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fhirpathpy import compile as fhirpath_compile

from fhir_clr.search.paths import R4_MODEL
from fhir_clr.search.registry import SearchParamRegistry
from fhir_clr.store.query import IndexEntries
from fhir_clr.subscriptions.matching import FilterError, ResourceFilter, parse_filter

CREATE, UPDATE, DELETE = "create", "update", "delete"
IndexOf = Callable[[dict[str, Any]], IndexEntries | None]
"""A resource's search index entries (None: let the filter compute them)."""


def _no_memo(_: dict[str, Any]) -> IndexEntries | None:
    return None


class TopicError(ValueError):
    """A topic file that cannot be used (named in the message)."""


@dataclass(frozen=True, slots=True)
class QueryTest:
    """One side (previous or current) of a trigger's query criteria."""

    filter: ResourceFilter
    result_without_resource: bool
    """The test's result when there is no resource to test (previous on create, current on delete)."""

    def passes(self, resource: dict[str, Any] | None, index_of: IndexOf) -> bool:
        """The test on ``resource`` (None: no such version)."""
        return self.result_without_resource if resource is None else self.filter.matches(resource, index_of(resource))


@dataclass(frozen=True, slots=True)
class ResourceTrigger:
    """When a change to ``resource_type`` is an event of the topic."""

    resource_type: str
    interactions: frozenset[str]
    previous: QueryTest | None
    current: QueryTest | None
    require_both: bool
    fhirpath: Any | None
    """Compiled ``fhirPathCriteria`` (called with ``{"previous": …, "current": …}``) or None."""

    def fires(self, interaction: str, previous: dict[str, Any] | None, current: dict[str, Any] | None,
              index_of: IndexOf) -> bool:
        """True when the change (with its replaced and new versions) is an event."""
        if interaction not in self.interactions:
            return False
        tests = [t.passes(r, index_of) for t, r in ((self.previous, previous), (self.current, current))
                 if t is not None]
        if tests and not (all(tests) if self.require_both else any(tests)):
            return False
        if self.fhirpath is None:
            return True
        result = self.fhirpath({}, {"previous": previous or [], "current": current or []})
        return result == [True]


@dataclass(frozen=True, slots=True)
class Topic:
    """A subscription topic: its canonical URL, triggers and the filters subscribers may use."""

    url: str
    title: str
    triggers: tuple[ResourceTrigger, ...]
    event_codes: frozenset[str]
    filters: dict[str, frozenset[str]]
    """Resource type -> filter parameters allowed by ``canFilterBy``."""
    resource: dict[str, Any]

    def fires(self, resource_type: str, interaction: str, previous: dict[str, Any] | None,
              current: dict[str, Any] | None, index_of: IndexOf | None = None) -> bool:
        """True when a change of a ``resource_type`` resource is an event of this topic. ``index_of`` returns
        a resource's index entries (pass a memo when testing one change against many topics)."""
        index_of = index_of or _no_memo
        return any(t.resource_type == resource_type and t.fires(interaction, previous, current, index_of)
                   for t in self.triggers)

    def focus_types(self) -> frozenset[str]:
        """Resource types whose changes (or server events) this topic reports."""
        return frozenset(self.filters) | frozenset(t.resource_type for t in self.triggers)


class TopicCatalog:
    """The topics this server offers, by canonical URL."""

    def __init__(self, topics: Sequence[Topic]) -> None:
        self._by_url = {t.url: t for t in topics}

    @classmethod
    def from_directory(cls, directory: Path, registry: SearchParamRegistry) -> TopicCatalog:
        """Load every ``SubscriptionTopic-*.json`` of ``directory`` (none when it does not exist)."""
        topics = []
        for path in sorted(directory.glob("SubscriptionTopic-*.json")) if directory.is_dir() else []:
            try:
                topics.append(_topic(orjson.loads(path.read_bytes()), registry))
            except (orjson.JSONDecodeError, KeyError, TypeError, FilterError, TopicError) as error:
                raise TopicError(f"{path.name}: {error}") from None
        return cls(topics)

    def get(self, url: str) -> Topic | None:
        """The topic with this canonical URL (a ``|version`` suffix is ignored)."""
        return self._by_url.get(url.split("|", 1)[0])

    def all(self) -> list[Topic]:
        """Every topic, by URL."""
        return [self._by_url[u] for u in sorted(self._by_url)]


def _resource_type(canonical: str) -> str:
    return canonical.rsplit("/", 1)[-1]


def _test(resource_type: str, criteria: str | None, result: str | None,
          registry: SearchParamRegistry) -> QueryTest | None:
    if not criteria:
        return None
    return QueryTest(parse_filter(resource_type, [criteria], registry), result == "test-passes")


def _trigger(data: dict[str, Any], registry: SearchParamRegistry) -> ResourceTrigger:
    resource_type = _resource_type(data["resource"])
    query = data.get("queryCriteria") or {}
    expression = data.get("fhirPathCriteria")
    return ResourceTrigger(
        resource_type=resource_type,
        interactions=frozenset(data.get("supportedInteraction") or (CREATE, UPDATE, DELETE)),
        previous=_test(resource_type, query.get("previous"), query.get("resultForCreate"), registry),
        current=_test(resource_type, query.get("current"), query.get("resultForDelete"), registry),
        require_both=bool(query.get("requireBoth")),
        fhirpath=fhirpath_compile(expression, R4_MODEL) if expression else None)


def _topic(data: dict[str, Any], registry: SearchParamRegistry) -> Topic:
    if data.get("resourceType") != "SubscriptionTopic" or not data.get("url"):
        raise TopicError("not a SubscriptionTopic with a url")
    filters: dict[str, set[str]] = {}
    for entry in data.get("canFilterBy") or []:
        resource_type = _resource_type(entry["resource"])
        if registry.get(resource_type, entry["filterParameter"]) is None:
            raise TopicError(f"canFilterBy names an unknown parameter {resource_type}.{entry['filterParameter']}")
        filters.setdefault(resource_type, set()).add(entry["filterParameter"])
    events = frozenset(c["code"] for t in data.get("eventTrigger") or [] for c in t["event"].get("coding", []))
    return Topic(url=data["url"], title=data.get("title") or data["url"],
                 triggers=tuple(_trigger(t, registry) for t in data.get("resourceTrigger") or []),
                 event_codes=events, filters={k: frozenset(v) for k, v in filters.items()}, resource=data)
