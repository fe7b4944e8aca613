"""Imports started over HTTP run as background jobs: the request returns at once (202) and the caller polls a
status URL, as with Bulk Data. Jobs live in this process; the durable record of a file is its
DocumentReference (``docStatus`` preliminary until every row has an outcome), so a restart loses only the
polling handle — importing the same file again completes it."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from fhir_clr.imports.results import ImportReport

log = logging.getLogger(__name__)
MAX_FINISHED_JOBS = 200
"""Finished jobs kept for polling; the oldest are forgotten first."""


@dataclass(slots=True)
class ImportJob:
    """One background import: who started it, how far it got, and its report or failure."""

    id: str
    organization: str | None
    rows_done: int = 0
    report: ImportReport | None = None
    failed: str | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def finished(self) -> bool:
        """True once the report (or the failure) is known."""
        return self.report is not None or self.failed is not None


class ImportJobs:
    """The running and recently finished imports of this process."""

    def __init__(self) -> None:
        self._jobs: dict[str, ImportJob] = {}

    def start(self, organization: str | None,
              work: Any) -> ImportJob:
        """Start ``work(job)`` — a coroutine function producing the report — in the background."""
        job = ImportJob(uuid.uuid4().hex, organization)
        self._jobs[job.id] = job
        job.task = asyncio.create_task(self._run(job, work(job)))
        self._forget_oldest()
        return job

    async def _run(self, job: ImportJob, work: Coroutine[Any, Any, ImportReport]) -> None:
        try:
            job.report = await work
        except asyncio.CancelledError:
            job.failed = "cancelled"
            raise
        except Exception as error:  # the job's failure is its result; details stay out of the response
            job.failed = "the import stopped on an internal error; importing the same file again resumes it"
            log.error("import job failed", extra={"job": job.id, "error": type(error).__name__})

    def get(self, job_id: str, organization: str | None) -> ImportJob | None:
        """The job, when ``organization`` started it (the plan, with no organization, sees its own jobs)."""
        job = self._jobs.get(job_id)
        return job if job is not None and job.organization == organization else None

    def cancel(self, job: ImportJob) -> None:
        """Stop a running job (rows already committed stay) and forget it."""
        if job.task is not None and not job.task.done():
            job.task.cancel()
        self._jobs.pop(job.id, None)

    async def stop(self) -> None:
        """Cancel the running jobs and wait until each has stopped (at shutdown, before the store closes)."""
        running = [j.task for j in self._jobs.values() if j.task is not None and not j.task.done()]
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def _forget_oldest(self) -> None:
        finished = [j for j in self._jobs.values() if j.finished]
        for job in finished[:max(0, len(finished) - MAX_FINISHED_JOBS)]:
            self._jobs.pop(job.id, None)
