"""A corpus of month-shaped RTF files, each imported into a real embedded store with its expected result for every
row: statuses that skip states, several rows for one referral (out of order, repeated, in one batch and across
batches), declines, closures from Pending, re-opening, backdated rows, formula-looking names, and both layouts
told from the headers without ``--program``. A row's outcome is read back from the store: an applied row is a
version of its referral Task whose ``meta.source`` names that row. Importing every file again applies nothing and
rejects the same rows."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from fhir_clr.app import Services
from fhir_clr.imports.job import FileImporter, ImportRequest
from fhir_clr.imports.received import ROW_SOURCE
from fhir_clr.imports.results import ImportReport, rejects_csv
from fhir_clr.store.port import HistoryFilter
from tests.api.clr_helpers import referral_body, referral_task_body
from tests.api.test_rtf_import import SYSTEMS, create, referral, row, rtf, task_now, valid_npi
from tests.bundled import find_spec

ECM = find_spec("rtf", "ecm")
CS = find_spec("rtf", "cs")
SUPERSEDED_URL = "http://fhir-clr.org/fhir/StructureDefinition/superseded-referral-status"


@dataclass
class Month:
    """One file of the corpus: its rows, the referral Task each row is about, and what must become of each."""

    rows: list[dict[str, Any]]
    expected: dict[int, str]
    """File row number (the header is row 1) → applied, unchanged or rejected."""
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The referral Tasks by a short name."""
    spec: Any = ECM


async def outcomes(services: Services, report: ImportReport, tasks: list[dict[str, Any]]) -> dict[int, str]:
    """Every row's outcome, from the store: the rows the Tasks' versions name as their source were applied."""
    applied: set[int] = set()
    for task in tasks:
        page = await services.store.history(HistoryFilter("Task", task["id"]), 100)
        for version in page.entries:
            source = (orjson.loads(version.body or b"{}").get("meta") or {}).get("source", "")
            found = ROW_SOURCE.match(source)
            if found and found["document"] == report.document_id:
                applied.add(int(found["row"]))
    rejected = {r.number for r in report.rejected}
    return {n: "applied" if n in applied else "rejected" if n in rejected else "unchanged"
            for n in range(2, report.rows + 2)}


def status(task: dict[str, Any]) -> tuple[str, str]:
    return task["businessStatus"]["coding"][0]["code"], task["status"]


async def import_month(services: Services, month: Month, name: str, program: str | None = None) -> ImportReport:
    data = rtf(month.rows) if month.spec is ECM else _cs_file(month.rows)
    data = data.replace(b",'=1+2,'@SUM(A1),", b",=1+2,@SUM(A1),")  # as a provider's spreadsheet writes them
    report = await FileImporter(services.bundles, services.engine.clock, services.specs).run(
        ImportRequest("rtf", data, name, program))
    assert report.spec == month.spec.id and not report.file_problems
    return report


def _cs_file(rows: list[dict[str, Any]]) -> bytes:
    import io

    from fhir_clr.mapping.writers import write_table

    out = io.BytesIO()
    write_table(CS, rows, "csv", out)
    return out.getvalue()


# ---- the files -----------------------------------------------------------------------------------------------

async def skips_and_closures(services: Services) -> Month:
    """Statuses that skip states (Pending → Outreach Initiated, Pending → Closed), a decline without a reason, a
    formula-looking Member name, and a row about nobody."""
    npi = valid_npi("813456789")
    cins = ["81345678A", "81345678B", "81345678C", "81345678D"]
    tasks = [await referral(services, cin, npi) for cin in cins]
    named = {**row(cins[3], npi, "1", date(2026, 11, 10)), "member_last_name": "=1+2", "member_first_name": "@SUM(A1)"}
    return Month([row(cins[0], npi, "4", date(2026, 11, 12)),
                  row(cins[1], npi, "5", date(2026, 11, 13), "Services Received"),
                  row(cins[2], npi, "2", date(2026, 11, 9)),
                  named,
                  row("89999999Z", npi, "1", date(2026, 11, 10))],
                 {2: "applied", 3: "applied", 4: "applied", 5: "applied", 6: "rejected"},
                 dict(zip(["outreach", "closed", "declined", "formula"], tasks, strict=True)))


async def several_rows_per_referral(services: Services) -> Month:
    """One referral reported out of order (Outreach Initiated on the 21st before Accepted on the 3rd) with the
    Accepted row repeated; one moved in date order to a closure; one closed and then re-opened."""
    npi = valid_npi("823456789")
    late, closing, reopened = [await referral(services, cin, npi) for cin in ("82345678A", "82345678B",
                                                                                "82345678C")]
    return Month([row("82345678A", npi, "4", date(2026, 11, 21)),
                  row("82345678A", npi, "1", date(2026, 11, 3)),
                  row("82345678A", npi, "1", date(2026, 11, 3)),
                  row("82345678B", npi, "1", date(2026, 11, 5)),
                  row("82345678B", npi, "5", date(2026, 11, 20), "Unable to Reach Member"),
                  row("82345678C", npi, "5", date(2026, 11, 10), "Member Declined"),
                  row("82345678C", npi, "4", date(2026, 11, 18))],
                 {2: "applied", 3: "applied", 4: "unchanged", 5: "applied", 6: "applied", 7: "applied",
                  8: "applied"},
                 {"late": late, "closing": closing, "reopened": reopened})


@pytest.mark.parametrize("batch_rows", [1, 2, 500])
async def test_several_rows_per_referral_apply_in_date_order_in_every_batch_size(
        services: Services, monkeypatch: pytest.MonkeyPatch, batch_rows: int) -> None:
    import fhir_clr.imports.job as job

    monkeypatch.setattr(job, "BATCH_ROWS", batch_rows)
    month = await several_rows_per_referral(services)
    report = await import_month(services, month, f"rtf-{batch_rows}.csv")
    assert report.counts == {"applied": 6, "unchanged": 1, "rejected": 0}, rejects_csv(report)
    assert await outcomes(services, report, list(month.tasks.values())) == month.expected
    late = await task_now(services, month.tasks["late"]["id"])
    assert status(late) == ("4", "in-progress")
    kept = [e for e in late["extension"] if e["url"] == SUPERSEDED_URL]
    # in one batch the Accepted row applies first; alone in a later batch it is older than the current status
    # and kept as history only: either way it is on record, once
    assert len(kept) == (1 if batch_rows == 1 else 0)
    assert status(await task_now(services, month.tasks["closing"]["id"])) == ("5", "failed")
    reopened = await task_now(services, month.tasks["reopened"]["id"])
    assert status(reopened) == ("4", "in-progress")
    assert [t["code"] for t in reopened["meta"].get("tag", ())] == ["status-review"]
    assert not any(e["url"].endswith("/referral-loop-closure-date") for e in reopened["extension"])

    again = await import_month(services, month, f"rtf-{batch_rows}.csv")
    assert again.counts == {"applied": 0, "unchanged": 7, "rejected": 0}, rejects_csv(again)


async def test_skipped_states_declines_and_formula_names(services: Services) -> None:
    month = await skips_and_closures(services)
    report = await import_month(services, month, "rtf-skips.csv")  # no program: the ECM layout, from headers
    assert await outcomes(services, report, list(month.tasks.values())) == month.expected
    assert [(r.number, [p.rule for p in r.problems]) for r in report.rejected] == [(6, ["match"])]
    assert status(await task_now(services, month.tasks["outreach"]["id"])) == ("4", "in-progress")
    closed = await task_now(services, month.tasks["closed"]["id"])
    assert status(closed) == ("5", "completed")
    referral_id = closed["focus"]["reference"].split("/")[1]
    assert orjson.loads((await services.engine.read("ServiceRequest", referral_id)).body or b"")["status"] == \
        "completed"
    declined = await task_now(services, month.tasks["declined"]["id"])
    assert status(declined) == ("2", "rejected") and "statusReason" not in declined
    assert [(w.number, [(p.column, p.rule) for p in w.problems]) for w in report.warnings] == [
        (5, [("Member Last Name", "formula"), ("Member First Name", "formula")])]
    assert report.as_json()["warnings"][0]["row"] == 5 and "SUM" not in orjson.dumps(report.as_json()).decode()

    again = await import_month(services, month, "rtf-skips.csv")
    assert again.counts == {"applied": 0, "unchanged": 4, "rejected": 1}
    assert rejects_csv(again) == rejects_csv(report)


async def test_a_backdated_row_is_kept_as_history_and_a_repeat_of_it_changes_nothing(services: Services) -> None:
    npi = valid_npi("833456789")
    task = await referral(services, "83345678A", npi)
    first = await import_month(services, Month([row("83345678A", npi, "4", date(2026, 11, 20))], {}),
                               "rtf-oct.csv")
    assert first.counts["applied"] == 1
    backdated = Month([row("83345678A", npi, "1", date(2026, 11, 6))], {2: "applied"}, {"task": task})
    report = await import_month(services, backdated, "rtf-nov.csv")
    assert await outcomes(services, report, [task]) == backdated.expected
    now = await task_now(services, task["id"])
    assert status(now) == ("4", "in-progress")
    assert [e["extension"][1]["valueDateTime"][:10] for e in now["extension"] if e["url"] == SUPERSEDED_URL] == [
        "2026-11-06"]
    again = await import_month(services, backdated, "rtf-nov.csv")
    assert again.counts == {"applied": 0, "unchanged": 1, "rejected": 0}


async def test_the_cs_layout_is_told_from_its_headers(services: Services) -> None:
    npi = valid_npi("843456789")
    member = await create(services, {"resourceType": "Patient", "identifier": [{"system": SYSTEMS["cin"],
                                                                                "value": "84345678A"}]})
    provider = await create(services, {"resourceType": "Organization", "name": "CS provider",
                                       "identifier": [{"system": SYSTEMS["npi"], "value": npi}]})
    clinic = await create(services, {"resourceType": "Organization", "name": "clinic"})
    request = await create(services, referral_body(f"Patient/{member['id']}", f"Organization/{clinic['id']}",
                                                   service="Housing Deposits"))
    task = await create(services, referral_task_body(request, f"Organization/{provider['id']}"))
    cs_row = {"member_cin": "84345678A", "cs_service": "Housing Deposits", "cs_provider_name": "CS provider",
              "cs_provider_npi": npi, "referral_status": "5", "referral_status_date": date(2026, 11, 16),
              "loop_closure_reason": "Services Received"}
    month = Month([cs_row], {2: "applied"}, {"task": task}, CS)
    report = await import_month(services, month, "cs-rtf.csv")
    assert await outcomes(services, report, [task]) == month.expected
    assert status(await task_now(services, task["id"])) == ("5", "completed")
    assert (await import_month(services, month, "cs-rtf.csv")).counts["applied"] == 0


async def test_plan_variant_headers_are_read(services: Services) -> None:
    npi = valid_npi("853456789")
    task = await referral(services, "85345678A", npi)
    headers = [("ECM Lead Care Manager Name Phone Number" if h == "ECM Lead Care Manager Phone Number" else h)
               for h in ECM.headers] + ["ECM Benefit Start Date", "ECM Benefit End Date",
                                         "Status of Member Engagement"]
    values = {"Member Client Index Number (CIN)": "85345678A", "ECM Provider National Provider Identifier (NPI)":
              npi, "Referral Status": "1", "Date of Referral Status Update": "11/12/2026",
              "ECM Lead Care Manager Name Phone Number": "(916) 555-0100", "Status of Member Engagement": "Engaged"}
    cells = [values.get(h, "") for h in headers]
    data = ("\r\n".join(",".join(c) for c in (headers, cells)) + "\r\n").encode()
    report = await FileImporter(services.bundles, services.engine.clock, services.specs).run(
        ImportRequest("rtf", data, "kp.csv"))
    assert report.counts["applied"] == 1 and report.extra_headers == [], rejects_csv(report)
    contact = next(e for e in (await task_now(services, task["id"]))["extension"]
                   if e["url"].endswith("/servicing-provider-contact"))
    assert "(916) 555-0100" in orjson.dumps(contact).decode() or "9165550100" in orjson.dumps(contact).decode()


async def test_a_provider_file_counts_other_providers_rows_as_skipped(services: Services) -> None:
    mine, theirs = valid_npi("863456789"), valid_npi("873456789")
    await referral(services, "86345678A", mine)
    await referral(services, "87345678A", theirs)
    data = rtf([row("86345678A", mine, "1", date(2026, 11, 12)), row("87345678A", theirs, "1", date(2026, 11, 12))])
    report = await FileImporter(services.bundles, services.engine.clock, services.specs).run(
        ImportRequest("rtf", data, "mine.csv", "ecm", provider_npi=mine))
    assert (report.counts, report.skipped) == ({"applied": 1, "unchanged": 0, "rejected": 0}, 1)
    assert "1 skipped (other providers)" in report.summary()


UNKNOWN_LAYOUT = b"Member CIN,Referral Status,Date of Referral Status Update\r\n12345678A,1,11/10/2026\r\n"


def test_a_layout_that_cannot_be_told_is_a_400_over_http(client: httpx.Client) -> None:
    response = client.post("/$import", params={"kind": "rtf", "filename": "x.csv"}, content=UNKNOWN_LAYOUT)
    assert response.status_code == 400
    text = response.json()["issue"][0]["details"]["text"]
    assert "Cannot tell the RTF layout" in text and "\n" not in text


def test_a_layout_that_cannot_be_told_is_exit_code_2_on_the_cli(tmp_path: Path) -> None:
    file = tmp_path / "x.csv"
    file.write_bytes(UNKNOWN_LAYOUT)
    done = subprocess.run([sys.executable, "-m", "fhir_clr.cli", "import", "rtf", str(file), "--data",
                           str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "Cannot tell the RTF layout" in done.stderr
    assert "Traceback" not in done.stderr

