"""``fhir-clr seed --members N``: an invented population loaded through MIF and RTF imports, covering every
service, Referral Type, status and closure reason; loading twice adds nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import orjson

from fhir_clr.app import build_services
from fhir_clr.clr.codes import bundled_code_lists
from fhir_clr.config import Settings
from fhir_clr.synthetic import PATHS, generate_population, load_population

AS_OF = date(2026, 11, 24)


def test_population_covers_every_code_and_is_deterministic() -> None:
    population = generate_population(60, AS_OF, bundled_code_lists())
    assert population.referrals[7].cin == generate_population(60, AS_OF, bundled_code_lists()).referrals[7].cin
    assert {r.service for r in population.referrals} == set(bundled_code_lists()["clr-services"].concepts)
    assert {r.referral_type for r in population.referrals} == {"1", "2", "3"}
    statuses = {step[0] for r in population.referrals for step in r.path}
    assert statuses == {"1", "2", "3", "4", "5"}
    reasons = {reason for path in PATHS for _, reason in path if reason}
    assert reasons <= set(bundled_code_lists()["loop-closure-reason"].concepts)
    assert {r.decision for r in population.referrals} == {None, "approved", "denied"}


async def test_population_loads_through_the_file_pipeline_once(tmp_path: Path) -> None:
    services = await build_services(Settings(data_dir=tmp_path / "data", dev=True))
    try:
        population = generate_population(40, AS_OF, bundled_code_lists())
        first = await load_population(services, population, tmp_path / "files")
        assert first["rejected"] == 2 and first["applied"] > 40  # only the two deliberately bad rows
        await _everything_the_console_shows(services)
        assert (tmp_path / "files" / "mif.csv").exists()
        again = await load_population(services, population)
        # nothing new: every row of every file comes back unchanged (older monthly rows are on record already)
        assert again["applied"] == 0 and again["unchanged"] >= 40 and again["rejected"] == 2
        closed = await services.engine.search("Task", [("referral-status", "5"), ("_summary", "count")])
        assert (closed.total or 0) > 0
        owed = await services.engine.search("Task", [("code", "loop-closure-referring-entity")])
        assert owed.matches and orjson.loads(owed.matches[0].body or b"{}")["status"] == "requested"
    finally:
        await services.store.close()


async def _count(services: object, resource_type: str, params: list[tuple[str, str]]) -> int:
    found = await services.engine.search(resource_type, [*params, ("_summary", "count")])  # type: ignore[attr-defined]
    return found.total or 0


async def _everything_the_console_shows(services: object) -> None:
    """Both kinds of duplicates, every closure reason, declines and their reassignment, inquiries, and notices
    recorded on time and late."""
    flags = "http://fhir-clr.org/fhir/CodeSystem/referral-flags"
    assert await _count(services, "ServiceRequest", [("_tag", f"{flags}|duplicate-authorized")]) == 1
    assert await _count(services, "ServiceRequest", [("_tag", f"{flags}|coordination-needed")]) == 2
    for reason in bundled_code_lists()["loop-closure-reason"].concepts:
        assert await _count(services, "Task", [("closure-reason", reason)]) > 0, reason
    declined = await _count(services, "Task", [("referral-status", "2")])
    assert declined > 0
    assert await _count(services, "Communication", [("category", "status-inquiry")]) == 3
    completed = await services.engine.search("Task", [("status", "completed"), ("code", ",".join((  # type: ignore
        "authorization-decision-member", "authorization-decision-referring-entity", "inquiry-response"))),
        ("_count", "500")])
    timeliness = set()
    for stored in completed.matches:
        task = orjson.loads(stored.body or b"{}")
        done, due = task["executionPeriod"]["end"][:10], task["restriction"]["period"]["end"][:10]
        timeliness.add("on time" if done <= due else "late")
    assert timeliness == {"on time", "late"}
