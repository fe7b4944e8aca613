"""What the engine knows of business rules: an interface. A domain (the CLR workflow, Subscriptions) plugs its
rules into the engine as a list, applied in order to every planned write, whichever way it arrives (REST,
transaction Bundles, file imports); an engine with no rules is a plain FHIR server.

A rule gets the planned write and an explicit :class:`PlanningContext`: who writes, the rules' current time,
whether the write is the server's own, what the enclosing transaction planned before it, and what the rule read
ahead for a batch of writes (:meth:`PrefetchingRule.prefetch`). Nothing travels in hidden state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from fhir_clr.engine.writes import Plan
from fhir_clr.store.port import StoredResource


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is making a change: their organization (``Organization/123``; None for an unrestricted server-side
    caller) and role (``plan`` or another party of the referral loop)."""

    organization: str | None
    role: str


class Prefetch(Protocol):
    """Data a rule read ahead for a batch of writes; valid only until the batch commits."""

    def clear(self) -> None:
        """Forget everything (the rule's lookups go to the store again)."""


class Prefetched:
    """What each rule read ahead for one batch of writes (none by default), and the current versions of the
    resources the batch updates (``current``: live versions by ``(type, id)``, read for the planner)."""

    def __init__(self, by_rule: Mapping[object, Prefetch] | None = None,
                 current: Mapping[tuple[str, str], StoredResource] | None = None) -> None:
        self._by_rule = dict(by_rule or {})
        self.current = dict(current or {})

    def of(self, rule: object) -> Prefetch | None:
        """What ``rule`` read ahead, or None."""
        return self._by_rule.get(rule)

    def clear(self) -> None:
        """Forget everything read ahead: whoever fills it empties it before planning anything after a commit or a
        lost race."""
        self.current.clear()
        for prefetch in self._by_rule.values():
            prefetch.clear()


@dataclass(frozen=True, slots=True)
class PlanningContext:
    """What a rule may know about the write it is given, besides the plan itself."""

    caller: Caller
    now: datetime
    """The current time of the engine's clock (fixed in reproducible deadline tests)."""
    server_write: bool = False
    """True for the server's own writes (e.g. a Subscription status the delivery worker records)."""
    planned: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    """The resources earlier entries of the same transaction write, by ``Type/id`` (empty outside one)."""
    prefetched: Prefetched = field(default_factory=Prefetched)
    """What the rules read ahead for the batch this write belongs to."""


class WriteRule(Protocol):
    """Business rules for some resource types, run on every planned write before it commits."""

    async def apply(self, plan: Plan, context: PlanningContext) -> Plan:
        """``plan`` as the rule allows it (possibly changed, possibly with extra changes committed with it);
        raises FhirError to refuse it."""


@runtime_checkable
class PrefetchingRule(WriteRule, Protocol):
    """A rule that can read ahead, with one query, what it will look up for a batch of writes."""

    async def prefetch(self, references: Collection[str]) -> Prefetch:
        """What the rule will need for writes updating the resources ``references`` (``Type/id``)."""
