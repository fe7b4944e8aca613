"""Importing an ECM RTF into a real embedded store: rows update their referrals through the CLR rules, bad rows
are rejected with reasons, re-importing changes nothing, a dry run writes nothing, and the received file starts
and satisfies the RTF processing clock. The CLI runs the same job in a subprocess."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_clr.app import Services, build_services
from fhir_clr.clr.config import bundled_rules
from fhir_clr.clr.obligations import kind_of
from fhir_clr.clr.rules.context import ObligationCache
from fhir_clr.config import Settings
from fhir_clr.imports.job import FileImporter, ImportRequest
from fhir_clr.imports.results import rejects_csv, rejects_outcome
from fhir_clr.mapping.values import npi_check_digit_ok
from fhir_clr.mapping.writers import write_table
from tests.api.clr_helpers import referral_body, referral_task_body
from tests.api.conftest import EMBEDDED_NOW
from tests.bundled import clr_rules_of, find_spec, plan_planning

NOW = EMBEDDED_NOW
SYSTEMS = bundled_rules()["identifier_systems"]


def valid_npi(prefix: str) -> str:
    """A 10-digit NPI starting with the 9 digits ``prefix`` and a valid check digit."""
    return next(f"{prefix}{d}" for d in "0123456789" if npi_check_digit_ok(f"{prefix}{d}"))


async def create(services: Services, body: dict[str, Any]) -> dict[str, Any]:
    result = await services.engine.create(body["resourceType"], body)
    assert result.stored is not None and result.stored.body is not None
    return orjson.loads(result.stored.body)


async def referral(services: Services, cin: str, npi: str) -> dict[str, Any]:
    """A Member with ``cin`` and an ECM referral Pending since 2 November with the provider ``npi``."""
    member = await create(services, {"resourceType": "Patient", "identifier": [{"system": SYSTEMS["cin"],
                                                                                "value": cin}]})
    found = await services.engine.planner.find("Organization", [("identifier", f"{SYSTEMS['npi']}|{npi}")])
    provider = found[0].resource_id if found else (await create(services, {
        "resourceType": "Organization", "name": "ECM provider",
        "identifier": [{"system": SYSTEMS["npi"], "value": npi}]}))["id"]
    clinic = await create(services, {"resourceType": "Organization", "name": "clinic"})
    request = await create(services, referral_body(f"Patient/{member['id']}", f"Organization/{clinic['id']}"))
    return await create(services, referral_task_body(request, f"Organization/{provider}"))


def rtf(rows: list[dict[str, Any]], fmt: str = "csv") -> bytes:
    out = io.BytesIO()
    write_table(find_spec("rtf", "ecm"), rows, fmt, out)
    return out.getvalue()


def row(cin: str, npi: str, status: str, day: date, reason: str | None = None) -> dict[str, Any]:
    return {"mcp_name": "Sample Plan", "member_cin": cin, "ecm_provider_name": "ECM provider",
            "ecm_provider_npi": npi, "referral_status": status, "referral_status_date": day,
            "loop_closure_reason": reason}


async def task_now(services: Services, task_id: str) -> dict[str, Any]:
    return orjson.loads((await services.engine.read("Task", task_id)).body or b"{}")


async def test_rtf_rows_apply_reject_and_reimport_unchanged(services: Services) -> None:
    npi = valid_npi("123456789")
    first = await referral(services, "12345678A", npi)
    second = await referral(services, "22345678B", npi)
    data = rtf([row("12345678A", npi, "1", date(2026, 11, 10)),
                row("22345678B", npi, "4", date(2026, 11, 10)),  # Pending → Outreach Initiated: a reported fact
                row("99999999Z", npi, "1", date(2026, 11, 10)),  # no such Member
                row("12345678A", npi, "1", date(2026, 12, 1))])  # status date in the future
    importer = FileImporter(services.bundles, services.engine.clock, services.specs)
    report = await importer.run(ImportRequest("rtf", data, "rtf-2026-11.csv", "ecm"))
    assert report.counts == {"applied": 2, "unchanged": 0, "rejected": 2}, rejects_csv(report)
    assert (await task_now(services, first["id"]))["businessStatus"]["coding"][0]["code"] == "1"
    assert (await task_now(services, second["id"]))["status"] == "in-progress"
    reasons = {r.number: [(p.column, p.rule) for p in r.problems] for r in report.rejected}
    assert reasons[4] == [("Member Client Index Number (CIN)", "match")]
    assert reasons[5] == [("Date of Referral Status Update", "rule")]
    assert "5,Date of Referral Status Update,12/01/2026,rule," in rejects_csv(report)  # the cell of a rule reject
    assert "row 4, column 'Member Client Index Number (CIN)'" in orjson.dumps(rejects_outcome(report)).decode()

    again = await importer.run(ImportRequest("rtf", data, "rtf-2026-11.csv", "ecm"))
    assert again.counts == {"applied": 0, "unchanged": 2, "rejected": 2}
    assert again.document_id == report.document_id

    document = orjson.loads((await services.engine.read("DocumentReference", report.document_id or "")).body or b"")
    assert document["docStatus"] == "final" and document["identifier"][0]["value"] == report.sha256
    clock = await services.engine.search("Task", [("focus", f"DocumentReference/{report.document_id}")])
    processing = [orjson.loads(s.body) for s in clock.matches if s.body is not None]
    assert [(o["status"], o["restriction"]["period"]["end"]) for o in processing] == [("completed", "2026-12-03")]



@pytest.mark.parametrize("batch_rows", [1, 500])
async def test_rows_for_one_referral_each_move_its_clocks(services: Services, monkeypatch: pytest.MonkeyPatch,
                                                          batch_rows: int) -> None:
    """The second row for the same referral is planned after the first is committed, so it sees the Task and
    the obligations the first one wrote: in the same batch (its prefetched obligations are not reused), or in
    the next one (which waits for the running commit of the first before reading)."""
    import fhir_clr.imports.job as job

    monkeypatch.setattr(job, "BATCH_ROWS", batch_rows)
    npi = valid_npi("423456789")
    task = await referral(services, "42345678D", npi)
    data = rtf([row("42345678D", npi, "1", date(2026, 11, 5)), row("42345678D", npi, "1", date(2026, 11, 9))])
    report = await FileImporter(services.bundles, services.engine.clock, services.specs).run(
        ImportRequest("rtf", data, "rtf-same.csv", "ecm"))
    assert report.counts == {"applied": 2, "unchanged": 0, "rejected": 0}, rejects_csv(report)
    found = await services.engine.search("Task", [("part-of", f"Task/{task['id']}"), ("_count", "50")])
    clocks = sorted((kind_of(o), o["status"]) for o in (orjson.loads(s.body) for s in found.matches
                                                           if s.body is not None))
    assert clocks == [("pending-follow-up", "cancelled"), ("status-update", "completed"),
                      ("status-update", "completed"), ("status-update", "requested")]

async def test_dry_run_writes_nothing_and_missing_columns_fail_the_file(services: Services) -> None:
    npi = valid_npi("223456789")
    task = await referral(services, "32345678C", npi)
    importer = FileImporter(services.bundles, services.engine.clock, services.specs)
    dry = await importer.run(ImportRequest("rtf", rtf([row("32345678C", npi, "Accepted", date(2026, 11, 10))]),
                                           "x.csv", "ecm", dry_run=True))
    assert dry.counts["applied"] == 1 and dry.document_id is None
    assert (await task_now(services, task["id"]))["meta"]["versionId"] == task["meta"]["versionId"]
    broken = await importer.run(ImportRequest("rtf", b"Member CIN,Referral Status\r\n12345678A,1\r\n", "y.csv",
                                              "ecm"))
    assert broken.rows == 0 and broken.file_problems
    assert "ECM Provider National Provider Identifier (NPI)" in broken.file_problems[0]


def with_cover_sheet(workbook_bytes: bytes, rtf_sheet: str) -> bytes:
    """The workbook with its sheet renamed ``rtf_sheet`` and an instructions sheet put before it."""
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(workbook_bytes))
    workbook.worksheets[0].title = rtf_sheet
    workbook.create_sheet("Instructions", 0).append(["Fill in one row per referral"])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_cli_imports_an_xlsx_rtf_from_a_named_sheet(tmp_path: Path) -> None:
    import asyncio

    npi = valid_npi("323456789")

    async def prepare() -> None:
        built = await build_services(Settings(data_dir=tmp_path, dev=True))
        try:
            await referral(built, "42345678D", npi)
        finally:
            await built.store.close()

    asyncio.run(prepare())
    file = tmp_path / "rtf.xlsx"
    file.write_bytes(with_cover_sheet(rtf([row("42345678D", npi, "1. Accepted", date(2026, 11, 10)),
                                           row("42345678D", "1234567890", "1", date(2026, 11, 10))], "xlsx"),
                                      "RTF Nov"))
    rejects = tmp_path / "rejects.csv"
    command = [sys.executable, "-m", "fhir_clr.cli", "import", "rtf", str(file), "--program", "ecm",
               "--data", str(tmp_path), "--json", "--rejects", str(rejects)]
    wrong = subprocess.run([*command, "--sheet", "RTF"], capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 1
    assert "no sheet 'RTF' (sheets: Instructions, RTF Nov)" in orjson.loads(wrong.stdout)["fileProblems"][0]
    done = subprocess.run([*command, "--sheet", "RTF Nov"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = orjson.loads(done.stdout)
    assert (report["applied"], report["rejected"], report["format"]) == (1, 1, "xlsx")
    assert rejects.read_text().splitlines()[1].startswith("3,ECM Provider National Provider Identifier (NPI)")


async def test_a_crash_mid_import_leaves_whole_rows_and_a_rerun_completes(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    import fhir_clr.imports.job as job

    monkeypatch.setattr(job, "BATCH_ROWS", 2)
    npi = valid_npi("633456789")
    cins = [f"6{n}345678X" for n in range(5)]
    tasks = [await referral(services, cin, npi) for cin in cins]
    data = rtf([row(cin, npi, "1", date(2026, 11, 10)) for cin in cins])
    commits = 0
    real_commit = services.store.commit

    async def failing_commit(changes: Any) -> Any:
        nonlocal commits
        if any(c.resource_type == "Task" and c.op.value == "update" for c in changes):
            commits += 1
            if commits == 2:
                raise RuntimeError("power cut")
        return await real_commit(changes)

    monkeypatch.setattr(services.store, "commit", failing_commit)
    importer = FileImporter(services.bundles, services.engine.clock, services.specs)
    with pytest.raises(RuntimeError):
        await importer.run(ImportRequest("rtf", data, "rtf.csv", "ecm"))
    states = [(await task_now(services, t["id"]))["businessStatus"]["coding"][0]["code"] for t in tasks]
    assert states == ["1", "1", "3", "3", "3"]  # the first batch whole, the second not at all
    monkeypatch.setattr(services.store, "commit", real_commit)
    report = await importer.run(ImportRequest("rtf", data, "rtf.csv", "ecm"))
    assert report.counts == {"applied": 3, "unchanged": 2, "rejected": 0}
    document = orjson.loads((await services.engine.read("DocumentReference", report.document_id or "")).body or b"")
    assert document["docStatus"] == "final"


async def test_prefetched_obligations_are_those_a_lookup_finds(services: Services) -> None:
    npi = valid_npi("523456789")
    tasks = [await referral(services, f"5234567{n}E", npi) for n in range(3)]
    rules = clr_rules_of(services.engine)
    references = [f"Task/{t['id']}" for t in tasks]
    cache = (await services.engine.prefetch([*references, "ServiceRequest/elsewhere"])).of(rules)
    assert isinstance(cache, ObligationCache)
    assert sorted(cache.by_task) == sorted(references)
    for reference in references:
        one_by_one = await rules.context.open_obligations(plan_planning(), part_of=reference)
        assert [o.stored for o in cache.by_task[reference]] == [o.stored for o in one_by_one] != []


async def test_a_batch_about_the_members_of_a_running_commit_waits_for_it(
        services: Services, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches are planned while the previous one commits, unless they read the same Members: then the reads
    happen again once that commit is done."""
    import fhir_clr.imports.job as job
    from fhir_clr.imports.referral_match import ReferralMatcher

    monkeypatch.setattr(job, "BATCH_ROWS", 1)
    npi = valid_npi("723456789")
    await referral(services, "72345678F", npi)
    await referral(services, "72345678G", npi)
    events: list[str] = []
    real_commit, real_prefetch = services.store.commit, ReferralMatcher.prefetch

    async def slow_commit(changes: Any) -> Any:
        await asyncio.sleep(0.05)
        stored = await real_commit(changes)
        events.append("committed")
        return stored

    async def recorded_prefetch(self: ReferralMatcher, rows: Any) -> None:
        await real_prefetch(self, rows)
        events.append("read " + ",".join(sorted(r.cin or "" for r in rows)))

    monkeypatch.setattr(services.store, "commit", slow_commit)
    monkeypatch.setattr(ReferralMatcher, "prefetch", recorded_prefetch)
    data = rtf([row("72345678F", npi, "1", date(2026, 11, 5)), row("72345678G", npi, "1", date(2026, 11, 5)),
                row("72345678G", npi, "1", date(2026, 11, 9))])
    report = await FileImporter(services.bundles, services.engine.clock, services.specs).run(
        ImportRequest("rtf", data, "rtf-wait.csv", "ecm"))
    assert report.counts == {"applied": 3, "unchanged": 0, "rejected": 0}, rejects_csv(report)
    rows_on = events[events.index("read 72345678F"):]
    assert rows_on.count("read 72345678G") == 3  # the third batch read its Member again...
    last_read = len(rows_on) - 1 - rows_on[::-1].index("read 72345678G")
    assert rows_on[:last_read].count("committed") == 2  # ...once the batches before it were committed
