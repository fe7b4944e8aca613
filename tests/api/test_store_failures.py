"""An ``$export`` on a full disk: the job fails with a message saying so (from memory when even its record
cannot be written), its partial files are removed, and a kick-off that cannot be recorded is a 503 with
Retry-After rather than a 500."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from fhir_clr.app import Services, create_app
from fhir_clr.bulk.jobs import FAILED, ExportJob, JobDirectory
from fhir_clr.bulk.params import parse_export
from fhir_clr.bulk.service import ExportService
from fhir_clr.config import Settings
from fhir_clr.engine.access import FULL_ACCESS
from fhir_clr.store.sqlite import records, writes

NO_SPACE = OSError(errno.ENOSPC, "No space left on device")


def _request() -> dict[str, Any]:
    return parse_export("system", [("_type", "Patient")], "test").as_doc()


@pytest.mark.parametrize("record_fails", [False, True])
async def test_an_export_that_fills_the_disk_fails_without_partial_files(
        services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, record_fails: bool) -> None:
    for n in range(5):
        await services.engine.create("Patient", {"resourceType": "Patient", "gender": "unknown", "id": f"p{n}"})
    exports = ExportService(services.engine, tmp_path, max_lines=2)
    real_save = JobDirectory.save

    def save(self: JobDirectory, job: ExportJob) -> None:
        if job.status == FAILED and record_fails:
            raise NO_SPACE  # not even the failure fits any more
        if job.status != FAILED and list(self.folder(job.id).glob("*.ndjson")):
            raise NO_SPACE  # some output is on disk when the space runs out
        real_save(self, job)

    monkeypatch.setattr(JobDirectory, "save", save)
    started = exports.start(_request(), FULL_ACCESS)
    job = await exports.wait(started.id)
    assert job is not None and job.status == FAILED
    assert job.failure == "no disk space left for the export files; start it again once there is room"
    assert list(exports.jobs.folder(job.id).glob("*.ndjson")) == []
    assert exports.find(job.id) is not None and exports.find(job.id).status == FAILED  # type: ignore[union-attr]
    on_disk = exports.jobs.load(job.id)
    assert on_disk is not None and (on_disk.status != FAILED if record_fails else on_disk.status == FAILED)


def test_a_kick_off_on_a_full_disk_is_503_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_room(self: JobDirectory, job: ExportJob) -> None:
        raise NO_SPACE

    monkeypatch.setattr(JobDirectory, "save", no_room)
    with TestClient(create_app(Settings(data_dir=tmp_path, dev=True))) as http:
        answer = http.get("/$export", headers={"Accept": "application/fhir+json", "Prefer": "respond-async"})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "30"
    assert "no disk space left" in answer.text
    assert list((tmp_path / "exports").iterdir()) == []


def test_readiness_follows_failing_writes_and_503s_carry_retry_after(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(*args: Any) -> Any:
        raise sqlite3.OperationalError("database or disk is full")

    headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
    with TestClient(create_app(Settings(data_dir=tmp_path, dev=True))) as http:
        with monkeypatch.context() as full:
            full.setattr(writes, "commit_group", disk_full)
            full.setattr(records, "write_records", disk_full)
            written = http.post("/Patient", content=b'{"resourceType":"Patient"}', headers=headers)
            assert written.status_code == 503 and written.headers["retry-after"] == "30"
            not_ready = http.get("/readyz")
            assert not_ready.status_code == 503 and not_ready.headers["retry-after"] == "30"
        assert http.get("/readyz").status_code == 200  # the probe write succeeds again: ready
        assert http.post("/Patient", content=b'{"resourceType":"Patient"}', headers=headers).status_code == 201
