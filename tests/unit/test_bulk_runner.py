"""Which read an export job takes: a store scan (``Store.iter_current``) for a type whose export is one
unfiltered read the requester may see in full, the engine's search with the requester's access otherwise; both
give the same files."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_clr.bulk.jobs import COMPLETE, JobDirectory
from fhir_clr.bulk.params import parse_export
from fhir_clr.bulk.runner import ExportRunner
from fhir_clr.engine.access import FullAccess
from fhir_clr.engine.engine import Engine
from fhir_clr.store.query import Condition, Criterion, ParamType, TokenValue
from fhir_clr.store.sqlite import SqliteStore
from tests.bundled import clr_engine


class ListedPatients(FullAccess):
    """A caller whose policy restricts Patients to a list of ids (and sees every resource of other types)."""

    def __init__(self, *patient_ids: str) -> None:
        self.patient_ids = patient_ids

    def restriction(self, resource_type: str) -> Criterion | None:
        """Patients: those listed; other types: all."""
        if resource_type != "Patient":
            return None
        return Condition("_id", ParamType.TOKEN, tuple(TokenValue(None, i) for i in self.patient_ids))


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    store = SqliteStore(tmp_path / "runner.sqlite3", read_threads=2)
    await store.open()
    try:
        yield clr_engine(store)
    finally:
        await store.close()


def count_scans(engine: Engine) -> list[str]:
    """Record the type of every ``iter_current`` call on the engine's store."""
    scanned: list[str] = []
    original = engine.store.iter_current

    def spy(resource_type: str, **bounds: Any) -> AsyncGenerator[list[bytes], None]:
        scanned.append(resource_type)
        return original(resource_type, **bounds)

    engine.store.iter_current = spy  # type: ignore[method-assign]
    return scanned


async def export(engine: Engine, folder: Path, access: FullAccess, pairs: list[tuple[str, str]],
                 level: str = "system") -> dict[str, list[dict[str, Any]]]:
    """Run one export job to completion with 2 resources a page and 3 lines a file; resources by type."""
    jobs = JobDirectory(folder)
    job = jobs.create(parse_export(level, pairs, "test").as_doc(), {})
    await ExportRunner(engine, jobs, page_size=2, max_lines=3).run(job, engine.with_access(access))
    assert job.status == COMPLETE
    found: dict[str, list[dict[str, Any]]] = {}
    for item in job.output:
        lines = (jobs.folder(job.id) / item.name).read_bytes().splitlines()
        assert len(lines) == item.count <= 3
        found.setdefault(item.type, []).extend(orjson.loads(line) for line in lines)
    return found


async def members(engine: Engine, count: int) -> list[str]:
    """Create ``count`` Patients; their ids in creation order."""
    made = [await engine.create("Patient", {"resourceType": "Patient", "gender": "female"}) for _ in range(count)]
    return [m.stored.resource_id for m in made if m.stored is not None]


async def test_an_unrestricted_system_export_scans_the_store(engine: Engine, tmp_path: Path) -> None:
    ids = await members(engine, 7)
    await engine.delete("Patient", ids[3])
    scanned = count_scans(engine)
    found = await export(engine, tmp_path, FullAccess(), [("_type", "Patient")])
    assert scanned == ["Patient"]
    assert [r["id"] for r in found["Patient"]] == ids[:3] + ids[4:]


async def test_a_restricted_type_is_searched_with_the_requesters_access(engine: Engine, tmp_path: Path) -> None:
    ids = await members(engine, 5)
    await engine.create("Goal", {"resourceType": "Goal", "lifecycleStatus": "active", "description": {"text": "x"},
                                 "subject": {"reference": f"Patient/{ids[0]}"}})
    scanned = count_scans(engine)
    found = await export(engine, tmp_path, ListedPatients(ids[2]), [("_type", "Patient,Goal")])
    assert scanned == ["Goal"]
    assert [r["id"] for r in found["Patient"]] == [ids[2]]
    assert len(found["Goal"]) == 1


async def test_type_filters_and_member_scopes_are_searched(engine: Engine, tmp_path: Path) -> None:
    await members(engine, 4)
    await engine.create("Patient", {"resourceType": "Patient", "gender": "male"})
    scanned = count_scans(engine)
    found = await export(engine, tmp_path / "filtered", FullAccess(),
                         [("_type", "Patient"), ("_typeFilter", "Patient?gender=male")])
    assert scanned == [] and [r["gender"] for r in found["Patient"]] == ["male"]
    found = await export(engine, tmp_path / "patient", FullAccess(), [("_type", "Patient,Goal")], "patient")
    assert scanned == ["Patient"] and len(found["Patient"]) == 5 and "Goal" not in found


async def test_scan_and_search_write_the_same_lines(engine: Engine, tmp_path: Path) -> None:
    ids = await members(engine, 6)
    await engine.update("Patient", ids[1], {"resourceType": "Patient", "id": ids[1], "gender": "other"})
    await engine.delete("Patient", ids[4])
    scanned = await export(engine, tmp_path / "scan", FullAccess(), [("_type", "Patient")])
    searched = await export(engine, tmp_path / "search", ListedPatients(*ids), [("_type", "Patient")])
    assert scanned == searched and len(scanned["Patient"]) == 5
