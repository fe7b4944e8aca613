"""Running one export: each requested type is read in pages and streamed to NDJSON files; with ``_since``,
resources deleted since then are listed as DELETE Bundles. Memory holds one page; the output can be any size.

A type whose export is a single unfiltered read (no ``_typeFilter``, no Member restriction) by a caller who may
see every resource of it is read straight from the store with ``Store.iter_current``, a keyset scan whose cost
per resource does not grow with the table. Everything else (``_typeFilter``, Patient and Group scopes, callers
whose access policy restricts the type) goes through the engine's search with the requester's access.

``transactionTime`` is taken when the job starts, after a write barrier (every commit that began before it
has finished), and every read is bounded by it: the export is a consistent cut, and a later
``_since=<transactionTime>`` export picks up exactly what came after.
"""

from __future__ import annotations

import errno
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import orjson

from fhir_clr.bulk.groups import export_group
from fhir_clr.bulk.jobs import COMPLETE, RUNNING, ExportJob, JobDirectory
from fhir_clr.bulk.params import PATIENT_LINKS, ExportRequest
from fhir_clr.bulk.writer import NdjsonFiles
from fhir_clr.engine.engine import Engine
from fhir_clr.errors import FhirError
from fhir_clr.store.port import HistoryFilter, StoredResource

PATIENT_CHUNK = 100
PROGRESS_EVERY = 10_000
"""The job's progress is saved each time this many more resources of a type have been written."""
BARRIER_LEASE = "bulk-export/barrier"


def instant(us: int) -> str:
    """A FHIR instant (microsecond precision) for epoch microseconds."""
    return datetime.fromtimestamp(us / 1e6, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ExportRunner:
    """Runs export jobs through one engine (scoped per job to the requester's access)."""

    def __init__(self, engine: Engine, jobs: JobDirectory, *, page_size: int = 1000, max_lines: int = 100_000,
                 on_progress: Callable[[ExportJob], None] | None = None) -> None:
        self.engine = engine
        self.jobs = jobs
        self.page_size = page_size
        self.max_lines = max_lines
        self.on_progress = on_progress

    async def run(self, job: ExportJob, scoped: Engine) -> None:
        """Run ``job`` to completion (its state saved as it goes); FhirError for a request that fails."""
        request = ExportRequest.from_doc(job.request)
        self.jobs.clear_files(job)
        until_us = time.time_ns() // 1000
        await self._barrier()
        job.status, job.transaction_time, job.output, job.deleted = RUNNING, instant(until_us), [], []
        self._save(job, "started")
        patients = await self._patients(request, scoped)
        folder = self.jobs.folder(job.id)
        output = NdjsonFiles(folder, self.max_lines)
        deleted = NdjsonFiles(folder, self.max_lines, prefix="deleted-")
        try:
            for number, resource_type in enumerate(request.types, 1):
                written = 0
                async with aclosing(self._pages(scoped, request, resource_type, until_us, patients)) as pages:
                    async for bodies in pages:
                        for body in bodies:
                            output.write(resource_type, body)
                        before, written = written, written + len(bodies)
                        if written // PROGRESS_EVERY > before // PROGRESS_EVERY:
                            job.output = output.files
                            self._save(job, f"{resource_type} ({number}/{len(request.types)}): "
                                            f"{written:,} resources")
                if request.since_us is not None:
                    async for reference in self._deleted(resource_type, request, until_us, patients, scoped):
                        deleted.write("Bundle", orjson.dumps({"resourceType": "Bundle", "type": "transaction",
                                                              "entry": [{"request": {"method": "DELETE",
                                                                                     "url": reference}}]}))
                self._save(job, f"{resource_type} done ({number}/{len(request.types)})")
        finally:
            output.close()
            deleted.close()
        job.output, job.deleted, job.status = output.files, deleted.files, COMPLETE
        self._save(job, "complete")

    def _save(self, job: ExportJob, progress: str) -> None:
        job.progress = progress
        self.jobs.save(job)
        if self.on_progress is not None:
            self.on_progress(job)

    async def _barrier(self) -> None:
        """Wait until every commit queued before now has finished (a write through the store's writer)."""
        owner = f"barrier-{time.time_ns()}"
        if await self.engine.store.acquire_lease(BARRIER_LEASE, owner, 1.0):
            await self.engine.store.release_lease(BARRIER_LEASE, owner)

    async def _patients(self, request: ExportRequest, scoped: Engine) -> list[str] | None:
        """The Members a Patient or Group export is limited to (None: every Member)."""
        if request.level == "group":
            group = orjson.loads((await export_group(scoped, request.group_id or "")).body or b"{}")
            members = [m.get("entity", {}).get("reference", "") for m in group.get("member") or []]
            found = [m for m in members if m.startswith("Patient/")]
            if request.patients:
                found = [m for m in found if m in set(request.patients)]
            return found
        if request.level == "patient" and request.patients:
            return list(request.patients)
        return None

    def _scopes(self, request: ExportRequest, resource_type: str, patients: list[str] | None
                ) -> list[list[tuple[str, str]]]:
        """The searches (one per patient chunk and per ``_typeFilter``) whose results make up the type."""
        link = PATIENT_LINKS.get(resource_type, ("",))[0]
        if request.level == "system":
            scopes: list[list[tuple[str, str]]] = [[]]
        elif patients is None:
            scopes = [[]] if resource_type == "Patient" else [[(f"{link}:missing", "false")]]
        else:
            chunks = [patients[i:i + PATIENT_CHUNK] for i in range(0, len(patients), PATIENT_CHUNK)]
            values = [[p.removeprefix("Patient/") if link == "_id" else p for p in chunk] for chunk in chunks]
            scopes = [[(link, ",".join(v))] for v in values]
        filters = request.type_filters.get(resource_type)
        if not filters:
            return scopes
        return [[*scope, *parse_qsl(f, keep_blank_values=True)] for scope in scopes for f in filters]

    def _pages(self, scoped: Engine, request: ExportRequest, resource_type: str, until_us: int,
               patients: list[str] | None) -> AsyncGenerator[list[bytes], None]:
        """The exported JSON of one type, a page at a time: a store scan when the type's export is one
        unfiltered read the caller may see in full, else the searches of ``_scopes``."""
        searches = self._scopes(request, resource_type, patients)
        if searches == [[]] and scoped.access.restriction(resource_type) is None:
            scoped.access.require(resource_type, "s")
            return scoped.store.iter_current(resource_type, since_us=request.since_us, until_us=until_us,
                                             batch=self.page_size)
        return self._searched(scoped, request, resource_type, until_us, searches)

    async def _searched(self, scoped: Engine, request: ExportRequest, resource_type: str, until_us: int,
                        searches: list[list[tuple[str, str]]]) -> AsyncGenerator[list[bytes], None]:
        """The results of ``searches`` with the requester's access, each resource once, a page at a time."""
        bounds = [("_count", str(self.page_size)), ("_lastUpdated", f"le{instant(until_us)}")]
        if request.since:
            bounds.append(("_lastUpdated", f"gt{request.since}"))
        seen: set[str] | None = set() if len(searches) > 1 else None
        for params in searches:
            async for page in scoped.iter_pages(resource_type, [*bounds, *params], strict=True):
                bodies = []
                for stored in page.matches:
                    if seen is not None:
                        if stored.resource_id in seen:
                            continue
                        seen.add(stored.resource_id)
                    bodies.append(stored.body or b"{}")
                yield bodies

    async def _deleted(self, resource_type: str, request: ExportRequest, until_us: int,
                       patients: list[str] | None, scoped: Engine) -> AsyncIterator[str]:
        """``Type/id`` of resources deleted after ``_since`` (and still deleted at the transaction time); for a
        restricted requester only those whose last live version's own content named it (a party element, the
        subscriber, the created-by tag)."""
        store = self.engine.store
        reported: set[str] = set()
        token: str | None = None
        while True:
            page = await store.history(HistoryFilter(resource_type=resource_type, since_us=request.since_us),
                                       self.page_size, token)
            for version in page.entries:
                if not version.deleted or version.last_updated_us > until_us or version.resource_id in reported:
                    continue
                current = await store.read(resource_type, version.resource_id)
                if current is None or not current.deleted or current.version != version.version:
                    continue
                if request.level != "system" and not await self._was_in_scope(version, patients):
                    continue
                if not await self._was_requesters(version, scoped):
                    continue
                reported.add(version.resource_id)
                yield f"{resource_type}/{version.resource_id}"
            token = page.next_token
            if not token:
                return

    async def _was_requesters(self, tombstone: StoredResource, scoped: Engine) -> bool:
        """Whether the requester may learn of this deletion: always when unrestricted, else when the last live
        version named it."""
        if scoped.access.restriction(tombstone.resource_type) is None:
            return True
        last = await self.engine.store.read_version(tombstone.resource_type, tombstone.resource_id,
                                                    tombstone.version - 1)
        return last is not None and last.body is not None and scoped.access.names_caller(
            tombstone.resource_type, orjson.loads(last.body))

    async def _was_in_scope(self, tombstone: StoredResource, patients: list[str] | None) -> bool:
        """Whether the last live version of a deleted resource belonged to the exported Members."""
        if tombstone.resource_type == "Patient":
            return patients is None or f"Patient/{tombstone.resource_id}" in patients
        last = await self.engine.store.read_version(tombstone.resource_type, tombstone.resource_id,
                                                    tombstone.version - 1)
        if last is None or last.body is None:
            return False
        link = PATIENT_LINKS[tombstone.resource_type][0]
        index = self.engine.registry.extract_param(orjson.loads(last.body), link)
        members = {ref for code, ref in index.references if code == link}
        return bool(members) if patients is None else bool(members & set(patients))


def failure_of(error: Exception) -> str:
    """A job failure's message (no resource content)."""
    if isinstance(error, FhirError):
        return error.issues[0].message
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "no disk space left for the export files; start it again once there is room"
    return f"the export failed ({type(error).__name__})"
