"""Export jobs in the background of the server process: started on kick-off, cancelled on DELETE, resumed
(from scratch) at start-up when the previous process stopped or died before they finished."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from fhir_clr.auth.clients import Role
from fhir_clr.auth.policy import OrganizationPolicy
from fhir_clr.auth.scopes import ScopeSet
from fhir_clr.auth.tokens import Caller
from fhir_clr.bulk.jobs import FAILED, QUEUED, RUNNING, ExportJob, JobDirectory
from fhir_clr.bulk.runner import ExportRunner, failure_of
from fhir_clr.engine.access import FULL_ACCESS, AccessPolicy
from fhir_clr.engine.engine import Engine

log = logging.getLogger(__name__)


def requester_of(access: AccessPolicy) -> dict[str, Any]:
    """What a job remembers of its requester, enough to rebuild its access after a restart."""
    if isinstance(access, OrganizationPolicy):
        caller = access.caller
        return {"organization": caller.organization, "role": str(caller.role), "client_id": caller.client_id,
                "scopes": list(caller.scopes.granted)}
    return {}


def same_requester(job: ExportJob, access: AccessPolicy) -> bool:
    """Only the client that started a job sees it (in development mode, everyone is the same requester)."""
    mine, theirs = requester_of(access), job.requester
    return mine.get("client_id") == theirs.get("client_id") and mine.get("organization") == theirs.get("organization")


class ExportService:
    """Owns the export jobs of one data directory."""

    def __init__(self, engine: Engine, data_dir: Path, *, max_lines: int = 100_000) -> None:
        self.engine = engine
        self.jobs = JobDirectory(data_dir / "exports")
        self.runner = ExportRunner(engine, self.jobs, max_lines=max_lines)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._unsaved: dict[str, ExportJob] = {}
        """Failed jobs whose record could not be written (full disk): answered from memory."""

    def find(self, job_id: str) -> ExportJob | None:
        """The job (its failure from memory when the disk could not take it), or None when unknown."""
        return self._unsaved.get(job_id) or self.jobs.load(job_id)

    def access_of(self, job: ExportJob) -> AccessPolicy:
        """The requester's access policy, rebuilt from the job."""
        requester = job.requester
        if not requester:
            return FULL_ACCESS
        caller = Caller(requester["client_id"], requester["organization"], Role(requester["role"]),
                        ScopeSet.from_strings(requester["scopes"]))
        return OrganizationPolicy(caller, self.engine.registry)

    def busy(self, access: AccessPolicy) -> bool:
        """True while the requester already has an export queued or running."""
        return any(t for job_id, t in self._tasks.items() if not t.done() and (job := self.jobs.load(job_id))
                   and same_requester(job, access))

    def start(self, request: dict[str, Any], access: AccessPolicy) -> ExportJob:
        """Create and start a job."""
        job = self.jobs.create(request, requester_of(access))
        self._launch(job)
        return job

    def _launch(self, job: ExportJob) -> None:
        self._tasks[job.id] = asyncio.create_task(self._run(job), name=f"export {job.id}")

    async def _run(self, job: ExportJob) -> None:
        try:
            await self.runner.run(job, self.engine.with_access(self.access_of(job)))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the job fails, the server goes on; no resource content is logged
            job.status, job.failure, job.output, job.deleted = FAILED, failure_of(error), [], []
            log.warning("export failed", extra={"job": job.id, "error": type(error).__name__})
            self.jobs.clear_files(job)  # partial NDJSON files are of no use and may be what filled the disk
            try:
                self.jobs.save(job)
            except OSError as unsaved:
                self._unsaved[job.id] = job
                log.error("export failure not recorded on disk", extra={"job": job.id,
                                                                        "error": type(unsaved).__name__})

    async def resume(self) -> int:
        """Start again every job a previous process left unfinished; how many."""
        unfinished = [j for j in self.jobs.all() if j.status in (QUEUED, RUNNING)]
        for job in unfinished:
            job.status, job.progress = QUEUED, "restarted after a server restart"
            self.jobs.save(job)
            self._launch(job)
        return len(unfinished)

    async def cancel(self, job_id: str) -> None:
        """Stop the job if it runs and delete it with its files."""
        task = self._tasks.pop(job_id, None)
        self._unsaved.pop(job_id, None)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.jobs.remove(job_id)

    async def wait(self, job_id: str) -> ExportJob | None:
        """Wait for a job to finish (the CLI runs one job in the foreground)."""
        task = self._tasks.get(job_id)
        if task is not None:
            await task
        return self.find(job_id)

    async def stop(self) -> None:
        """Stop running jobs; they stay unfinished on disk and are resumed by the next process."""
        for task in self._tasks.values():
            task.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
