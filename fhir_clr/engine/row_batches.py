"""Many small transactions committed as one: the write path of file imports.

Each *group* (one file row) is a transaction Bundle planned through the same machinery as ``POST [base]`` —
identities, conditional creates, business rules, access checks — and either fails on its own (its error is its
result; the other groups go on) or joins the current batch. A batch is committed in **one** store transaction,
so a crash leaves whole rows or nothing. A group that touches a resource (or claims a conditional-create key)
already touched in the batch is planned again after the batch is flushed, so it sees the earlier row's result;
a batch that loses a race with a concurrent writer is re-planned group by group.

Given a :class:`~fhir_clr.engine.validation_pool.ValidationPool`, the R4 validation of the groups' ``PUT``
resources runs in its worker process while the groups are planned here without it; before anything of the batch
commits, every group the worker found invalid is planned again with the in-process validation, so its result is
the one it would have had without the pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from fhir_clr.engine.bundle_requests import EntryRequest, parse_entries
from fhir_clr.engine.bundles import BundleProcessor
from fhir_clr.engine.content import with_identity
from fhir_clr.engine.rules import Prefetched
from fhir_clr.engine.validation_pool import ValidationPool
from fhir_clr.engine.writes import Plan
from fhir_clr.errors import FhirError
from fhir_clr.store.port import Change, MatchKeyTaken, StoredResource, VersionConflict

COMMIT_ATTEMPTS = 5
PendingCommit = Callable[[], Awaitable[list["GroupResult"]]]
"""The commit of planned groups, run when awaited (see :meth:`RowBatchWriter.start`)."""


@dataclass(slots=True)
class GroupResult:
    """What became of one group: ``applied`` (something written), ``unchanged`` or ``rejected`` (with the
    error). ``written`` holds the stored results of the group's writes, in entry order."""

    key: Hashable
    outcome: str
    error: FhirError | None = None
    written: list[StoredResource] = field(default_factory=list)


@dataclass(slots=True)
class _Planned:
    key: Hashable
    bundle: dict[str, Any]
    plans: dict[int, Plan]

    def changes(self) -> list[Change]:
        return [c for plan in self.plans.values() for c in plan.changes()]


@dataclass(slots=True)
class _Checks:
    """The worker's validation of one call's groups: the resources it checks (by group, then entry index), the
    pending verdicts, and once they are in, the groups it refused."""

    resources: dict[Hashable, dict[int, dict[str, Any]]] = field(default_factory=dict)
    verdicts: Awaitable[list[bool]] | None = None
    refused: set[Hashable] = field(default_factory=set)

    def mark(self, key: Hashable, requests: list[EntryRequest]) -> bool:
        """Tell planning which of the group's resources the worker validates (none for a refused group); True
        when it validates any."""
        checked = self.resources.get(key) if key not in self.refused else None
        if not checked:
            return False
        for request in requests:
            request.checked_elsewhere = checked.get(request.index)
        return True


class RowBatchWriter:
    """Plans groups one by one and commits them in batches through one engine (and its caller's access)."""

    def __init__(self, processor: BundleProcessor, base_url: str = "", *, dry_run: bool = False,
                 validation: ValidationPool | None = None) -> None:
        self.processor = processor
        self.base_url = base_url
        self.dry_run = dry_run
        """Plan and check every group but commit nothing (results say what would be applied)."""
        self.validation = validation
        """Where the groups' ``PUT`` resources are validated while they are planned (None: in-process)."""

    async def write(self, groups: Sequence[tuple[Hashable, dict[str, Any]]]) -> list[GroupResult]:
        """Run every ``(key, transaction Bundle)`` group; one result per group, in order."""
        finish = await self.start(groups)
        return await finish()

    async def start(self, groups: Sequence[tuple[Hashable, dict[str, Any]]]) -> PendingCommit:
        """Plan every group now (committing early only where a group overlaps an earlier one) and hand back the
        commit of the rest: awaiting its call commits and gives one result per group, in order. A caller may
        plan further groups while that commit runs, provided they read nothing these groups write. The rules
        read ahead once for the groups' updates (``Engine.prefetch``); every group is planned with that."""
        results: dict[Hashable, GroupResult] = {}
        checks = self._checks(groups)
        prefetched = await self.processor.engine.prefetch(_updated_references(bundle for _, bundle in groups))
        batch = await self._write_groups(groups, results, prefetched, checks)

        async def finish() -> list[GroupResult]:
            await self._flush(await self._settle(groups, checks, batch, results, prefetched), results, prefetched)
            return [results[key] for key, _ in groups]

        return finish

    def _checks(self, groups: Sequence[tuple[Hashable, dict[str, Any]]]) -> _Checks:
        """The groups' ``PUT [type]/[id]`` resources, sent to the validation worker (when there is one and it
        takes the batch)."""
        if self.validation is None:
            return _Checks()
        checked: dict[Hashable, dict[int, dict[str, Any]]] = {}
        items: list[tuple[str, dict[str, Any]]] = []
        for key, bundle in groups:
            for index, (resource_type, resource) in _updates(bundle):
                checked.setdefault(key, {})[index] = resource
                items.append((resource_type, resource))
        verdicts = self.validation.check(items)
        return _Checks(checked, verdicts) if verdicts is not None else _Checks()

    async def _settle(self, groups: Sequence[tuple[Hashable, dict[str, Any]]], checks: _Checks,
                      batch: list[_Planned], results: dict[Hashable, GroupResult], prefetched: Prefetched
                      ) -> list[_Planned]:
        """``batch`` once the worker's verdicts are in: every group planned so far that it refused is planned
        again with in-process validation (which decides its result, as it would have without the worker).
        A worker that fails refuses everything it was given."""
        if checks.verdicts is None:
            return batch
        try:
            verdicts = iter(await checks.verdicts)
            checks.refused = {key for key, entries in checks.resources.items()
                              if not all([next(verdicts) for _ in entries])}
        except Exception:  # the worker process died or failed: validate everything here
            checks.refused = set(checks.resources)
        checks.verdicts = None
        if not checks.refused:
            return batch
        kept = [group for group in batch if group.key not in checks.refused]
        planned = {group.key for group in batch} | set(results)
        for key, bundle in groups:
            if key in checks.refused and key in planned:
                results.pop(key, None)
                again = await self._plan(key, bundle, results, prefetched, checks)
                if again is not None:
                    kept.append(again)
        return kept

    async def _write_groups(self, groups: Sequence[tuple[Hashable, dict[str, Any]]],
                            results: dict[Hashable, GroupResult], prefetched: Prefetched, checks: _Checks
                            ) -> list[_Planned]:
        """Plan the groups in order, committing a batch whenever a group overlaps it; the last batch, planned
        and not committed."""
        batch: list[_Planned] = []
        touched: set[tuple[str, str]] = set()
        claimed: set[str] = set()
        for key, bundle in groups:
            planned = await self._plan(key, bundle, results, prefetched, checks)
            if planned is None:
                continue
            resources = {(c.resource_type, c.resource_id) for c in planned.changes()}
            keys = {k for c in planned.changes() for k in c.match_keys}
            if resources & touched or keys & claimed:
                await self._flush(await self._settle(groups, checks, batch, results, prefetched), results,
                                  prefetched)
                prefetched.clear()  # the flushed rows may have changed what was read before them
                batch, touched, claimed = [], set(), set()
                planned = await self._plan(key, bundle, results, prefetched, checks)
                if planned is None:
                    continue
                resources = {(c.resource_type, c.resource_id) for c in planned.changes()}
                keys = {k for c in planned.changes() for k in c.match_keys}
            batch.append(planned)
            touched |= resources
            claimed |= keys
        return batch

    async def _plan(self, key: Hashable, bundle: dict[str, Any], results: dict[Hashable, GroupResult],
                    prefetched: Prefetched, checks: _Checks) -> _Planned | None:
        """The group's plans, or None when it is already decided (rejected, or nothing to write)."""
        marked = False
        try:
            requests = parse_entries(bundle, (*self.processor.base_urls, self.base_url), self.processor.max_entries)
            marked = checks.mark(key, requests)
            plans = await self.processor.plan_transaction(requests, prefetched=prefetched)
        except FhirError as error:
            results[key] = GroupResult(key, "rejected", error)
            return None
        except Exception:
            if not marked:
                raise
            # the rules met a resource not validated yet: plan it as without the worker (validation first)
            return await self._plan(key, bundle, results, prefetched, _Checks())
        planned = _Planned(key, bundle, plans)
        if not planned.changes():
            results[key] = GroupResult(key, "unchanged", written=[p.existing for p in plans.values()
                                                                  if p.existing is not None])
            return None
        return planned

    async def _flush(self, batch: list[_Planned], results: dict[Hashable, GroupResult],
                     prefetched: Prefetched) -> None:
        """Commit ``batch`` (its groups already settled, see :meth:`_settle`)."""
        if not batch:
            return
        if self.dry_run:
            results.update((g.key, GroupResult(g.key, "applied")) for g in batch)
            return
        store = self.processor.engine.store
        for _ in range(COMMIT_ATTEMPTS):
            try:
                stored = iter(await store.commit([c for group in batch for c in group.changes()]))
            except (VersionConflict, MatchKeyTaken):
                prefetched.clear()  # a concurrent writer won: read everything again
                batch = await self._replan(batch, results, prefetched)
                if not batch:
                    return
                continue
            for group in batch:
                results[group.key] = GroupResult(group.key, "applied",
                                                 written=[next(stored) for _ in group.changes()])
            return
        for group in batch:  # still racing: give each group its own commit
            await self._commit_alone(group, results)

    async def _replan(self, batch: list[_Planned], results: dict[Hashable, GroupResult], prefetched: Prefetched
                      ) -> list[_Planned]:
        replanned = []
        for group in batch:
            again = await self._plan(group.key, group.bundle, results, prefetched, _Checks())
            if again is not None:
                replanned.append(again)
        return replanned

    async def _commit_alone(self, group: _Planned, results: dict[Hashable, GroupResult]) -> None:
        try:
            written = await self.processor.engine.store.commit(group.changes())
        except (VersionConflict, MatchKeyTaken):
            results[group.key] = GroupResult(group.key, "rejected", FhirError(
                409, "conflict", "The row kept conflicting with concurrent writes; import it again"))
            return
        results[group.key] = GroupResult(group.key, "applied", written=written)


def _by_id(bundle: dict[str, Any], methods: tuple[str, ...]) -> Iterable[tuple[int, str, dict[str, Any]]]:
    """``(entry index, "Type/id", entry)`` of the group's entries that are a request of one of ``methods`` on
    ``[type]/[id]`` (no conditional URL)."""
    for index, entry in enumerate(bundle.get("entry") or ()):
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or request.get("method") not in methods:
            continue
        url = request.get("url")
        if isinstance(url, str) and url.count("/") == 1 and "?" not in url:
            yield index, url, entry


def _updates(bundle: dict[str, Any]) -> Iterable[tuple[int, tuple[str, dict[str, Any]]]]:
    """``(entry index, (type, resource with its id))`` of the group's ``PUT [type]/[id]`` entries, as planning
    validates them."""
    for index, url, entry in _by_id(bundle, ("PUT",)):
        resource = entry.get("resource")
        if isinstance(resource, dict):
            resource_type, resource_id = url.split("/")
            yield index, (resource_type, with_identity(resource, resource_id))


def _updated_references(bundles: Iterable[dict[str, Any]]) -> set[str]:
    """``Type/id`` of every resource the groups update by id (``PUT``/``PATCH [type]/[id]`` entries)."""
    return {url for bundle in bundles for _, url, _ in _by_id(bundle, ("PUT", "PATCH"))}
