"""Export jobs kept on disk (``<data dir>/exports/<job id>/job.json`` next to the job's NDJSON files), so they
are visible to every request of the process and survive a restart: an unfinished job is started again from
scratch when the server comes back (its partial files are removed first)."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

QUEUED, RUNNING, COMPLETE, FAILED = "queued", "running", "complete", "failed"


@dataclass(slots=True)
class OutputFile:
    """One NDJSON file of a finished export."""

    type: str
    name: str
    count: int


@dataclass(slots=True)
class ExportJob:
    """An export: who asked, what, and how far it got."""

    id: str
    request: dict[str, Any]
    requester: dict[str, Any]
    """The caller: ``organization`` (None for the plan in dev mode), ``role``, ``client_id``, ``scopes``."""
    status: str = QUEUED
    transaction_time: str | None = None
    progress: str = "queued"
    output: list[OutputFile] = field(default_factory=list)
    deleted: list[OutputFile] = field(default_factory=list)
    errors: list[OutputFile] = field(default_factory=list)
    failure: str | None = None

    def as_doc(self) -> dict[str, Any]:
        """The job as stored."""
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ExportJob:
        """The job of a stored document."""
        files = {k: [OutputFile(**f) for f in doc.get(k) or []] for k in ("output", "deleted", "errors")}
        return cls(doc["id"], doc["request"], doc["requester"], doc["status"], doc.get("transaction_time"),
                   doc.get("progress", ""), files["output"], files["deleted"], files["errors"], doc.get("failure"))


class JobDirectory:
    """The jobs under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, job_id: str) -> Path:
        """Where a job's files live."""
        return self.root / job_id

    def create(self, request: dict[str, Any], requester: dict[str, Any]) -> ExportJob:
        """A new queued job, saved."""
        job = ExportJob(uuid.uuid4().hex, request, requester)
        self.folder(job.id).mkdir(parents=True, exist_ok=True)
        try:
            self.save(job)
        except OSError:  # e.g. a full disk: no half-made job is left behind (the kick-off answers 503)
            self.remove(job.id)
            raise
        return job

    def save(self, job: ExportJob) -> None:
        """Write the job's state atomically (write to a temporary file, then rename)."""
        folder = self.folder(job.id)
        if not folder.is_dir():
            return  # cancelled meanwhile
        temporary = folder / "job.json.tmp"
        temporary.write_bytes(orjson.dumps(job.as_doc()))
        os.replace(temporary, folder / "job.json")

    def load(self, job_id: str) -> ExportJob | None:
        """The job, or None when unknown (or removed)."""
        if not job_id.isalnum():
            return None
        try:
            return ExportJob.from_doc(orjson.loads((self.folder(job_id) / "job.json").read_bytes()))
        except (OSError, orjson.JSONDecodeError):
            return None

    def all(self) -> list[ExportJob]:
        """Every stored job."""
        if not self.root.is_dir():
            return []
        jobs = [self.load(p.name) for p in sorted(self.root.iterdir()) if p.is_dir()]
        return [j for j in jobs if j is not None]

    def remove(self, job_id: str) -> None:
        """Delete the job and its files."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)

    def clear_files(self, job: ExportJob) -> None:
        """Remove a job's NDJSON files (before running it again)."""
        for path in self.folder(job.id).glob("*.ndjson"):
            path.unlink(missing_ok=True)
