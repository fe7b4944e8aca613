"""How the rows of one file kind become writes: one :class:`RowKind` per importable kind (MIF rows create
referrals, RTF rows update referral Tasks, ASF rows update CLR Referrals), so the import job batches, commits and
reports every kind the same way.

RTF and ASF rows update a referral they find by Member, service and provider (:class:`ReferralUpdates`, over a
:class:`~fhir_clr.imports.referral_match.ReferralMatcher`); what they change, and when a row says nothing new,
is each kind's own.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, Protocol

import orjson

from fhir_clr.imports.referral_match import ReferralMatcher, RowKeys, RowProblem
from fhir_clr.mapping.readers import RawRow

Parsed = tuple[RawRow, dict[str, dict[str, Any]], RowKeys]
"""A row, its FHIR fragments and its identifying keys."""


class RowOutcome(enum.Enum):
    """What became of a row that leads to no write."""

    UNCHANGED = "unchanged"
    """The row says what the store already holds."""
    SKIPPED = "skipped"
    """Another provider's row in a provider's own file: not this caller's to apply or report."""


RowChange = dict[str, Any] | RowProblem | RowOutcome
"""A row's transaction Bundle, why it is refused, or why nothing is written."""


class RowKind(Protocol):
    """How the rows of one file kind become writes."""

    pipelined: bool
    """True when a batch's commit may run while the next batch is planned (updates of existing referrals); False
    when each batch commits before the next is planned (its writes claim keys the next batch looks up)."""

    @property
    def members(self) -> set[str]:
        """The Members the last :meth:`prefetch` read (a batch writing them must commit before the next is
        planned)."""

    def rounds(self, parsed: list[Parsed]) -> list[list[Parsed]]:
        """The batch's rows in the rounds they are planned and committed in."""

    async def prefetch(self, parsed: list[Parsed]) -> None:
        """Read, in a few queries, what planning the rows of one round needs."""

    async def change(self, number: int, fragments: dict[str, dict[str, Any]], keys: RowKeys) -> RowChange:
        """The write row ``number`` asks for."""


def rounds_by_referral(parsed: list[Parsed], order: Callable[[Parsed], tuple[Any, ...]]) -> list[list[Parsed]]:
    """The rows in rounds: round *k* holds the *k*-th row of each referral (same Member, service and provider), in
    ``order``, so each row is planned after the one before it is committed; each round in file order."""
    by_referral: dict[tuple[str | None, str | None, str | None], list[Parsed]] = {}
    for item in parsed:
        keys = item[2]
        by_referral.setdefault((keys.cin, keys.service, keys.npi), []).append(item)
    rounds: list[list[Parsed]] = []
    for items in by_referral.values():
        for index, item in enumerate(sorted(items, key=order)):
            if index == len(rounds):
                rounds.append([])
            rounds[index].append(item)
    return [sorted(part, key=lambda i: i[0].number) for part in rounds]


def same(updated: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when ``updated`` says what ``current`` says: ``meta`` and ``text`` aside, extensions in any order."""
    return _comparable(updated) == _comparable(current)


def _comparable(resource: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in resource.items() if k not in ("meta", "text")}
    if isinstance(out.get("extension"), list):
        out["extension"] = sorted(orjson.dumps(e, option=orjson.OPT_SORT_KEYS) for e in out["extension"])
    return out


class ReferralUpdates:
    """Rows that update an existing referral found by its Member, service and servicing provider; a provider's
    own file (``provider_npi``) applies only that provider's rows. Subclasses say what a row changes
    (:meth:`updated`) and when it changes nothing (:meth:`unchanged`)."""

    pipelined = True

    def __init__(self, matcher: ReferralMatcher, provider_npi: str | None) -> None:
        self.matcher = matcher
        self.provider_npi = provider_npi

    @property
    def members(self) -> set[str]:
        """The Members found by the last prefetch."""
        return self.matcher.patient_ids

    def rounds(self, parsed: list[Parsed]) -> list[list[Parsed]]:
        """The rows of each referral one per round, in :meth:`order`."""
        return rounds_by_referral(parsed, self.order)

    def order(self, item: Parsed) -> tuple[Any, ...]:
        """The order of one referral's rows (here: the file's)."""
        return (item[0].number,)

    async def prefetch(self, parsed: list[Parsed]) -> None:
        """Resolve the Members, providers and open referrals of the rows."""
        await self.matcher.prefetch([keys for _, _, keys in parsed])

    async def change(self, number: int, fragments: dict[str, dict[str, Any]], keys: RowKeys) -> RowChange:
        """A PUT of the row's referral resource as the row updates it."""
        if self.provider_npi and keys.npi != self.provider_npi:
            return RowOutcome.SKIPPED
        found = self.matcher.match(keys)
        if isinstance(found, RowProblem):
            return found
        planned = self.updated(found, fragments)
        if isinstance(planned, RowProblem):
            return planned
        current, updated = planned
        if same(updated, current) or await self.unchanged(current, updated):
            return RowOutcome.UNCHANGED
        return {"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": updated, "request": {"method": "PUT", "url": f"{updated['resourceType']}/{current['id']}"}}]}

    def updated(self, task: dict[str, Any], fragments: dict[str, dict[str, Any]]
                ) -> tuple[dict[str, Any], dict[str, Any]] | RowProblem:
        """The resource the row updates (found through the referral ``task``) and its updated content."""
        raise NotImplementedError

    async def unchanged(self, current: dict[str, Any], updated: dict[str, Any]) -> bool:
        """True when ``updated`` differs from ``current`` yet brings nothing new (beyond :func:`same`)."""
        return False
